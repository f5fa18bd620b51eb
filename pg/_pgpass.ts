// The password file (~/.pgpass), as libpq's passwordFromFile() and pwdfMatchesString() read it:
// `host:port:database:user:password` lines, `*` matching anything, `\:` and `\\` escapes, the
// first matching line winning, and a file others can read refused with a warning.
import { readFileSync, statSync } from "node:fs";

/** What one lookup matches against, already defaulted as libpq does. */
export interface PgpassKey {
  host: string;
  port: string;
  dbname: string;
  user: string;
}

/**
 * Matches one field at the start of `line` against `token`; returns where the next field starts,
 * or -1. `*` alone matches anything; a backslash makes the next character literal.
 */
function matchField(line: string, from: number, token: string): number {
  if (line[from] === "*" && line[from + 1] === ":") return from + 2;
  let i = from;
  let t = 0;
  while (i < line.length) {
    let escaped = false;
    if (line[i] === "\\") {
      i++;
      escaped = true;
    }
    if (line[i] === ":" && t === token.length && !escaped) return i + 1;
    if (t === token.length) return -1;
    if (line[i] !== token[t]) return -1;
    i++;
    t++;
  }
  return -1;
}

/** The password at `from`: up to the first unescaped ":", backslashes removed. */
function readPassword(line: string, from: number): string {
  let out = "";
  for (let i = from; i < line.length && line[i] !== ":"; i++) {
    if (line[i] === "\\" && i + 1 < line.length) i++;
    out += line[i];
  }
  return out;
}

/** Finds the password for `key` in the file text (first match wins). */
export function matchPgpass(text: string, key: PgpassKey): string | undefined {
  for (let line of text.split("\n")) {
    if (line.endsWith("\r")) line = line.slice(0, -1);
    if (line === "" || line[0] === "#") continue;
    let at = matchField(line, 0, key.host);
    if (at >= 0) at = matchField(line, at, key.port);
    if (at >= 0) at = matchField(line, at, key.dbname);
    if (at >= 0) at = matchField(line, at, key.user);
    if (at >= 0) return readPassword(line, at);
  }
  return undefined;
}

/**
 * Reads the password file at `path` and looks `key` up. A missing file gives undefined; a file
 * that is not a plain file, or that group or others may access, is ignored with libpq's warning.
 */
export function readPgpass(
  path: string,
  key: PgpassKey,
  onWarning?: (msg: string) => void,
): string | undefined {
  let mode: number;
  let isFile: boolean;
  try {
    const st = statSync(path);
    mode = st.mode;
    isFile = st.isFile();
  } catch {
    return undefined;
  }
  if (!isFile) {
    onWarning?.(`WARNING: password file "${path}" is not a plain file`);
    return undefined;
  }
  if ((mode & 0o077) !== 0) {
    onWarning?.(
      `WARNING: password file "${path}" has group or world access; permissions should be u=rw (0600) or less`,
    );
    return undefined;
  }
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
  return matchPgpass(text, key);
}
