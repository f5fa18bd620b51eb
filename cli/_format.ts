/**
 * psql's result printing for `pg-rdma query`, I/O-free: results in, text out. Aligned tables
 * (headers centred, numbers right-aligned, `+` marking a value that goes on to the next line,
 * `(N rows)` footers), unaligned (`-A`, `-F sep`), expanded (`-x`), CSV (`--csv`, RFC 4180
 * quoting as psql's) and NDJSON (`--json`, one object per row; pg-rdma's own). Checked
 * byte for byte against psql 15's output.
 *
 * @module
 */

/** One column of a result. */
export interface Column {
  name: string;
  /** The type's OID: numbers are right-aligned, and `--json` types its values by it. */
  typeOid: number;
}

/** One statement's result: rows of server text (`null` for NULL). */
export interface TextResult {
  /** CommandComplete tag, e.g. `"SELECT 2"`, `"CREATE TABLE"`. */
  command: string;
  /** Empty when the statement returns no rows at all (not even zero). */
  columns: Column[];
  rows: (string | null)[][];
}

/** How results are printed. */
export interface PrintOptions {
  format: "aligned" | "unaligned" | "csv" | "json";
  /** `-t`: rows only, no header or footer. */
  tuplesOnly?: boolean;
  /** `-x`: one line per column. */
  expanded?: boolean;
  /** `-F`: field separator of unaligned output (default `|`). */
  fieldSeparator?: string;
  /** `-q`: no command tags. */
  quiet?: boolean;
}

// Types psql right-aligns (print.c column_type_alignment).
const NUMERIC_OIDS = new Set([20, 21, 23, 26, 28, 29, 700, 701, 790, 1700, 5069]);
const INT_OIDS = new Set([21, 23, 26]);
const FLOAT_OIDS = new Set([700, 701]);
const JSON_OIDS = new Set([114, 3802]);
const BOOL_OID = 16;

/** Display width: code points, East Asian wide and fullwidth forms counted twice. */
export function displayWidth(s: string): number {
  let w = 0;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c < 0x20 || (c >= 0x7f && c < 0xa0) || (c >= 0x300 && c < 0x370) || c === 0x200b) continue;
    const wide = (c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0xa4cf) ||
      (c >= 0xac00 && c <= 0xd7a3) || (c >= 0xf900 && c <= 0xfaff) || (c >= 0xfe30 && c <= 0xfe4f) ||
      (c >= 0xff00 && c <= 0xff60) || (c >= 0xffe0 && c <= 0xffe6) || (c >= 0x1f300 && c <= 0x1faff) ||
      (c >= 0x20000 && c <= 0x3fffd);
    w += wide ? 2 : 1;
  }
  return w;
}

const pad = (s: string, width: number) => s + " ".repeat(Math.max(0, width - displayWidth(s)));
const padLeft = (s: string, width: number) => " ".repeat(Math.max(0, width - displayWidth(s))) + s;
function centre(s: string, width: number): string {
  const extra = Math.max(0, width - displayWidth(s));
  const left = Math.floor(extra / 2);
  return " ".repeat(left) + s + " ".repeat(extra - left);
}

const footer = (n: number) => `(${n} ${n === 1 ? "row" : "rows"})`;

/** Whether psql prints the command tag after a result with rows (DML with RETURNING). */
const isDml = (tag: string) => /^(INSERT|UPDATE|DELETE|MERGE)\b/.test(tag);

/** The cell's lines (a value with newlines spans several). */
const linesOf = (v: string | null) => (v === null ? [""] : v.split("\n"));

function aligned(r: TextResult, o: PrintOptions): string {
  const cols = r.columns;
  const right = cols.map((c) => NUMERIC_OIDS.has(c.typeOid));
  const headLines = cols.map((c) => c.name.split("\n"));
  const cells = r.rows.map((row) => row.map(linesOf));
  const width = cols.map((_, j) => {
    let w = Math.max(...headLines[j].map(displayWidth)); // psql -t still sizes by the header
    for (const row of cells) for (const l of row[j]) w = Math.max(w, displayWidth(l));
    return w;
  });
  const out: string[] = [];
  const last = cols.length - 1;
  // One printed row of cells: each cell " value" then " " or "+" (continues), "|" between.
  const printRow = (lines: string[][], header: boolean) => {
    const height = Math.max(1, ...lines.map((l) => l.length));
    for (let k = 0; k < height; k++) {
      let s = "";
      for (let j = 0; j <= last; j++) {
        const text = lines[j][k];
        const more = k + 1 < lines[j].length;
        const v = text ?? "";
        s += " ";
        if (header) s += centre(v, width[j]);
        else if (right[j]) s += padLeft(v, width[j]);
        else s += j === last && !more ? v : pad(v, width[j]);
        if (j < last) s += more ? "+|" : " |";
        else if (header) s += more ? "+" : " ";
        else if (more) s += "+";
      }
      out.push(s);
    }
  };
  if (cols.length === 0) {
    if (!o.tuplesOnly) out.push("--");
  } else {
    if (!o.tuplesOnly) {
      printRow(headLines, true);
      out.push(width.map((w) => "-".repeat(w + 2)).join("+"));
    }
    for (const row of cells) printRow(row, false);
  }
  if (!o.tuplesOnly) out.push(footer(r.rows.length));
  return out.length ? out.join("\n") + "\n\n" : "\n";
}

function expandedAligned(r: TextResult, o: PrintOptions): string {
  if (r.rows.length === 0) return o.tuplesOnly ? "\n" : `${footer(0)}\n\n`;
  const nameW = Math.max(0, ...r.columns.map((c) => displayWidth(c.name)));
  let valueW = 0;
  for (const row of r.rows) {
    for (const v of row) for (const l of linesOf(v)) valueW = Math.max(valueW, displayWidth(l));
  }
  const out: string[] = [];
  r.rows.forEach((row, i) => {
    if (o.tuplesOnly) {
      if (i > 0) out.push(`${"-".repeat(nameW + 1)}+${"-".repeat(valueW + 1)}`);
    } else {
      const head = `-[ RECORD ${i + 1} ]`;
      out.push(head + "-".repeat(Math.max(0, nameW + 3 + valueW - head.length)));
    }
    r.columns.forEach((c, j) => {
      const lines = linesOf(row[j]);
      lines.forEach((l, k) => {
        const name = k === 0 ? c.name : "";
        const more = k + 1 < lines.length;
        out.push(`${pad(name, nameW)} | ${more ? pad(l, valueW) + "+" : l}`);
      });
    });
  });
  return out.join("\n") + "\n\n";
}

function unaligned(r: TextResult, o: PrintOptions): string {
  const sep = o.fieldSeparator ?? "|";
  const out: string[] = [];
  if (o.expanded) {
    r.rows.forEach((row, i) => {
      if (i > 0) out.push("");
      r.columns.forEach((c, j) => out.push(`${c.name}${sep}${row[j] ?? ""}`));
    });
    if (!o.tuplesOnly && r.rows.length === 0) out.push(footer(0));
  } else {
    if (!o.tuplesOnly) out.push(r.columns.map((c) => c.name).join(sep));
    for (const row of r.rows) out.push(row.map((v) => v ?? "").join(sep));
    if (!o.tuplesOnly) out.push(footer(r.rows.length));
  }
  return out.length ? out.join("\n") + "\n" : "";
}

/** A CSV field as psql writes it: quoted when it holds the separator, a quote or a line end. */
function csvField(v: string | null, sep: string): string {
  if (v === null) return "";
  if (v.includes(sep) || v.includes('"') || v.includes("\n") || v.includes("\r")) {
    return `"${v.replaceAll('"', '""')}"`;
  }
  return v;
}

function csv(r: TextResult, o: PrintOptions): string {
  const sep = o.fieldSeparator ?? ",";
  const out: string[] = [];
  if (o.expanded) {
    for (const row of r.rows) {
      r.columns.forEach((c, j) => out.push(`${csvField(c.name, sep)}${sep}${csvField(row[j], sep)}`));
    }
  } else {
    if (!o.tuplesOnly) out.push(r.columns.map((c) => csvField(c.name, sep)).join(sep));
    for (const row of r.rows) out.push(row.map((v) => csvField(v, sep)).join(sep));
  }
  return out.length ? out.join("\n") + "\n" : "";
}

/** A value typed for JSON: integers and floats as numbers, booleans, json parsed, else text. */
function jsonValue(v: string | null, oid: number): unknown {
  if (v === null) return null;
  if (INT_OIDS.has(oid)) return Number(v);
  if (FLOAT_OIDS.has(oid)) {
    const n = Number(v);
    return Number.isFinite(n) ? n : v;
  }
  if (oid === BOOL_OID) return v === "t";
  if (JSON_OIDS.has(oid)) {
    try {
      return JSON.parse(v);
    } catch {
      return v;
    }
  }
  return v; // int8 and numeric stay text: JSON numbers would lose their precision
}

function ndjson(r: TextResult): string {
  let s = "";
  for (const row of r.rows) {
    const obj: Record<string, unknown> = {};
    r.columns.forEach((c, j) => (obj[c.name] = jsonValue(row[j], c.typeOid)));
    s += JSON.stringify(obj) + "\n";
  }
  return s;
}

/**
 * The text psql prints for one result on stdout: the rows in the chosen format, or the command
 * tag (`CREATE TABLE`) for a statement without rows (not with `quiet` or `--json`).
 *
 * @example
 * ```ts
 * formatResult({ command: "SELECT 1", columns: [{ name: "n", typeOid: 23 }], rows: [["1"]] }, { format: "aligned" });
 * // " n \n---\n 1\n(1 row)\n\n"
 * ```
 */
export function formatResult(r: TextResult, o: PrintOptions): string {
  if (r.columns.length === 0 && !/^(SELECT|FETCH|SHOW)\b/.test(r.command)) {
    return o.quiet || o.format === "json" || r.command === "" ? "" : r.command + "\n";
  }
  let s: string;
  switch (o.format) {
    case "aligned":
      s = o.expanded ? expandedAligned(r, o) : aligned(r, o);
      break;
    case "unaligned":
      s = unaligned(r, o);
      break;
    case "csv":
      s = csv(r, o);
      break;
    case "json":
      return ndjson(r);
    default:
      throw new TypeError(`unknown output format: ${String(o.format)}`);
  }
  if (isDml(r.command) && !o.quiet) s += r.command + "\n";
  return s;
}
