// Reads the catalog inside the dump's snapshot and turns it into table-of-contents entries:
// pre-data DDL in dependency order, one data entry per table, post-data DDL, then privileges.
// The DDL text comes from the server's own deparsers (pg_get_functiondef, pg_get_viewdef,
// pg_get_indexdef, pg_get_constraintdef, pg_get_triggerdef, pg_get_expr, format_type) run with
// search_path = '' so every name they print is schema-qualified.
import type { Client } from "../pg/mod.ts";
import { parseSchemaPattern, parseTablePattern, type NamePattern } from "./_pattern.ts";
import { qualify, quoteIdent, quoteLiteral } from "./_quote.ts";

/** Where an entry belongs in a dump, in pg_dump's three sections (plus privileges last). */
export type Section = "pre-data" | "data" | "post-data";

/** One DDL statement group of the table of contents. */
export interface TocEntry {
  section: Section;
  /** What it is, in pg_dump's words: "TABLE", "INDEX", "FK CONSTRAINT", "ACL", ... */
  kind: string;
  schema: string;
  name: string;
  /** SQL statements, each ending in `;`. */
  sql: string;
}

/** One table whose rows are dumped. */
export interface TableData {
  oid: number;
  schema: string;
  name: string;
  /** Quoted column list `("a", "b")` without generated columns. */
  columns: string;
  /** pg_class.reltuples (-1 when never analysed). */
  estimatedRows: number;
  /** pg_class.relpages × block size, plus the size of the TOAST table (where long values live; its relpages waits for a VACUUM). */
  estimatedBytes: number;
  /** Copied in binary COPY (a directory dump's choice, see {@link binaryCopyable}); text otherwise. */
  binary?: boolean;
}

/** The selection options the catalog reader needs. */
export interface SelectOptions {
  schemas?: readonly string[];
  excludeSchemas?: readonly string[];
  tables?: readonly string[];
  excludeTables?: readonly string[];
  excludeTableData?: readonly string[];
  noOwner?: boolean;
  noPrivileges?: boolean;
}

/** What {@link readCatalog} found. */
export interface Catalog {
  preData: TocEntry[];
  data: TableData[];
  /** `SELECT pg_catalog.setval(...)` per dumped sequence (data section). */
  sequenceValues: TocEntry[];
  postData: TocEntry[];
  /** Objects of kinds this dumper does not reproduce, named ("policy p on table t"). */
  warnings: string[];
}

type R = Record<string, unknown>;

const SYSTEM_SCHEMA = `n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'`;
/** Not created by an extension (those come back with CREATE EXTENSION). */
const notExt = (cls: string, oid: string) =>
  `NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = '${cls}'::pg_catalog.regclass AND e.objid = ${oid} AND e.deptype = 'e')`;

async function rows(c: Client, sql: string, params: unknown[] = []): Promise<R[]> {
  return (await c.query(sql, params)).rows;
}

const str = (v: unknown): string => (v === null || v === undefined ? "" : String(v));
const bool = (v: unknown): boolean => v === true || v === "t";

/** Resolves -n/-N patterns to schema oids (database part checked). */
async function matchSchemas(c: Client, patterns: readonly string[], db: string): Promise<Set<number>> {
  const out = new Set<number>();
  for (const raw of patterns) {
    const p = parseSchemaPattern(raw);
    checkDb(p, db);
    for (const r of await rows(c, `SELECT n.oid FROM pg_catalog.pg_namespace n WHERE ($1::text IS NULL OR n.nspname OPERATOR(pg_catalog.~) $1)`, [p.schema ?? null])) {
      out.add(Number(r.oid));
    }
  }
  return out;
}

/** Resolves -t/-T patterns to relation oids; unqualified patterns see only visible tables. */
async function matchTables(c: Client, patterns: readonly string[], db: string): Promise<Set<number>> {
  const out = new Set<number>();
  if (!patterns.length) return out;
  // Visibility is judged on the default search path, as pg_dump does (RESET, then back to '').
  await c.simpleQuery("RESET search_path");
  try {
    for (const raw of patterns) {
      const p = parseTablePattern(raw);
      checkDb(p, db);
      const rs = await rows(
        c,
        `SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r','p','v','m','S','f')
            AND ($1::text IS NULL OR n.nspname OPERATOR(pg_catalog.~) $1)
            AND ($2::text IS NULL OR c.relname OPERATOR(pg_catalog.~) $2)
            AND ($3::bool OR pg_catalog.pg_table_is_visible(c.oid))`,
        [p.schema ?? null, p.name ?? null, p.qualified],
      );
      for (const r of rs) out.add(Number(r.oid));
    }
  } finally {
    await c.simpleQuery("SELECT pg_catalog.set_config('search_path', '', false)");
  }
  return out;
}

function checkDb(p: NamePattern, db: string): void {
  if (p.database !== undefined && p.database !== db) {
    throw new RangeError(`cross-database references are not implemented: ${p.pattern}`);
  }
}

/** Privileges of one object as GRANT statements, when its ACL is not the default. */
function aclSql(target: string, acl: R[] | undefined, owner: string): string {
  if (!acl || !acl.length) return "";
  // Reset to nothing, then grant exactly what the source has, in its order.
  let out = `REVOKE ALL ON ${target} FROM PUBLIC;\nREVOKE ALL ON ${target} FROM ${quoteIdent(owner)};\n`;
  for (const a of acl) {
    const grantee = a.grantee === null || a.grantee === "" ? "PUBLIC" : quoteIdent(str(a.grantee));
    out += `GRANT ${str(a.privilege)} ON ${target} TO ${grantee}${bool(a.grantable) ? " WITH GRANT OPTION" : ""};\n`;
  }
  return out;
}

/** Fetches exploded ACLs keyed by "classid:oid" (column ACLs keyed "col:relid"). */
async function readAcls(c: Client): Promise<Map<string, R[]>> {
  const map = new Map<string, R[]>();
  const add = (k: string, r: R) => {
    const l = map.get(k);
    if (l) l.push(r);
    else map.set(k, [r]);
  };
  const q = (table: string, aclcol: string) =>
    `SELECT '${table}' AS cls, o.oid, g.rolname AS grantee, a.privilege_type AS privilege, a.is_grantable AS grantable
       FROM pg_catalog.${table} o, pg_catalog.aclexplode(o.${aclcol}) WITH ORDINALITY a
       LEFT JOIN pg_catalog.pg_roles g ON g.oid = a.grantee
      WHERE o.${aclcol} IS NOT NULL AND o.oid >= 16384 ORDER BY o.oid, a.ordinality`;
  for (const [t, col] of [["pg_class", "relacl"], ["pg_namespace", "nspacl"], ["pg_proc", "proacl"], ["pg_type", "typacl"]]) {
    for (const r of await rows(c, q(t, col))) add(`${t}:${r.oid}`, r);
  }
  for (
    const r of await rows(
      c,
      `SELECT at.attrelid AS oid, pg_catalog.quote_ident(at.attname) AS columns, g.rolname AS grantee, a.privilege_type AS privilege, a.is_grantable AS grantable
         FROM pg_catalog.pg_attribute at, pg_catalog.aclexplode(at.attacl) WITH ORDINALITY a
         LEFT JOIN pg_catalog.pg_roles g ON g.oid = a.grantee
        WHERE at.attacl IS NOT NULL AND at.attrelid >= 16384 AND NOT at.attisdropped ORDER BY at.attrelid, at.attnum, a.ordinality`,
    )
  ) add(`col:${r.oid}`, r);
  return map;
}

/** Kinds the dumper does not reproduce: found objects become warnings naming them. */
const UNSUPPORTED_SQL = `
  SELECT pg_catalog.pg_describe_object(cls, oid, 0) AS what, note FROM (
    SELECT 'pg_policy'::regclass AS cls, oid, 'object kind not covered, not dumped' AS note FROM pg_catalog.pg_policy
    UNION ALL SELECT 'pg_rewrite'::regclass, oid, 'object kind not covered, not dumped' FROM pg_catalog.pg_rewrite WHERE rulename <> '_RETURN' AND oid >= 16384
    UNION ALL SELECT 'pg_publication'::regclass, oid, 'object kind not covered, not dumped' FROM pg_catalog.pg_publication
    UNION ALL SELECT 'pg_event_trigger'::regclass, oid, 'object kind not covered, not dumped' FROM pg_catalog.pg_event_trigger
    UNION ALL SELECT 'pg_foreign_server'::regclass, oid, 'object kind not covered, not dumped' FROM pg_catalog.pg_foreign_server
    UNION ALL SELECT 'pg_foreign_data_wrapper'::regclass, oid, 'object kind not covered, not dumped' FROM pg_catalog.pg_foreign_data_wrapper
    UNION ALL SELECT 'pg_operator'::regclass, oid, 'object kind not covered, not dumped' FROM pg_catalog.pg_operator WHERE oid >= 16384
    UNION ALL SELECT 'pg_opclass'::regclass, oid, 'object kind not covered, not dumped' FROM pg_catalog.pg_opclass WHERE oid >= 16384
    UNION ALL SELECT 'pg_opfamily'::regclass, oid, 'object kind not covered, not dumped' FROM pg_catalog.pg_opfamily WHERE oid >= 16384
    UNION ALL SELECT 'pg_cast'::regclass, oid, 'object kind not covered, not dumped' FROM pg_catalog.pg_cast WHERE oid >= 16384
    UNION ALL SELECT 'pg_ts_config'::regclass, oid, 'object kind not covered, not dumped' FROM pg_catalog.pg_ts_config WHERE oid >= 16384
    UNION ALL SELECT 'pg_ts_dict'::regclass, oid, 'object kind not covered, not dumped' FROM pg_catalog.pg_ts_dict WHERE oid >= 16384
    UNION ALL SELECT 'pg_ts_parser'::regclass, oid, 'object kind not covered, not dumped' FROM pg_catalog.pg_ts_parser WHERE oid >= 16384
    UNION ALL SELECT 'pg_ts_template'::regclass, oid, 'object kind not covered, not dumped' FROM pg_catalog.pg_ts_template WHERE oid >= 16384
    UNION ALL SELECT 'pg_largeobject_metadata'::regclass, oid, 'object kind not covered, not dumped' FROM pg_catalog.pg_largeobject_metadata
    UNION ALL SELECT 'pg_statistic_ext'::regclass, oid, 'object kind not covered, not dumped' FROM pg_catalog.pg_statistic_ext
    UNION ALL SELECT 'pg_collation'::regclass, oid, 'object kind not covered, not dumped' FROM pg_catalog.pg_collation WHERE oid >= 16384
    UNION ALL SELECT 'pg_conversion'::regclass, oid, 'object kind not covered, not dumped' FROM pg_catalog.pg_conversion WHERE oid >= 16384
    UNION ALL SELECT 'pg_transform'::regclass, oid, 'object kind not covered, not dumped' FROM pg_catalog.pg_transform
    UNION ALL SELECT 'pg_am'::regclass, oid, 'object kind not covered, not dumped' FROM pg_catalog.pg_am WHERE oid >= 16384
    UNION ALL SELECT 'pg_default_acl'::regclass, oid, 'object kind not covered, not dumped' FROM pg_catalog.pg_default_acl
    UNION ALL SELECT 'pg_proc'::regclass, oid, 'object kind not covered, not dumped' FROM pg_catalog.pg_proc WHERE prokind = 'a' AND oid >= 16384
    UNION ALL SELECT 'pg_type'::regclass, oid, 'object kind not covered, not dumped' FROM pg_catalog.pg_type WHERE typtype IN ('r', 'm') AND oid >= 16384
    UNION ALL SELECT 'pg_class'::regclass, c.oid, 'object kind not covered, not dumped' FROM pg_catalog.pg_class c WHERE c.oid >= 16384 AND (c.relkind IN ('p', 'f') OR c.relispartition)
    UNION ALL SELECT 'pg_class'::regclass, c.oid, 'its row-level security setting is not dumped' FROM pg_catalog.pg_class c WHERE c.relrowsecurity
    UNION ALL SELECT 'pg_class'::regclass, c.oid, 'its tablespace is not dumped' FROM pg_catalog.pg_class c WHERE c.oid >= 16384 AND c.reltablespace <> 0
    UNION ALL SELECT 'pg_class'::regclass, c.oid, 'its inheritance is not dumped (dumped as a plain table)' FROM pg_catalog.pg_class c
      WHERE NOT c.relispartition AND EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid)
  ) o
  WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = o.cls AND e.objid = o.oid AND e.deptype = 'e')
  ORDER BY 1`;

interface PreObject {
  key: string;
  priority: number;
  entry: TocEntry;
}

/** Order of kinds among objects with no dependency between them (pg_dump's dumpable order). */
const PRIORITY = { SCHEMA: 1, EXTENSION: 2, TYPE: 3, DOMAIN: 4, FUNCTION: 5, SEQUENCE: 6, TABLE: 7, VIEW: 8, "MATERIALIZED VIEW": 9 } as const;

/**
 * Reads everything the dump needs from the catalog, in the caller's transaction (which must
 * already hold the snapshot and have search_path = ''). Tables to dump are locked (ACCESS
 * SHARE) first, as pg_dump does, so a concurrent DROP or ALTER waits for the dump.
 */
export async function readCatalog(
  c: Client,
  opts: SelectOptions,
  lock: (schema: string, name: string) => Promise<void>,
): Promise<Catalog> {
  const db = str((await rows(c, "SELECT pg_catalog.current_database() AS d"))[0].d);
  const incSchemas = opts.schemas?.length ? await matchSchemas(c, opts.schemas, db) : undefined;
  const excSchemas = await matchSchemas(c, opts.excludeSchemas ?? [], db);
  const incTables = opts.tables?.length ? await matchTables(c, opts.tables, db) : undefined;
  const excTables = await matchTables(c, opts.excludeTables ?? [], db);
  const excData = await matchTables(c, opts.excludeTableData ?? [], db);
  const full = !incSchemas && !incTables;

  // Schemas.
  const schemaRows = await rows(
    c,
    `SELECT n.oid, n.nspname, pg_catalog.pg_get_userbyid(n.nspowner) AS owner, pg_catalog.obj_description(n.oid, 'pg_namespace') AS comment
       FROM pg_catalog.pg_namespace n WHERE ${SYSTEM_SCHEMA} AND ${notExt("pg_namespace", "n.oid")} ORDER BY n.nspname`,
  );
  const schemaDumped = new Map<number, boolean>();
  for (const r of schemaRows) {
    const oid = Number(r.oid);
    const inc = incTables && !incSchemas ? false : incSchemas ? incSchemas.has(oid) : true;
    schemaDumped.set(oid, inc && !excSchemas.has(oid));
  }
  const nsDumped = (oid: unknown) => schemaDumped.get(Number(oid)) === true;

  // Relations and which of them are dumped.
  const relRows = await rows(
    c,
    `SELECT c.oid, c.relnamespace, n.nspname, c.relname, c.relkind, c.relpersistence, c.reloptions::text[] AS reloptions,
            pg_catalog.pg_get_userbyid(c.relowner) AS owner, c.reltuples, c.relpages, c.relispartition,
            CASE WHEN c.reltoastrelid <> 0 THEN pg_catalog.pg_relation_size(c.reltoastrelid) ELSE 0 END AS toastbytes,
            pg_catalog.obj_description(c.oid, 'pg_class') AS comment,
            pg_catalog.current_setting('block_size')::int AS bs
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r','v','m','S') AND ${SYSTEM_SCHEMA} AND ${notExt("pg_class", "c.oid")}
        AND NOT c.relispartition
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'i')
      ORDER BY n.nspname, c.relname`,
  );
  const relDumped = new Set<number>();
  for (const r of relRows) {
    const oid = Number(r.oid);
    if (excTables.has(oid) || excSchemas.has(Number(r.relnamespace))) continue;
    if (incTables?.has(oid) || nsDumped(r.relnamespace)) relDumped.add(oid);
  }
  // Owned sequences follow their table when only tables were selected.
  const ownedSeq = await rows(
    c,
    `SELECT d.objid AS seq, d.refobjid AS rel, a.attname
       FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
       JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
      WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a'`,
  );
  for (const r of ownedSeq) if (relDumped.has(Number(r.rel)) && !excTables.has(Number(r.seq))) relDumped.add(Number(r.seq));

  // Lock every dumped table before reading definitions (pg_dump's order).
  for (const r of relRows) {
    if (relDumped.has(Number(r.oid)) && r.relkind === "r") await lock(str(r.nspname), str(r.relname));
  }

  const warnings: string[] = [];
  for (const r of await rows(c, UNSUPPORTED_SQL)) warnings.push(`${str(r.what)}: ${str(r.note)}`);

  const acls = opts.noPrivileges ? new Map<string, R[]>() : await readAcls(c);
  const owner = (target: string, kind: string, who: unknown) => (opts.noOwner ? "" : `ALTER ${kind} ${target} OWNER TO ${quoteIdent(str(who))};\n`);
  const comment = (what: string, text: unknown) => (text === null || text === undefined ? "" : `COMMENT ON ${what} IS ${quoteLiteral(str(text))};\n`);

  const pre: PreObject[] = [];
  const post: TocEntry[] = [];
  const aclEntries: TocEntry[] = [];
  const addAcl = (schema: string, name: string, sql: string) => {
    if (sql) aclEntries.push({ section: "post-data", kind: "ACL", schema, name, sql });
  };

  for (const r of schemaRows) {
    if (!schemaDumped.get(Number(r.oid))) continue;
    const name = str(r.nspname);
    const q = quoteIdent(name);
    // "public" exists in every new database; only its comment and owner are ours to restore.
    const create = name === "public" ? "" : `CREATE SCHEMA ${q};\n`;
    const sql = create + (name === "public" ? "" : owner(q, "SCHEMA", r.owner)) + (name === "public" ? "" : comment(`SCHEMA ${q}`, r.comment));
    if (sql) pre.push({ key: `pg_namespace:${r.oid}`, priority: PRIORITY.SCHEMA, entry: { section: "pre-data", kind: "SCHEMA", schema: "", name, sql } });
    addAcl("", name, aclSql(`SCHEMA ${q}`, acls.get(`pg_namespace:${r.oid}`), str(r.owner)));
  }

  if (full) {
    for (
      const r of await rows(
        c,
        `SELECT x.oid, x.extname, n.nspname FROM pg_catalog.pg_extension x JOIN pg_catalog.pg_namespace n ON n.oid = x.extnamespace
          WHERE x.extname <> 'plpgsql' ORDER BY x.extname`,
      )
    ) {
      pre.push({
        key: `pg_extension:${r.oid}`,
        priority: PRIORITY.EXTENSION,
        entry: { section: "pre-data", kind: "EXTENSION", schema: "", name: str(r.extname), sql: `CREATE EXTENSION IF NOT EXISTS ${quoteIdent(str(r.extname))} WITH SCHEMA ${quoteIdent(str(r.nspname))};\n` },
      });
    }
  }

  // Types: enums, composites, domains.
  const typeRows = await rows(
    c,
    `SELECT t.oid, t.typnamespace, n.nspname, t.typname, t.typtype, pg_catalog.pg_get_userbyid(t.typowner) AS owner,
            pg_catalog.obj_description(t.oid, 'pg_type') AS comment, t.typrelid, t.typnotnull,
            pg_catalog.format_type(t.typbasetype, t.typtypmod) AS basetype, t.typdefault,
            CASE WHEN t.typcollation <> 0 AND t.typcollation <> bt.typcollation THEN
              (SELECT pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname) FROM pg_catalog.pg_collation co
                 JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = t.typcollation) END AS collation,
            (SELECT pg_catalog.array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid) AS labels
       FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
       LEFT JOIN pg_catalog.pg_type bt ON bt.oid = t.typbasetype
      WHERE t.typtype IN ('e','d','c') AND ${SYSTEM_SCHEMA} AND ${notExt("pg_type", "t.oid")}
        AND (t.typrelid = 0 OR (SELECT r.relkind FROM pg_catalog.pg_class r WHERE r.oid = t.typrelid) = 'c')
      ORDER BY n.nspname, t.typname`,
  );
  const compositeOf = new Map<number, number>();
  const domainChecks = new Map<number, string>();
  for (
    const r of await rows(
      c,
      `SELECT con.contypid, pg_catalog.quote_ident(con.conname) AS name, pg_catalog.pg_get_constraintdef(con.oid) AS def
         FROM pg_catalog.pg_constraint con WHERE con.contypid <> 0 AND con.contype = 'c' ORDER BY con.contypid, con.conname`,
    )
  ) domainChecks.set(Number(r.contypid), (domainChecks.get(Number(r.contypid)) ?? "") + `\n    CONSTRAINT ${str(r.name)} ${str(r.def)}`);
  const typeCols = await rows(
    c,
    `SELECT a.attrelid, pg_catalog.quote_ident(a.attname) AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type
       FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class r ON r.oid = a.attrelid AND r.relkind = 'c'
      WHERE a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attrelid, a.attnum`,
  );
  for (const r of typeRows) {
    if (!full && !(incSchemas && nsDumped(r.typnamespace))) continue;
    if (!nsDumped(r.typnamespace)) continue;
    const target = qualify(str(r.nspname), str(r.typname));
    let sql: string;
    let kind = "TYPE";
    if (r.typtype === "e") {
      const labels = (r.labels as string[] | null) ?? [];
      sql = `CREATE TYPE ${target} AS ENUM (${labels.map((l) => `\n    ${quoteLiteral(l)}`).join(",")}\n);\n`;
    } else if (r.typtype === "c") {
      compositeOf.set(Number(r.typrelid), Number(r.oid));
      const cols = typeCols.filter((a) => Number(a.attrelid) === Number(r.typrelid));
      sql = `CREATE TYPE ${target} AS (${cols.map((a) => `\n    ${str(a.name)} ${str(a.type)}`).join(",")}\n);\n`;
    } else {
      kind = "DOMAIN";
      sql = `CREATE DOMAIN ${target} AS ${str(r.basetype)}` + (r.collation ? ` COLLATE ${str(r.collation)}` : "") +
        (r.typdefault !== null && r.typdefault !== undefined ? ` DEFAULT ${str(r.typdefault)}` : "") + (bool(r.typnotnull) ? " NOT NULL" : "") +
        (domainChecks.get(Number(r.oid)) ?? "") + ";\n";
    }
    sql += owner(target, kind === "DOMAIN" ? "DOMAIN" : "TYPE", r.owner) + comment(`${kind === "DOMAIN" ? "DOMAIN" : "TYPE"} ${target}`, r.comment);
    pre.push({ key: `pg_type:${r.oid}`, priority: kind === "DOMAIN" ? PRIORITY.DOMAIN : PRIORITY.TYPE, entry: { section: "pre-data", kind, schema: str(r.nspname), name: str(r.typname), sql } });
    addAcl(str(r.nspname), str(r.typname), aclSql(`${kind === "DOMAIN" ? "DOMAIN" : "TYPE"} ${target}`, acls.get(`pg_type:${r.oid}`), str(r.owner)));
  }

  // Functions and procedures.
  for (
    const r of await rows(
      c,
      `SELECT p.oid, p.pronamespace, n.nspname, p.proname, p.prokind, pg_catalog.pg_get_userbyid(p.proowner) AS owner,
              pg_catalog.pg_get_functiondef(p.oid) AS def, pg_catalog.pg_get_function_identity_arguments(p.oid) AS args,
              pg_catalog.obj_description(p.oid, 'pg_proc') AS comment
         FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
        WHERE p.prokind IN ('f','p','w') AND ${SYSTEM_SCHEMA} AND ${notExt("pg_proc", "p.oid")}
        ORDER BY n.nspname, p.proname, args`,
    )
  ) {
    if (!full && !(incSchemas && nsDumped(r.pronamespace))) continue;
    if (!nsDumped(r.pronamespace)) continue;
    const kw = r.prokind === "p" ? "PROCEDURE" : "FUNCTION";
    const target = `${qualify(str(r.nspname), str(r.proname))}(${str(r.args)})`;
    const def = str(r.def).replace(/\s*$/, "");
    const sql = `${def}${def.endsWith(";") ? "" : ";"}\n` + owner(target, kw, r.owner) + comment(`${kw} ${target}`, r.comment);
    pre.push({ key: `pg_proc:${r.oid}`, priority: PRIORITY.FUNCTION, entry: { section: "pre-data", kind: kw, schema: str(r.nspname), name: `${str(r.proname)}(${str(r.args)})`, sql } });
    addAcl(str(r.nspname), str(r.proname), aclSql(`${kw} ${target}`, acls.get(`pg_proc:${r.oid}`), str(r.owner)));
  }

  // Columns of dumped tables and views.
  const relOids = relRows.filter((r) => relDumped.has(Number(r.oid))).map((r) => Number(r.oid));
  const colRows = await rows(
    c,
    `SELECT a.attrelid, a.attnum, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull, a.attidentity,
            a.attgenerated, pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS def, pg_catalog.col_description(a.attrelid, a.attnum) AS comment,
            CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN
              (SELECT pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname) FROM pg_catalog.pg_collation co
                 JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) END AS collation,
            (SELECT pg_catalog.quote_ident(nc.conname) FROM pg_catalog.pg_constraint nc
              WHERE nc.conrelid = a.attrelid AND nc.contype = 'n' AND nc.conkey[1] = a.attnum LIMIT 1) AS nnname,
            CASE WHEN a.attidentity <> '' THEN pg_catalog.pg_get_serial_sequence(pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(r.relname), a.attname) END AS idseq,
            (SELECT d.objid FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
              AND d.refobjid = a.attrelid AND d.refobjsubid = a.attnum AND d.deptype = 'i' LIMIT 1) AS idseqoid
       FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
       JOIN pg_catalog.pg_class r ON r.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace
       LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attrelid, a.attnum`,
    [relOids],
  );
  const colsOf = new Map<number, R[]>();
  for (const r of colRows) {
    const k = Number(r.attrelid);
    const l = colsOf.get(k);
    if (l) l.push(r);
    else colsOf.set(k, [r]);
  }
  const seqRows = await rows(
    c,
    `SELECT s.seqrelid, pg_catalog.format_type(s.seqtypid, NULL) AS type, s.seqstart, s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle
       FROM pg_catalog.pg_sequence s`,
  );
  const seqOpts = new Map<number, R>(seqRows.map((r) => [Number(r.seqrelid), r]));
  const seqClause = (s: R | undefined) =>
    s
      ? `AS ${str(s.type)} START WITH ${str(s.seqstart)} INCREMENT BY ${str(s.seqincrement)} MINVALUE ${str(s.seqmin)} MAXVALUE ${
        str(s.seqmax)
      } CACHE ${str(s.seqcache)}${bool(s.seqcycle) ? " CYCLE" : " NO CYCLE"}`
      : "";

  // Constraints of dumped tables.
  const conRows = await rows(
    c,
    `SELECT con.oid, con.conrelid, con.conname, con.contype, con.convalidated, con.conislocal, pg_catalog.pg_get_constraintdef(con.oid) AS def,
            pg_catalog.obj_description(con.oid, 'pg_constraint') AS comment
       FROM pg_catalog.pg_constraint con WHERE con.conrelid = ANY($1::oid[]) ORDER BY con.conrelid, con.conname`,
    [relOids],
  );
  const relByOid = new Map<number, R>(relRows.map((r) => [Number(r.oid), r]));
  const sequences: TableData[] = [];
  const seqValueEntries: TocEntry[] = [];
  const data: TableData[] = [];
  const ownedBy = new Map<number, R>(ownedSeq.map((r) => [Number(r.seq), r]));
  const identitySeqs: { seq: string; schema: string; name: string }[] = [];

  for (const r of relRows) {
    const oid = Number(r.oid);
    if (!relDumped.has(oid)) continue;
    const schema = str(r.nspname);
    const name = str(r.relname);
    const target = qualify(schema, name);
    const cols = colsOf.get(oid) ?? [];
    let sql = "";
    let kind: string;
    let priority: number;
    if (r.relkind === "S") {
      kind = "SEQUENCE";
      priority = PRIORITY.SEQUENCE;
      sql = `CREATE ${r.relpersistence === "u" ? "UNLOGGED " : ""}SEQUENCE ${target}\n    ${seqClause(seqOpts.get(oid))};\n`;
      sequences.push({ oid, schema, name, columns: "", estimatedRows: 1, estimatedBytes: 0 });
    } else if (r.relkind === "r") {
      kind = "TABLE";
      priority = PRIORITY.TABLE;
      const lines: string[] = [];
      for (const a of cols) {
        let line = `${quoteIdent(str(a.attname))} ${str(a.type)}`;
        if (a.collation) line += ` COLLATE ${str(a.collation)}`;
        if (a.attidentity === "a" || a.attidentity === "d") {
          const seq = str(a.idseq);
          line += ` GENERATED ${a.attidentity === "a" ? "ALWAYS" : "BY DEFAULT"} AS IDENTITY`;
          if (seq) {
            // The column's type is the sequence's; the rest of its options are spelled out.
            const opts = seqClause(seqOpts.get(Number(a.idseqoid))).replace(/^AS \S+ /, "");
            line += ` (\n        SEQUENCE NAME ${seq}\n        ${opts}\n    )`;
            identitySeqs.push({ seq, schema, name });
          }
        } else if (a.attgenerated === "s" || a.attgenerated === "v") {
          line += ` GENERATED ALWAYS AS (${str(a.def)})${a.attgenerated === "s" ? " STORED" : " VIRTUAL"}`;
        } else if (a.def !== null && a.def !== undefined) line += ` DEFAULT ${str(a.def)}`;
        if (bool(a.attnotnull)) line += a.nnname ? ` CONSTRAINT ${str(a.nnname)} NOT NULL` : " NOT NULL";
        lines.push(line);
      }
      for (const k of conRows) {
        if (Number(k.conrelid) !== oid || k.contype !== "c" || !bool(k.convalidated)) continue;
        lines.push(`CONSTRAINT ${quoteIdent(str(k.conname))} ${str(k.def)}`);
      }
      const opts = (r.reloptions as string[] | null)?.length ? `\nWITH (${(r.reloptions as string[]).join(", ")})` : "";
      sql = `CREATE ${r.relpersistence === "u" ? "UNLOGGED " : ""}TABLE ${target} (${lines.map((l) => `\n    ${l}`).join(",")}\n)${opts};\n`;
      if (!excData.has(oid)) {
        const copyCols = cols.filter((a) => !a.attgenerated).map((a) => quoteIdent(str(a.attname)));
        data.push({
          oid,
          schema,
          name,
          columns: `(${copyCols.join(", ")})`,
          estimatedRows: Number(r.reltuples),
          estimatedBytes: Number(r.relpages) * Number(r.bs) + Number(r.toastbytes),
        });
      }
    } else {
      const mat = r.relkind === "m";
      kind = mat ? "MATERIALIZED VIEW" : "VIEW";
      priority = mat ? PRIORITY["MATERIALIZED VIEW"] : PRIORITY.VIEW;
      const def = str((await rows(c, "SELECT pg_catalog.pg_get_viewdef($1::oid) AS d", [oid]))[0].d).replace(/;\s*$/, "");
      const opts = (r.reloptions as string[] | null)?.length ? ` WITH (${(r.reloptions as string[]).join(", ")})` : "";
      sql = `CREATE ${kind} ${target}${opts} AS\n${def}${mat ? "\n  WITH NO DATA" : ""};\n`;
      if (mat) post.push({ section: "post-data", kind: "MATERIALIZED VIEW DATA", schema, name, sql: `REFRESH MATERIALIZED VIEW ${target};\n` });
    }
    sql += owner(target, kind === "TABLE" ? "TABLE" : kind, r.owner) + comment(`${kind} ${target}`, r.comment);
    for (const a of cols) sql += comment(`COLUMN ${target}.${quoteIdent(str(a.attname))}`, a.comment);
    pre.push({ key: `pg_class:${oid}`, priority, entry: { section: "pre-data", kind, schema, name, sql } });
    addAcl(schema, name, aclSql(`${kind === "SEQUENCE" ? "SEQUENCE" : "TABLE"} ${target}`, acls.get(`pg_class:${oid}`), str(r.owner)));
    const colAcl = acls.get(`col:${oid}`);
    if (colAcl) {
      addAcl(schema, name, colAcl.map((a) => {
        const grantee = a.grantee === null || a.grantee === "" ? "PUBLIC" : quoteIdent(str(a.grantee));
        return `GRANT ${str(a.privilege)} (${str(a.columns)}) ON TABLE ${target} TO ${grantee}${bool(a.grantable) ? " WITH GRANT OPTION" : ""};\n`;
      }).join(""));
    }
  }

  // Sequence ownership (pg_dump's SEQUENCE OWNED BY) and current values.
  for (const s of sequences) {
    const o = ownedBy.get(s.oid);
    const rel = o ? relByOid.get(Number(o.rel)) : undefined;
    if (o && rel && relDumped.has(Number(o.rel))) {
      pre.push({
        key: `owned:${s.oid}`,
        priority: 10,
        entry: {
          section: "pre-data",
          kind: "SEQUENCE OWNED BY",
          schema: s.schema,
          name: s.name,
          sql: `ALTER SEQUENCE ${qualify(s.schema, s.name)} OWNED BY ${qualify(str(rel.nspname), str(rel.relname))}.${quoteIdent(str(o.attname))};\n`,
        },
      });
    }
  }
  const allSeqs = [...sequences.map((s) => qualify(s.schema, s.name)), ...identitySeqs.map((s) => s.seq)];
  for (const q of allSeqs) {
    const v = (await rows(c, `SELECT last_value::text AS v, is_called FROM ${q}`))[0];
    seqValueEntries.push({
      section: "data",
      kind: "SEQUENCE SET",
      schema: "",
      name: q,
      sql: `SELECT pg_catalog.setval(${quoteLiteral(q)}, ${str(v.v)}, ${bool(v.is_called) ? "true" : "false"});\n`,
    });
  }

  // Post-data: indexes, then PK/unique/exclusion constraints, then FKs and NOT VALID checks, then triggers.
  const indexes = await rows(
    c,
    `SELECT i.indexrelid, n.nspname, ic.relname, pg_catalog.pg_get_indexdef(i.indexrelid) AS def,
            pg_catalog.obj_description(i.indexrelid, 'pg_class') AS comment
       FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid JOIN pg_catalog.pg_namespace n ON n.oid = ic.relnamespace
      WHERE i.indrelid = ANY($1::oid[]) AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype IN ('p','u','x'))
      ORDER BY n.nspname, ic.relname`,
    [relOids],
  );
  for (const r of indexes) {
    const target = qualify(str(r.nspname), str(r.relname));
    post.push({ section: "post-data", kind: "INDEX", schema: str(r.nspname), name: str(r.relname), sql: `${str(r.def)};\n` + comment(`INDEX ${target}`, r.comment) });
  }
  const conEntry = (k: R, kind: string): TocEntry => {
    const rel = relByOid.get(Number(k.conrelid))!;
    const t = qualify(str(rel.nspname), str(rel.relname));
    return {
      section: "post-data",
      kind,
      schema: str(rel.nspname),
      name: `${str(rel.relname)} ${str(k.conname)}`,
      sql: `ALTER TABLE ONLY ${t}\n    ADD CONSTRAINT ${quoteIdent(str(k.conname))} ${str(k.def)};\n` + comment(`CONSTRAINT ${quoteIdent(str(k.conname))} ON ${t}`, k.comment),
    };
  };
  for (const k of conRows) if (k.contype === "p" || k.contype === "u" || k.contype === "x") post.push(conEntry(k, "CONSTRAINT"));
  for (const k of conRows) if (k.contype === "c" && !bool(k.convalidated)) post.push(conEntry(k, "CHECK CONSTRAINT"));
  for (const k of conRows) {
    if (k.contype === "c" && bool(k.convalidated)) {
      // Inline in CREATE TABLE; only the comment remains.
      const rel = relByOid.get(Number(k.conrelid))!;
      const cm = comment(`CONSTRAINT ${quoteIdent(str(k.conname))} ON ${qualify(str(rel.nspname), str(rel.relname))}`, k.comment);
      if (cm) post.push({ section: "post-data", kind: "COMMENT", schema: str(rel.nspname), name: str(k.conname), sql: cm });
    }
  }
  for (const k of conRows) if (k.contype === "f") post.push(conEntry(k, "FK CONSTRAINT"));
  for (
    const r of await rows(
      c,
      `SELECT t.oid, t.tgname, n.nspname, c.relname, pg_catalog.pg_get_triggerdef(t.oid) AS def, pg_catalog.obj_description(t.oid, 'pg_trigger') AS comment,
              t.tgenabled
         FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE t.tgrelid = ANY($1::oid[]) AND NOT t.tgisinternal ORDER BY n.nspname, c.relname, t.tgname`,
      [relOids],
    )
  ) {
    const t = qualify(str(r.nspname), str(r.relname));
    let sql = `${str(r.def)};\n` + comment(`TRIGGER ${quoteIdent(str(r.tgname))} ON ${t}`, r.comment);
    const en = str(r.tgenabled);
    if (en === "D") sql += `ALTER TABLE ${t} DISABLE TRIGGER ${quoteIdent(str(r.tgname))};\n`;
    else if (en === "R") sql += `ALTER TABLE ${t} ENABLE REPLICA TRIGGER ${quoteIdent(str(r.tgname))};\n`;
    else if (en === "A") sql += `ALTER TABLE ${t} ENABLE ALWAYS TRIGGER ${quoteIdent(str(r.tgname))};\n`;
    post.push({ section: "post-data", kind: "TRIGGER", schema: str(r.nspname), name: `${str(r.relname)} ${str(r.tgname)}`, sql });
  }

  const preData = await sortPreData(c, pre, compositeOf, warnings);
  // pg_dump refreshes materialized views after everything else they might read exists.
  const refreshes = post.filter((e) => e.kind === "MATERIALIZED VIEW DATA");
  const order = new Map(preData.map((e, i) => [`${e.schema}\0${e.name}`, i]));
  refreshes.sort((a, b) => (order.get(`${a.schema}\0${a.name}`) ?? 0) - (order.get(`${b.schema}\0${b.name}`) ?? 0));
  const postData = [...post.filter((e) => e.kind !== "MATERIALIZED VIEW DATA"), ...refreshes, ...aclEntries];
  return { preData, data, sequenceValues: seqValueEntries, postData, warnings };
}

/**
 * Topological sort of pre-data objects over pg_depend (normal dependencies), with rules mapped
 * to their view, defaults and constraints to their table or domain, array types to their element
 * type, composite-type relations to their type, and extension members to their extension. Among
 * objects that are ready, the kind priority then the name decides (pg_dump's tie-break).
 */
async function sortPreData(c: Client, pre: PreObject[], compositeOf: Map<number, number>, warnings: string[]): Promise<TocEntry[]> {
  const byKey = new Map(pre.map((p) => [p.key, p]));
  const rewrite = new Map<number, number>();
  for (const r of await rows(c, "SELECT oid, ev_class FROM pg_catalog.pg_rewrite WHERE oid >= 16384")) rewrite.set(Number(r.oid), Number(r.ev_class));
  const attrdef = new Map<number, number>();
  for (const r of await rows(c, "SELECT oid, adrelid FROM pg_catalog.pg_attrdef WHERE oid >= 16384")) attrdef.set(Number(r.oid), Number(r.adrelid));
  const cons = new Map<number, string>();
  for (const r of await rows(c, "SELECT oid, conrelid, contypid FROM pg_catalog.pg_constraint WHERE oid >= 16384")) {
    cons.set(Number(r.oid), Number(r.conrelid) ? `pg_class:${r.conrelid}` : `pg_type:${r.contypid}`);
  }
  const types = new Map<number, string>();
  for (
    const r of await rows(
      c,
      `SELECT t.oid, t.typrelid, t.typelem, t.typcategory, r.relkind FROM pg_catalog.pg_type t LEFT JOIN pg_catalog.pg_class r ON r.oid = t.typrelid WHERE t.oid >= 16384`,
    )
  ) {
    if (Number(r.typrelid) && r.relkind !== "c") types.set(Number(r.oid), `pg_class:${r.typrelid}`);
    else if (r.typcategory === "A" && Number(r.typelem)) types.set(Number(r.oid), `pg_type:${r.typelem}`);
  }
  const extOf = new Map<string, string>();
  for (
    const r of await rows(c, "SELECT (SELECT k.relname FROM pg_catalog.pg_class k WHERE k.oid = d.classid) AS cls, d.objid, d.refobjid FROM pg_catalog.pg_depend d WHERE d.deptype = 'e' AND d.refclassid = 'pg_extension'::regclass")
  ) extOf.set(`${r.cls}:${r.objid}`, `pg_extension:${r.refobjid}`);

  const norm = (cls: string, oid: number): string => {
    let key = `${cls}:${oid}`;
    for (let i = 0; i < 4; i++) {
      const ext = extOf.get(key);
      if (ext) return ext;
      const [k, o] = [key.slice(0, key.indexOf(":")), Number(key.slice(key.indexOf(":") + 1))];
      let next: string | undefined;
      if (k === "pg_rewrite" && rewrite.has(o)) next = `pg_class:${rewrite.get(o)}`;
      else if (k === "pg_attrdef" && attrdef.has(o)) next = `pg_class:${attrdef.get(o)}`;
      else if (k === "pg_constraint" && cons.has(o)) next = cons.get(o);
      else if (k === "pg_type" && types.has(o)) next = types.get(o);
      else if (k === "pg_class" && compositeOf.has(o)) next = `pg_type:${compositeOf.get(o)}`;
      if (!next || next === key) break;
      key = next;
    }
    return key;
  };

  const edges = new Map<string, Set<string>>(); // object -> objects it needs first
  for (const p of pre) edges.set(p.key, new Set());
  // An owned-by entry needs both its sequence and table.
  for (const p of pre) {
    if (p.key.startsWith("owned:")) edges.get(p.key)!.add(`pg_class:${p.key.slice(6)}`);
  }
  for (
    const r of await rows(
      c,
      `SELECT (SELECT k.relname FROM pg_catalog.pg_class k WHERE k.oid = d.classid) AS cls, d.objid, (SELECT k.relname FROM pg_catalog.pg_class k WHERE k.oid = d.refclassid) AS refcls, d.refobjid
         FROM pg_catalog.pg_depend d WHERE d.deptype = 'n' AND d.objid >= 16384 AND d.refobjid >= 16384`,
    )
  ) {
    const from = norm(str(r.cls), Number(r.objid));
    const to = norm(str(r.refcls), Number(r.refobjid));
    if (from === to || !byKey.has(from) || !byKey.has(to)) continue;
    edges.get(from)!.add(to);
  }
  // Every object needs its schema: pg_depend says so too, but only for the object itself.
  const out: TocEntry[] = [];
  const done = new Set<string>();
  // Code-unit order, not locale order: the same in every runtime.
  const lt = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
  const cmp = (a: PreObject, b: PreObject) => a.priority - b.priority || lt(a.entry.schema, b.entry.schema) || lt(a.entry.name, b.entry.name);
  const pending = [...pre].sort(cmp);
  while (pending.length) {
    const i = pending.findIndex((p) => [...edges.get(p.key)!].every((d) => done.has(d)));
    if (i < 0) {
      warnings.push(`dependency loop among: ${pending.slice(0, 5).map((p) => `${p.entry.kind} ${p.entry.schema}.${p.entry.name}`).join(", ")}; dumped in kind order`);
      for (const p of pending) out.push(p.entry);
      break;
    }
    const [p] = pending.splice(i, 1);
    done.add(p.key);
    out.push(p.entry);
  }
  return out;
}

/**
 * The tables of `data` whose rows can travel in binary COPY and be read back into a database
 * made from the dump. Every type their copied columns use, and every type those are made of
 * (a domain's base, an array's element, a composite's columns, a range's subtype), must have
 * binary send and receive functions; the binary form must not name by OID a type of the
 * database's own (OID 16384 and up: an array's element type, a composite's column types, which
 * array_recv and record_recv check and a restore creates anew under other OIDs); and no column
 * may hold an OID alias (regclass, regtype, ...), whose binary form is the OID itself where the
 * text form is the name a restore resolves again. `serverVersion`: the server's `server_version`
 * (multiranges, PostgreSQL 14 and later, are walked to their ranges).
 */
export async function binaryCopyable(c: Client, data: readonly TableData[], serverVersion: string): Promise<Set<number>> {
  if (!data.length) return new Set();
  // Multiranges (PostgreSQL 14+) are made of ranges.
  const multirange = Number.parseInt(serverVersion, 10) >= 14;
  const bad = await rows(
    c,
    `WITH RECURSIVE t(rel, typ, named) AS (
        SELECT a.attrelid, a.atttypid, false FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = ANY($1::pg_catalog.oid[]) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
      UNION
        SELECT t.rel, s.typ, s.named FROM t JOIN pg_catalog.pg_type y ON y.oid = t.typ
         CROSS JOIN LATERAL (
           SELECT y.typbasetype, false WHERE y.typbasetype <> 0
           UNION ALL SELECT y.typelem, true WHERE y.typelem <> 0 AND y.typlen = -1
           UNION ALL SELECT a.atttypid, true FROM pg_catalog.pg_attribute a
                      WHERE y.typrelid <> 0 AND a.attrelid = y.typrelid AND a.attnum > 0 AND NOT a.attisdropped
           UNION ALL SELECT r.rngsubtype, false FROM pg_catalog.pg_range r WHERE r.rngtypid = y.oid
           ${multirange ? "UNION ALL SELECT r.rngtypid, false FROM pg_catalog.pg_range r WHERE r.rngmultitypid = y.oid" : ""}
         ) s(typ, named)
    )
    SELECT DISTINCT t.rel FROM t JOIN pg_catalog.pg_type y ON y.oid = t.typ
     WHERE y.typsend::pg_catalog.oid = 0 OR y.typreceive::pg_catalog.oid = 0
        OR (t.named AND t.typ >= 16384) OR (y.oid < 16384 AND y.typname OPERATOR(pg_catalog.~) '^reg')`,
    [`{${data.map((t) => t.oid).join(",")}}`],
  );
  const out = new Set(data.map((t) => t.oid));
  for (const r of bad) out.delete(Number(r.rel));
  return out;
}
