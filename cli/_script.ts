/**
 * Splits a SQL script into statements the way psql does for `-f` and stdin, I/O-free: a `;`
 * outside quotes, comments and parentheses ends a statement; `'...'`, `E'...'`, `"..."`,
 * `$tag$...$tag$`, `-- ...` and nested `/* ... *\/` are skipped over; `:name`, `:'name'` and
 * `:"name"` are replaced by variables (set with `-v`/`\set`) outside quotes, as in psql; a line
 * starting with a backslash is a meta-command; the data lines after `COPY ... FROM STDIN;` up to
 * `\.` belong to that COPY. What is left at the end without a `;` is a statement too.
 *
 * @module
 */

/** One thing a script asks for, with the line (1-based) it ends on, as psql reports it. */
export type ScriptItem =
  | { kind: "sql"; sql: string; line: number; copyData?: string }
  | { kind: "meta"; name: string; args: string[]; line: number };

/** Whether `sql` is a `COPY ... FROM STDIN` (its data follows in the script or on stdin). */
export function isCopyFromStdin(sql: string): boolean {
  return /^\s*copy\b/i.test(sql) && /\bfrom\s+stdin\b/i.test(sql);
}

/** Whether `sql` is a `COPY ... TO STDOUT`. */
export function isCopyToStdout(sql: string): boolean {
  return /^\s*copy\b/i.test(sql) && /\bto\s+stdout\b/i.test(sql);
}

/** psql's quoting of a variable for `:'name'` (a literal) and `:"name"` (an identifier). */
function quoteVar(value: string, q: "'" | '"'): string {
  if (q === '"') return `"${value.replaceAll('"', '""')}"`;
  // A backslash needs E'' so it means itself whatever standard_conforming_strings says.
  const body = value.replaceAll("'", "''");
  return value.includes("\\") ? `E'${body.replaceAll("\\", "\\\\")}'` : `'${body}'`;
}

const IDENT = /[A-Za-z0-9_\u0080-\uffff]/;

/** Splits a meta-command's argument text: whitespace-separated, `'...'` quoted ('' for '). */
function metaArgs(text: string, vars: ReadonlyMap<string, string>): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i])) i++;
    if (i >= text.length) break;
    let arg = "";
    while (i < text.length && !/\s/.test(text[i])) {
      if (text[i] === "'") {
        i++;
        while (i < text.length) {
          if (text[i] === "'" && text[i + 1] === "'") (arg += "'", i += 2);
          else if (text[i] === "'") break;
          else arg += text[i++];
        }
        i++;
      } else if (text[i] === ":" && IDENT.test(text[i + 1] ?? "")) {
        let j = i + 1;
        while (j < text.length && IDENT.test(text[j])) j++;
        const name = text.slice(i + 1, j);
        arg += vars.get(name) ?? text.slice(i, j);
        i = j;
      } else arg += text[i++];
    }
    out.push(arg);
  }
  return out;
}

/**
 * Splits `text` into statements and meta-commands (see the module doc). `vars` is read at the
 * point each statement is scanned, so a `\set` earlier in the script applies to later lines
 * when the caller applies meta-commands as they come: pass a live Map and use
 * {@linkcode scanScript} for that; this function is the all-at-once form.
 *
 * @example
 * ```ts
 * splitScript("SELECT 1; SELECT ';'\n", new Map()).map((i) => i.kind === "sql" && i.sql);
 * // ["SELECT 1;", "SELECT ';'"]
 * ```
 */
export function splitScript(text: string, vars: ReadonlyMap<string, string>): ScriptItem[] {
  return [...scanScript(text, vars)];
}

/** The lazy form of {@linkcode splitScript}: each item is scanned when it is asked for. */
export function* scanScript(text: string, vars: ReadonlyMap<string, string>): Generator<ScriptItem> {
  if (typeof text !== "string") throw new TypeError("script must be a string");
  let i = 0;
  let line = 1;
  let buf = "";
  let start = 0; // nonzero once the statement has a non-blank character
  let depth = 0;
  const n = text.length;
  const push = (s: string) => {
    if (start === 0 && /\S/.test(s)) start = line;
    buf += s;
  };
  // psql names the line a statement ended on (where its ";" is, or the last line of the input).
  const take = (at = line): ScriptItem | undefined => {
    const sql = buf.trim();
    buf = "";
    start = 0;
    depth = 0;
    if (sql === "" || sql === ";") return undefined;
    return { kind: "sql", sql, line: at };
  };
  // Copies text[from, to) into the buffer, counting lines.
  const copy = (from: number, to: number) => {
    const s = text.slice(from, to);
    for (let k = 0; k < s.length; k++) if (s.charCodeAt(k) === 10) line++;
    push(s);
  };

  while (i < n) {
    const c = text[i];
    const next = text[i + 1];
    if (c === "\n") {
      line++;
      buf += c;
      i++;
    } else if (c === "-" && next === "-") {
      // A comment to the end of the line; kept only inside a statement (the server ignores it).
      let j = text.indexOf("\n", i);
      if (j === -1) j = n;
      if (start !== 0) buf += text.slice(i, j);
      i = j;
    } else if (c === "/" && next === "*") {
      let j = i + 2;
      let nest = 1;
      while (j < n && nest > 0) {
        if (text[j] === "/" && text[j + 1] === "*") (nest++, j += 2);
        else if (text[j] === "*" && text[j + 1] === "/") (nest--, j += 2);
        else j++;
      }
      copy(i, j);
      i = j;
    } else if (c === "'" || ((c === "E" || c === "e") && next === "'" && !IDENT.test(text[i - 1] ?? ""))) {
      // A string literal; E'' strings take backslash escapes.
      const escapes = c !== "'";
      let j = i + (escapes ? 2 : 1);
      while (j < n) {
        if (escapes && text[j] === "\\") j += 2;
        else if (text[j] === "'" && text[j + 1] === "'") j += 2;
        else if (text[j] === "'") break;
        else j++;
      }
      copy(i, Math.min(n, j + 1));
      i = j + 1;
    } else if (c === '"') {
      let j = i + 1;
      while (j < n) {
        if (text[j] === '"' && text[j + 1] === '"') j += 2;
        else if (text[j] === '"') break;
        else j++;
      }
      copy(i, Math.min(n, j + 1));
      i = j + 1;
    } else if (c === "$" && !IDENT.test(text[i - 1] ?? "")) {
      const m = /^\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/.exec(text.slice(i, i + 64));
      if (!m) {
        push(c);
        i++;
        continue;
      }
      const tag = m[0];
      const end = text.indexOf(tag, i + tag.length);
      const j = end === -1 ? n : end + tag.length;
      copy(i, j);
      i = j;
    } else if (c === ":" && next === ":") {
      push("::");
      i += 2;
    } else if (c === ":" && (next === "'" || next === '"') && !IDENT.test(text[i - 1] ?? "")) {
      const m = /^:(['"])([A-Za-z0-9_]+)\1/.exec(text.slice(i, i + 200));
      const value = m ? vars.get(m[2]) : undefined;
      if (m && value !== undefined) {
        push(quoteVar(value, m[1] as "'" | '"'));
        i += m[0].length;
      } else {
        push(c);
        i++;
      }
    } else if (c === ":" && IDENT.test(next ?? "")) {
      let j = i + 1;
      while (j < n && IDENT.test(text[j])) j++;
      const value = vars.get(text.slice(i + 1, j));
      if (value !== undefined) push(value);
      else push(text.slice(i, j));
      i = j;
    } else if (c === "(") {
      depth++;
      push(c);
      i++;
    } else if (c === ")") {
      if (depth > 0) depth--;
      push(c);
      i++;
    } else if (c === ";" && depth === 0) {
      push(c);
      i++;
      const item = take();
      if (!item) continue;
      if (item.kind === "sql" && isCopyFromStdin(item.sql)) {
        // The data starts on the next line and ends with a line "\.".
        let j = text.indexOf("\n", i);
        j = j === -1 ? n : j + 1;
        if (j > i) line++;
        const rows: string[] = [];
        while (j < n) {
          let e = text.indexOf("\n", j);
          if (e === -1) e = n;
          const row = text.slice(j, e);
          line++;
          j = e + 1;
          if (row === "\\." || row === "\\.\r") break;
          rows.push(row + "\n");
        }
        i = Math.min(j, n);
        item.copyData = rows.join("");
      }
      yield item;
    } else if (c === "\\") {
      // A meta-command: the backslash, its name, then arguments to the end of the line.
      let e = text.indexOf("\n", i);
      if (e === -1) e = n;
      const rest = text.slice(i + 1, e);
      const m = /^([A-Za-z?!]+|\\)\s*/.exec(rest);
      const name = m ? m[1] : rest.trim();
      const argText = m ? rest.slice(m[0].length) : "";
      i = e;
      if (name === "g" || name === ";") {
        const item = take();
        if (item) yield item;
        continue;
      }
      yield { kind: "meta", name, args: metaArgs(argText, vars), line };
    } else {
      // Copy a run of ordinary characters at once.
      let j = i + 1;
      while (j < n && !"\n-/'\"$:();\\Ee".includes(text[j])) j++;
      push(text.slice(i, j));
      i = j;
    }
  }
  const last = take(text.endsWith("\n") ? line - 1 : line);
  if (last) yield last;
}
