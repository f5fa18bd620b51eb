// Quoting for the SQL we write. Identifiers are always double-quoted (pg_dump's
// --quote-all-identifiers): no keyword list to keep in step with the server, and names with
// capitals, spaces, quotes, unicode or newlines come out right by the same rule.

/**
 * Quotes an identifier: `"` + name with every `"` doubled + `"`. Rejects NUL, which no
 * PostgreSQL name can hold.
 *
 * @example
 * ```ts
 * quoteIdent('My "odd" table'); // '"My ""odd"" table"'
 * ```
 */
export function quoteIdent(name: string): string {
  if (typeof name !== "string") throw new TypeError("an identifier must be a string");
  if (name.includes("\0")) throw new RangeError("an identifier cannot contain a NUL character");
  return `"${name.replaceAll('"', '""')}"`;
}

/** `"schema"."name"`. */
export function qualify(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/**
 * Quotes a string literal for a session with standard_conforming_strings = on (the dump sets
 * it): `'` doubled, backslashes literal.
 *
 * @example
 * ```ts
 * quoteLiteral("it's"); // "'it''s'"
 * ```
 */
export function quoteLiteral(value: string): string {
  if (typeof value !== "string") throw new TypeError("a literal must be a string");
  if (value.includes("\0")) throw new RangeError("a text literal cannot contain a NUL character");
  return `'${value.replaceAll("'", "''")}'`;
}

/** Makes a string safe for one line of an SQL `--` comment (newlines would end the comment). */
export function commentSafe(s: string): string {
  return s.replace(/[\r\n]/g, " ");
}
