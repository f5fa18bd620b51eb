// pg_dump's object-name patterns (-n/-N/-t/-T), as psql's \d commands read them: the rules of
// processSQLNamePattern / patternToSQLRegex in src/fe_utils/string_utils.c. I/O-free: a pattern
// becomes anchored POSIX regular expressions that the server matches with `~`.

/** One pattern turned into regular expressions (anchored, for the server's `~` operator). */
export interface NamePattern {
  /** The pattern as given. */
  readonly pattern: string;
  /** Database part (`db.schema.table`), literal name to compare with the current database. */
  readonly database?: string;
  /** Regex for the schema name, or undefined when the pattern has no schema part. */
  readonly schema?: string;
  /** Regex for the object name (for `-n`: undefined, the schema is in `schema`). */
  readonly name?: string;
  /**
   * Whether the pattern named a schema part at all. Unqualified table patterns match only
   * tables visible on the default search path, as in pg_dump.
   */
  readonly qualified: boolean;
}

// Characters that are regex-special in POSIX AREs; quoted inside double quotes.
const REGEX_SPECIAL = "|*+?()[]{}.^$\\";

/**
 * Splits a pattern at unquoted dots and turns each part into a regex: outside double quotes,
 * ASCII letters fold to lower case, `*` becomes `.*`, `?` becomes `.`, other regex characters
 * keep their meaning; inside quotes every character is literal and `""` is one `"`. `$` is
 * literal everywhere (it is common in names). Returns one regex body per dotted part; an empty
 * part is `""` (no restriction).
 */
function splitPattern(pattern: string): string[] {
  const parts: string[] = [];
  let cur = "";
  let inQuotes = false;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '"') {
      if (inQuotes && pattern[i + 1] === '"') {
        cur += '"';
        i++;
      } else inQuotes = !inQuotes;
    } else if (!inQuotes && ch >= "A" && ch <= "Z") cur += ch.toLowerCase();
    else if (!inQuotes && ch === "*") cur += ".*";
    else if (!inQuotes && ch === "?") cur += ".";
    else if (!inQuotes && ch === ".") {
      parts.push(cur);
      cur = "";
    } else if (ch === "$") cur += "\\$";
    else if (inQuotes && REGEX_SPECIAL.includes(ch)) cur += "\\" + ch;
    else cur += ch;
  }
  if (inQuotes) throw new RangeError(`unterminated quoted identifier in pattern ${JSON.stringify(pattern)}`);
  parts.push(cur);
  return parts;
}

function anchor(body: string): string | undefined {
  // An empty part or a bare `*` restricts nothing, as in processSQLNamePattern.
  return body === "" || body === ".*" ? undefined : `^(${body})$`;
}

/** The literal text of a database part (only literal names can be compared). */
function literalDatabase(pattern: string): string {
  // Re-read the first dotted part literally: quotes removed, unquoted letters folded.
  let out = "";
  let inQuotes = false;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '"') {
      if (inQuotes && pattern[i + 1] === '"') {
        out += '"';
        i++;
      } else inQuotes = !inQuotes;
    } else if (!inQuotes && ch === ".") break;
    else out += !inQuotes && ch >= "A" && ch <= "Z" ? ch.toLowerCase() : ch;
  }
  return out;
}

/**
 * Parses a table pattern (`-t`/`-T`, `--exclude-table-data`): `table`, `schema.table` or
 * `db.schema.table`. Throws RangeError for more than two dots or an unterminated quote.
 *
 * @example
 * ```ts
 * parseTablePattern('Public."My*Table"'); // { schema: "^(public)$", name: "^(My\\*Table)$", ... }
 * ```
 */
export function parseTablePattern(pattern: string): NamePattern {
  if (typeof pattern !== "string") throw new TypeError("a table pattern must be a string");
  const parts = splitPattern(pattern);
  if (parts.length > 3) throw new RangeError(`improper qualified name (too many dotted names): ${pattern}`);
  if (parts.length === 3) {
    return { pattern, database: literalDatabase(pattern), schema: anchor(parts[1]), name: anchor(parts[2]), qualified: true };
  }
  if (parts.length === 2) return { pattern, schema: anchor(parts[0]), name: anchor(parts[1]), qualified: true };
  return { pattern, name: anchor(parts[0]), qualified: false };
}

/**
 * Parses a schema pattern (`-n`/`-N`): `schema` or `db.schema`. Throws RangeError for more
 * than one dot or an unterminated quote.
 *
 * @example
 * ```ts
 * parseSchemaPattern("app_*"); // { schema: "^(app_.*)$", ... }
 * ```
 */
export function parseSchemaPattern(pattern: string): NamePattern {
  if (typeof pattern !== "string") throw new TypeError("a schema pattern must be a string");
  const parts = splitPattern(pattern);
  if (parts.length > 2) throw new RangeError(`improper qualified name (too many dotted names): ${pattern}`);
  if (parts.length === 2) return { pattern, database: literalDatabase(pattern), schema: anchor(parts[1]), qualified: true };
  return { pattern, schema: anchor(parts[0]), qualified: true };
}

/**
 * Whether a (schema, name) pair matches a parsed pattern, evaluated in JavaScript. The dumper
 * matches on the server (POSIX regex, `pg_table_is_visible` for unqualified patterns); this is
 * the same test for callers without a connection. `visible` says whether the object is visible
 * on the search path (unqualified table patterns only match visible tables, as in pg_dump).
 */
export function matchesPattern(p: NamePattern, schema: string, name?: string, visible = true): boolean {
  if (p.schema !== undefined && !new RegExp(p.schema, "su").test(schema)) return false;
  if (name === undefined) return true;
  if (!p.qualified && !visible) return false;
  if (p.name !== undefined && !new RegExp(p.name, "su").test(name)) return false;
  return true;
}
