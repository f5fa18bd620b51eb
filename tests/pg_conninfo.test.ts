// Connection strings, services, environment and .pgpass as libpq reads them. The expected
// results and error texts were taken from libpq 18 (PQconninfoParse and PQconnectStart on the
// same inputs) and from PostgreSQL's own URI cases (src/interfaces/libpq/t/001_uri.pl).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import {
  type ConnInfo,
  DEFAULT_SOCKET_DIR,
  KEYWORD_TABLE,
  KEYWORDS,
  lookupPassword,
  optionSource,
  parseConnectionString,
  replicationMode,
  resolveConnInfo,
} from "../pg/conninfo.ts";
import { ConnectionStringError } from "../pg/errors.ts";

type Expect = Record<string, string> | { error: string };

/** Asserts parse result or error message; errors must be ConnectionStringError. */
function checkParse(input: string, expected: Expect): void {
  if ("error" in expected && typeof expected.error === "string" && Object.keys(expected).length === 1) {
    assert.throws(() => parseConnectionString(input), (e: unknown) => {
      assert.ok(e instanceof ConnectionStringError, `${input}: not a ConnectionStringError`);
      assert.equal(e.message, expected.error, input);
      return true;
    });
  } else {
    assert.deepEqual(parseConnectionString(input), expected, input);
  }
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "pg-rdma-conninfo-"));
}

/** Resolves with an explicit environment and no service or password files to be found. */
const NOWHERE = "/nonexistent/pg-rdma-conninfo-test";
function resolve(input?: string | Record<string, string | undefined>, env: Record<string, string> = {}): ConnInfo {
  return resolveConnInfo(input, { env: { PGSYSCONFDIR: NOWHERE, ...env }, homeDir: NOWHERE });
}
function resolveError(input: string | Record<string, string | undefined>, env: Record<string, string> = {}): string {
  try {
    resolve(input, env);
  } catch (e) {
    assert.ok(e instanceof ConnectionStringError, `not a ConnectionStringError: ${e}`);
    return e.message;
  }
  assert.fail(`resolveConnInfo(${JSON.stringify(input)}) did not throw`);
}

// [input, expected parse, "unix" | "tcp" for the first host as 001_uri.pl's (local)/(inet)]
const URI_CASES: [string, Expect, ("unix" | "tcp")?][] = [
  ["postgresql://uri-user:secret@host:12345/db", { user: "uri-user", password: "secret", host: "host", port: "12345", dbname: "db" }, "tcp"],
  ["postgresql://uri-user@host:12345/db", { user: "uri-user", host: "host", port: "12345", dbname: "db" }, "tcp"],
  ["postgresql://uri-user@host/db", { user: "uri-user", host: "host", dbname: "db" }, "tcp"],
  ["postgresql://host:12345/db", { host: "host", port: "12345", dbname: "db" }, "tcp"],
  ["postgresql://host/db", { host: "host", dbname: "db" }, "tcp"],
  ["postgresql://uri-user@host:12345/", { user: "uri-user", host: "host", port: "12345" }, "tcp"],
  ["postgresql://uri-user@host/", { user: "uri-user", host: "host" }, "tcp"],
  ["postgresql://uri-user@", { user: "uri-user" }, "unix"],
  ["postgresql://host:12345/", { host: "host", port: "12345" }, "tcp"],
  ["postgresql://host:12345", { host: "host", port: "12345" }, "tcp"],
  ["postgresql://host/", { host: "host" }, "tcp"],
  ["postgresql://host", { host: "host" }, "tcp"],
  ["postgresql://", {}, "unix"],
  ["postgresql://?hostaddr=127.0.0.1", { hostaddr: "127.0.0.1" }, "tcp"],
  ["postgresql://example.com?hostaddr=63.1.2.4", { host: "example.com", hostaddr: "63.1.2.4" }, "tcp"],
  ["postgresql://%68ost/", { host: "host" }, "tcp"],
  ["postgresql://host/db?user=uri-user", { host: "host", dbname: "db", user: "uri-user" }, "tcp"],
  ["postgresql://host/db?user=uri-user&port=12345", { host: "host", dbname: "db", user: "uri-user", port: "12345" }, "tcp"],
  ["postgresql://host/db?u%73er=someotheruser&port=12345", { host: "host", dbname: "db", user: "someotheruser", port: "12345" }, "tcp"],
  ["postgresql://host/db?u%7aer=someotheruser&port=12345", { error: 'invalid URI query parameter: "uzer"' }],
  ["postgresql://host:12345?user=uri-user", { host: "host", port: "12345", user: "uri-user" }, "tcp"],
  ["postgresql://host?user=uri-user", { host: "host", user: "uri-user" }, "tcp"],
  ["postgresql://host?", { host: "host" }, "tcp"],
  ["postgresql://[::1]:12345/db", { host: "::1", port: "12345", dbname: "db" }, "tcp"],
  ["postgresql://[::1]/db", { host: "::1", dbname: "db" }, "tcp"],
  ["postgresql://[2001:db8::1234]/", { host: "2001:db8::1234" }, "tcp"],
  ["postgresql://[200z:db8::1234]/", { host: "200z:db8::1234" }, "tcp"],
  ["postgresql://[::1]", { host: "::1" }, "tcp"],
  ["postgres://", {}, "unix"],
  ["postgres:///", {}, "unix"],
  ["postgres:///db", { dbname: "db" }, "unix"],
  ["postgres://uri-user@/db", { user: "uri-user", dbname: "db" }, "unix"],
  ["postgres://?host=/path/to/socket/dir", { host: "/path/to/socket/dir" }, "unix"],
  ["postgresql://host?uzer=", { error: 'invalid URI query parameter: "uzer"' }],
  ["postgre://", { error: 'missing "=" after "postgre://" in connection info string' }],
  ["postgres://[::1", { error: 'end of string reached when looking for matching "]" in IPv6 host address in URI: "postgres://[::1"' }],
  ["postgres://[]", { error: 'IPv6 host address may not be empty in URI: "postgres://[]"' }],
  ["postgres://[::1]z", { error: 'unexpected character "z" at position 17 in URI (expected ":" or "/"): "postgres://[::1]z"' }],
  ["postgresql://host?zzz", { error: 'missing key/value separator "=" in URI query parameter: "zzz"' }],
  ["postgresql://host?value1&value2", { error: 'missing key/value separator "=" in URI query parameter: "value1"' }],
  ["postgresql://host?key=key=value", { error: 'extra key/value separator "=" in URI query parameter: "key"' }],
  ["postgres://host?dbname=%XXfoo", { error: 'invalid percent-encoded token: "%XXfoo"' }],
  ["postgresql://a%00b", { error: 'forbidden value %00 in percent-encoded value: "a%00b"' }],
  ["postgresql://%zz", { error: 'invalid percent-encoded token: "%zz"' }],
  ["postgresql://%1", { error: 'invalid percent-encoded token: "%1"' }],
  ["postgresql://%", { error: 'invalid percent-encoded token: "%"' }],
  ["postgres://@host", { host: "host" }, "tcp"],
  ["postgres://host:/", { host: "host" }, "tcp"],
  ["postgres://:12345/", { port: "12345" }, "unix"],
  ["postgres://otheruser@?host=/no/such/directory", { user: "otheruser", host: "/no/such/directory" }, "unix"],
  ["postgres://otheruser@/?host=/no/such/directory", { user: "otheruser", host: "/no/such/directory" }, "unix"],
  ["postgres://otheruser@:12345?host=/no/such/socket/path", { user: "otheruser", port: "12345", host: "/no/such/socket/path" }, "unix"],
  ["postgres://otheruser@:12345/db?host=/path/to/socket", { user: "otheruser", port: "12345", dbname: "db", host: "/path/to/socket" }, "unix"],
  ["postgres://:12345/db?host=/path/to/socket", { port: "12345", dbname: "db", host: "/path/to/socket" }, "unix"],
  ["postgres://:12345?host=/path/to/socket", { port: "12345", host: "/path/to/socket" }, "unix"],
  ["postgres://%2Fvar%2Flib%2Fpostgresql/dbname", { host: "/var/lib/postgresql", dbname: "dbname" }, "unix"],
  ["postgresql://host?sslmode=disable", { host: "host", sslmode: "disable" }, "tcp"],
  // More, from libpq 18 on the same input:
  ["postgresql://host?ssl=true", { host: "host", sslmode: "require" }, "tcp"],
  ["postgresql://host?ssl=false", { error: 'invalid URI query parameter: "ssl"' }],
  ["postgresql://h?ssl=true&sslmode=disable", { host: "h", sslmode: "disable" }, "tcp"],
  ["postgresql://h?sslmode=disable&ssl=true", { host: "h", sslmode: "require" }, "tcp"],
  ["postgresql://h?requiressl=1", { host: "h", sslmode: "require" }, "tcp"],
  ["postgresql://h1:1,h2:2,[::1]:3/d", { host: "h1,h2,::1", port: "1,2,3", dbname: "d" }, "tcp"],
  ["postgresql://h:5432,h2/d?port=1", { host: "h,h2", port: "1", dbname: "d" }, "tcp"],
  ["postgresql://[::1]:5432,[fe80::1%25eth0]/x", { host: "::1,fe80::1%eth0", port: "5432,", dbname: "x" }, "tcp"],
  ["postgresql://h,", { host: "h,", port: "," }, "tcp"],
  ["postgresql://h/d%2Fx", { host: "h", dbname: "d/x" }, "tcp"],
  ["postgresql://h/?options=-c%20x%3Dy", { host: "h", options: "-c x=y" }, "tcp"],
  ["postgresql://h?host=x&host=y", { host: "y" }, "tcp"],
  ["postgresql://user@h?user=z", { user: "z", host: "h" }, "tcp"],
  ["postgresql://u:p:q@h", { user: "u", password: "p:q", host: "h" }, "tcp"],
  ["postgresql://%40u@h", { user: "@u", host: "h" }, "tcp"],
  ["postgresql://u%3Ap@h", { user: "u:p", host: "h" }, "tcp"],
  ["postgresql://u@h@x", { user: "u", host: "h@x" }, "tcp"],
  ["postgresql://h:1:2", { host: "h", port: "1:2" }],
  ["postgresql://h/d/e", { host: "h", dbname: "d/e" }, "tcp"],
  ["postgresql://h#frag", { host: "h#frag" }, "tcp"],
  ["postgresql://h[x]", { host: "h[x]" }, "tcp"],
  ["postgresql://u@[::1]", { user: "u", host: "::1" }, "tcp"],
  ["postgresql://h?dbname=postgresql://x/y", { host: "h", dbname: "postgresql://x/y" }, "tcp"],
  ["postgresql://h?port=", { host: "h", port: "" }, "tcp"],
  ["postgresql://h?%3D=x", { error: 'invalid URI query parameter: "="' }],
  ["postgresql://h?=x", { error: 'invalid URI query parameter: ""' }],
  ["postgresql://h?&", { error: 'missing key/value separator "=" in URI query parameter: ""' }],
  ["postgresql://h?host=x&", { host: "x" }, "tcp"],
  ["postgresql://h?application_name=%41%", { error: 'invalid percent-encoded token: "%41%"' }],
  ["postgresql://h?x=%00", { error: 'forbidden value %00 in percent-encoded value: "%00"' }],
  ["postgresql://h?application_name=caf%C3%A9", { host: "h", application_name: "café" }, "tcp"],
  ["postgresql://%41 @h", { user: "A", host: "h" }, "tcp"],
  ["postgresql://h?application_name=a b", { error: 'unexpected spaces found in "a b", use percent-encoded spaces (%20) instead' }],
  ["postgresql://h?with_rsocket=true", { host: "h", with_rsocket: "true" }, "tcp"],
  ["postgresql:/h", { error: 'missing "=" after "postgresql:/h" in connection info string' }],
  ["POSTGRESQL://h", { error: 'missing "=" after "POSTGRESQL://h" in connection info string' }],
];

for (const [input, expected, kind] of URI_CASES) {
  test(`parseConnectionString() reads the URI ${JSON.stringify(input)} as libpq does`, () => {
    checkParse(input, expected);
    if (kind) assert.equal(resolve(input).hosts[0].kind, kind);
  });
}

const KEYWORD_VALUE_CASES: [string, Expect][] = [
  ["host=a port=", { host: "a", port: "" }],
  ["host='a b\\'c\\\\d'", { host: "a b'c\\d" }],
  ["host='abc", { error: "unterminated quoted string in connection info string" }],
  ["host='abc\\'", { error: "unterminated quoted string in connection info string" }],
  ["host", { error: 'missing "=" after "host" in connection info string' }],
  ["host a", { error: 'missing "=" after "host" in connection info string' }],
  ["foo=bar", { error: 'invalid connection option "foo"' }],
  ["=x", { error: 'invalid connection option ""' }],
  ["a=b'", { error: 'invalid connection option "a"' }],
  ["host='a''b'", { error: `missing "=" after "'b'" in connection info string` }],
  ["host=a host=b", { host: "b" }],
  [" ", {}],
  ["", {}],
  ["host = 'x' dbname=  y", { host: "x", dbname: "y" }],
  ["host= port=1", { host: "port=1" }],
  ["host=a\\ b", { host: "a b" }],
  ["host=a'b", { host: "a'b" }],
  ["host=a\\", { host: "a" }],
  ["host=\\'", { host: "'" }],
  ["host=''", { host: "" }],
  ["host=a\tport=5\ndbname=d\r\n", { host: "a", port: "5", dbname: "d" }],
  ["sslmode=foo", { sslmode: "foo" }],
  ["requiressl=1", { sslmode: "require" }],
  ["requiressl=0", { sslmode: "prefer" }],
  ["dbname=postgresql://h/d", { dbname: "postgresql://h/d" }],
  ["with_rsocket=on", { with_rsocket: "on" }],
  ["password='p w' user=é", { password: "p w", user: "é" }],
];

for (const [input, expected] of KEYWORD_VALUE_CASES) {
  test(`parseConnectionString() reads the keyword/value string ${JSON.stringify(input)} as libpq does`, () => {
    checkParse(input, expected);
  });
}

test("parseConnectionString() rejects a non-string with a TypeError", () => {
  assert.throws(() => parseConnectionString(42 as unknown as string), TypeError);
});

test("ConnectionStringError names the keyword at fault", () => {
  try {
    parseConnectionString("host=a uzer=b");
    assert.fail("no error");
  } catch (e) {
    assert.ok(e instanceof ConnectionStringError);
    assert.ok(e instanceof Error);
    assert.equal(e.name, "ConnectionStringError");
    assert.equal(e.keyword, "uzer");
  }
});

// Values libpq refuses when it connects (connectOptions2), with its wording.
const VALUE_ERRORS: [string, string][] = [
  ["port=x", 'invalid integer value "x" for connection option "port"'],
  ["port=0", 'invalid port number: "0"'],
  ["port=70000", 'invalid port number: "70000"'],
  ["port=-5", 'invalid port number: "-5"'],
  ["port=5432x", 'invalid integer value "5432x" for connection option "port"'],
  ["port=99999999999", 'invalid integer value "99999999999" for connection option "port"'],
  ["host=a,b port=1,x", 'invalid integer value "x" for connection option "port"'],
  ["sslmode=foo", 'invalid sslmode value: "foo"'],
  ["sslmode=Require", 'invalid sslmode value: "Require"'],
  ["sslmode=", 'invalid sslmode value: ""'],
  ["target_session_attrs=foo", 'invalid target_session_attrs value: "foo"'],
  ["load_balance_hosts=foo", 'invalid load_balance_hosts value: "foo"'],
  ["channel_binding=foo", 'invalid channel_binding value: "foo"'],
  ["sslnegotiation=foo", 'invalid sslnegotiation value: "foo"'],
  ["sslnegotiation=direct", 'weak sslmode "prefer" may not be used with sslnegotiation=direct (use "require", "verify-ca", or "verify-full")'],
  ["sslmode=allow sslnegotiation=direct", 'weak sslmode "allow" may not be used with sslnegotiation=direct (use "require", "verify-ca", or "verify-full")'],
  ["require_auth=foo", 'invalid require_auth value: "foo"'],
  ["require_auth=!foo", 'invalid require_auth value: "foo"'],
  ["require_auth=MD5", 'invalid require_auth value: "MD5"'],
  ["require_auth=md5,", 'invalid require_auth value: ""'],
  ["require_auth=!md5,password", 'require_auth method "password" cannot be mixed with negative methods'],
  ["require_auth=md5,!password", 'negative require_auth method "!password" cannot be mixed with non-negative methods'],
  ["require_auth=md5,md5", 'require_auth method "md5" is specified more than once'],
  ["require_auth=!none,!none", 'require_auth method "!none" is specified more than once'],
  ["gssencmode=require", 'gssencmode value "require" invalid when GSSAPI support is not compiled in'],
  ["gssencmode=foo", 'invalid gssencmode value: "foo"'],
  ["sslcertmode=foo", 'invalid sslcertmode value: "foo"'],
  ["ssl_min_protocol_version=foo", 'invalid "ssl_min_protocol_version" value: "foo"'],
  ["ssl_max_protocol_version=foo", 'invalid "ssl_max_protocol_version" value: "foo"'],
  ["ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=TLSv1.2", "invalid SSL protocol version range"],
  ["ssl_max_protocol_version=TLSv1", "invalid SSL protocol version range"],
  ["min_protocol_version=3.1", 'invalid min_protocol_version value: "3.1"'],
  ["max_protocol_version=", 'invalid max_protocol_version value: ""'],
  ["min_protocol_version=3.2 max_protocol_version=3.0", '"min_protocol_version" is greater than "max_protocol_version"'],
  ["sslrootcert=system sslmode=require", 'weak sslmode "require" may not be used with sslrootcert=system (use "verify-full")'],
  ["sslrootcert=system sslmode=disable", 'weak sslmode "disable" may not be used with sslrootcert=system (use "verify-full")'],
  ["host=a,b,c port=1,2", "could not match 2 port numbers to 3 hosts"],
  ["host=a port=1,", "could not match 2 port numbers to 1 hosts"],
  ["port=1,2", "could not match 2 port numbers to 1 hosts"],
  ["host=a,b hostaddr=1.2.3.4", "could not match 2 host names to 1 hostaddr values"],
  ["host=a hostaddr=1.2.3.4,5.6.7.8", "could not match 1 host names to 2 hostaddr values"],
  ["service=nosuch", 'definition of service "nosuch" not found'],
  // pg-rdma's own checks (libpq leaves these to the server or to connect time):
  ["replication=foo", 'invalid replication value: "foo"'],
  ["with_rsocket=maybe", 'invalid with_rsocket value: "maybe"'],
  ["connect_timeout=soon", 'invalid integer value "soon" for connection option "connect_timeout"'],
  ["keepalives_idle=1.5", 'invalid integer value "1.5" for connection option "keepalives_idle"'],
];

for (const [input, message] of VALUE_ERRORS) {
  test(`resolveConnInfo() refuses ${JSON.stringify(input)} with libpq's message`, () => {
    assert.equal(resolveError(input), message);
  });
}

const VALUES_ACCEPTED = [
  "require_auth=none,md5",
  "require_auth=",
  "require_auth=oauth",
  "require_auth=!none",
  "require_auth=gss,sspi",
  "require_auth=!gss,!sspi",
  "require_auth=scram-sha-256,password,md5",
  "gssencmode=prefer",
  "sslcertmode=allow",
  "client_encoding=UTF8",
  "client_encoding=auto",
  "sslmode=require sslnegotiation=direct",
  "ssl_min_protocol_version=tlsv1.2",
  "ssl_min_protocol_version=",
  "ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=tlsv1.3",
  "min_protocol_version=3.0 max_protocol_version=latest",
  "sslrootcert=system",
  "sslrootcert=system sslmode=verify-full",
  "load_balance_hosts=random target_session_attrs=prefer-standby channel_binding=require",
  "replication=database",
  "replication=YES",
  "port=+5",
  "port=' 5 '",
  "krbsrvname=postgres gssdelegation=0 sslcompression=0",
  "tcp_user_timeout=0",
];

for (const input of VALUES_ACCEPTED) {
  test(`resolveConnInfo() accepts ${JSON.stringify(input)} as libpq does`, () => {
    assert.ok(resolve(input).hosts.length >= 1);
  });
}

const UNSUPPORTED: [string, string][] = [
  ["krbsrvname=HTTP", "krbsrvname"],
  ["gsslib=gssapi", "gsslib"],
  ["gssdelegation=1", "gssdelegation"],
  ["requirepeer=postgres", "requirepeer"],
  ["sslcrl=/etc/crl.pem", "sslcrl"],
  ["sslcrldir=/etc/crls", "sslcrldir"],
  ["sslcompression=1", "sslcompression"],
  ["sslkeylogfile=/tmp/keys", "sslkeylogfile"],
  ["keepalives_interval=5", "keepalives_interval"],
  ["keepalives_count=3", "keepalives_count"],
  ["tcp_user_timeout=1000", "tcp_user_timeout"],
  ["oauth_issuer=https://id.example", "oauth_issuer"],
  ["oauth_client_secret=s3cret", "oauth_client_secret"],
  ["scram_client_key=c2VjcmV0", "scram_client_key"],
  ["client_encoding=LATIN1", "client_encoding"],
  ["sslcertmode=require", "sslcertmode"],
  ["min_protocol_version=3.2", "min_protocol_version"],
];

for (const [input, keyword] of UNSUPPORTED) {
  test(`resolveConnInfo() refuses ${keyword}, which pg-rdma does not implement, instead of ignoring it`, () => {
    assert.throws(() => resolve(input), (e: unknown) => {
      assert.ok(e instanceof ConnectionStringError);
      assert.equal(e.keyword, keyword);
      assert.match(e.message, new RegExp(`^connection option "${keyword}".* is not supported: `));
      assert.ok(!/s3cret|c2VjcmV0/.test(e.message), "a secret leaked into the message");
      return true;
    });
  });
}

test("KEYWORDS lists every libpq 18 keyword and with_rsocket, each once", () => {
  const libpq18 = [
    "service", "user", "password", "passfile", "channel_binding", "connect_timeout", "dbname", "host", "hostaddr",
    "port", "client_encoding", "options", "application_name", "fallback_application_name", "keepalives",
    "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout", "sslmode", "sslnegotiation",
    "sslcompression", "sslcert", "sslkey", "sslcertmode", "sslpassword", "sslrootcert", "sslcrl", "sslcrldir",
    "sslsni", "requirepeer", "require_auth", "min_protocol_version", "max_protocol_version",
    "ssl_min_protocol_version", "ssl_max_protocol_version", "gssencmode", "krbsrvname", "gsslib", "gssdelegation",
    "replication", "target_session_attrs", "load_balance_hosts", "scram_client_key", "scram_server_key",
    "oauth_issuer", "oauth_client_id", "oauth_client_secret", "oauth_scope", "sslkeylogfile",
  ];
  assert.deepEqual([...KEYWORDS], [...libpq18, "with_rsocket"]);
  assert.equal(KEYWORD_TABLE.length, KEYWORDS.length);
  for (const k of KEYWORD_TABLE) assert.equal(typeof k.supported, "boolean", k.keyword);
  for (const k of KEYWORD_TABLE.filter((k) => !k.supported)) assert.ok(k.unsupported, `${k.keyword} needs a reason`);
});

test("resolveConnInfo() fills libpq's defaults: OS user, dbname = user, port 5432, the default socket directory", () => {
  const info = resolve();
  assert.ok(info.options.user.length > 0);
  assert.equal(info.options.dbname, info.options.user);
  assert.equal(info.options.port, "5432");
  assert.equal(info.options.sslmode, "prefer");
  assert.equal(info.options.channel_binding, "prefer");
  assert.equal(info.options.target_session_attrs, "any");
  assert.equal(info.options.gssencmode, "disable");
  assert.equal(info.options.with_rsocket, "false");
  assert.equal(info.options.password, undefined);
  assert.deepEqual(info.hosts, [{ host: DEFAULT_SOCKET_DIR, port: 5432, kind: "unix" }]);
});

test("resolveConnInfo() expands host, hostaddr and port lists as libpq does", () => {
  assert.deepEqual(resolve("host=a,/sock,@abstract,,[::1] port=1,2,3,4,5").hosts, [
    { host: "a", port: 1, kind: "tcp" },
    { host: "/sock", port: 2, kind: "unix" },
    { host: "@abstract", port: 3, kind: "unix" },
    { host: DEFAULT_SOCKET_DIR, port: 4, kind: "unix" },
    { host: "[::1]", port: 5, kind: "tcp" },
  ]);
  assert.deepEqual(resolve("postgresql://db1,db2:6000,[::1]/x").hosts, [
    { host: "db1", port: 5432, kind: "tcp" },
    { host: "db2", port: 6000, kind: "tcp" },
    { host: "::1", port: 5432, kind: "tcp" },
  ]);
  assert.deepEqual(resolve("host=a,b port=7").hosts.map((h) => h.port), [7, 7]);
  assert.deepEqual(resolve("host=a,b hostaddr=1.2.3.4, port=7").hosts, [
    { host: "a", hostaddr: "1.2.3.4", port: 7, kind: "tcp" },
    { host: "b", port: 7, kind: "tcp" },
  ]);
  assert.deepEqual(resolve("hostaddr=10.0.0.1,10.0.0.2 host=/sock,").hosts, [
    { host: "/sock", hostaddr: "10.0.0.1", port: 5432, kind: "tcp" },
    { host: "10.0.0.2", hostaddr: "10.0.0.2", port: 5432, kind: "tcp" },
  ]);
});

test("resolveConnInfo() takes the environment below the connection string", () => {
  const env = {
    PGHOST: "envhost",
    PGPORT: "6000",
    PGUSER: "envuser",
    PGDATABASE: "envdb",
    PGPASSWORD: "envpw",
    PGAPPNAME: "envapp",
    PGSSLMODE: "require",
    PGCONNECT_TIMEOUT: "7",
    PGTARGETSESSIONATTRS: "standby",
    PGOPTIONS: "-c geqo=off",
    WITH_RSOCKET: "yes",
  };
  const info = resolve("host=strhost application_name=", env);
  assert.equal(info.options.host, "strhost");
  assert.equal(info.options.application_name, "", "an empty value in the string still wins");
  assert.equal(info.options.port, "6000");
  assert.equal(info.options.user, "envuser");
  assert.equal(info.options.dbname, "envdb");
  assert.equal(info.options.password, "envpw");
  assert.equal(info.options.sslmode, "require");
  assert.equal(info.options.connect_timeout, "7");
  assert.equal(info.options.target_session_attrs, "standby");
  assert.equal(info.options.options, "-c geqo=off");
  assert.equal(info.options.with_rsocket, "true");
  assert.deepEqual(info.hosts, [{ host: "strhost", port: 6000, kind: "tcp" }]);
  // "port=" in the string hides PGPORT: libpq then uses 5432.
  assert.equal(resolve("port=", env).hosts[0].port, 5432);
});

test("optionSource() tells whether a value came from the string, a service, the environment or a default", () => {
  const dir = tempDir();
  try {
    writeFileSync(join(dir, "svc.conf"), "[s]\nport=7000\nwith_rsocket=prefer\n");
    const env = { PGSERVICEFILE: join(dir, "svc.conf"), PGAPPNAME: "envapp", WITH_RSOCKET: "true", PGPORT: "1" };
    const info = resolve("service=s host=h", env);
    assert.equal(optionSource(info, "host"), "connection string");
    assert.equal(optionSource(info, "service"), "connection string");
    assert.equal(optionSource(info, "port"), "service");
    assert.equal(optionSource(info, "with_rsocket"), "service");
    assert.equal(optionSource(info, "application_name"), "environment");
    assert.equal(optionSource(info, "sslmode"), "default");
    assert.equal(optionSource(info, "user"), "default");
    assert.equal(optionSource(info, "password"), undefined);
    assert.equal(optionSource(resolve("", { WITH_RSOCKET: "on" }), "with_rsocket"), "environment");
    assert.equal(optionSource(resolve(""), "with_rsocket"), "default");
    assert.equal(optionSource({ options: { host: "h" }, hosts: [] }, "host"), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("resolveConnInfo() normalises with_rsocket from libpq-style booleans and prefer", () => {
  const cases: [string, string][] = [
    ["true", "true"], ["on", "true"], ["1", "true"], ["YES", "true"], ["t", "true"],
    ["false", "false"], ["off", "false"], ["0", "false"], ["no", "false"], ["n", "false"], ["Prefer", "prefer"],
  ];
  for (const [given, normal] of cases) {
    assert.equal(resolve(`with_rsocket=${given}`).options.with_rsocket, normal, given);
    assert.equal(resolve("", { WITH_RSOCKET: given }).options.with_rsocket, normal, `WITH_RSOCKET=${given}`);
  }
  assert.equal(resolve("with_rsocket=false", { WITH_RSOCKET: "true" }).options.with_rsocket, "false");
  assert.equal(resolveError("", { WITH_RSOCKET: "rdma" }), 'invalid with_rsocket value: "rdma"');
});

test("resolveConnInfo() reads PGREQUIRESSL and defaults sslmode to verify-full for sslrootcert=system", () => {
  assert.equal(resolve("", { PGREQUIRESSL: "1" }).options.sslmode, "require");
  assert.equal(resolve("", { PGREQUIRESSL: "0" }).options.sslmode, "prefer");
  assert.equal(resolve("", { PGREQUIRESSL: "1", PGSSLMODE: "disable" }).options.sslmode, "disable");
  assert.equal(resolve("", { PGSSLROOTCERT: "system" }).options.sslmode, "verify-full");
  assert.equal(resolve("sslrootcert=system").options.sslmode, "verify-full");
  assert.equal(
    resolveError("", { PGSSLROOTCERT: "system", PGSSLMODE: "disable" }),
    'weak sslmode "disable" may not be used with sslrootcert=system (use "verify-full")',
  );
});

test("resolveConnInfo() takes a keyword record as PQconnectdbParams does", () => {
  const info = resolve({ host: "h", port: undefined, user: "", dbname: "d", application_name: "app" }, {
    PGPORT: "6000",
    PGUSER: "envuser",
  });
  assert.equal(info.options.host, "h");
  assert.equal(info.options.port, "6000", "undefined counts as unset");
  assert.equal(info.options.user, "envuser", "an empty value counts as unset");
  assert.equal(info.options.dbname, "d");
  // A dbname that is a connection string is expanded in place; later keys still override it.
  const expanded = resolve({ host: "first", dbname: "postgresql://u@second:7000/realdb?sslmode=require", port: "8000" });
  assert.equal(expanded.options.host, "second");
  assert.equal(expanded.options.dbname, "realdb");
  assert.equal(expanded.options.user, "u");
  assert.equal(expanded.options.port, "8000");
  assert.equal(expanded.options.sslmode, "require");
  assert.equal(resolveError({ hots: "x" }), 'invalid connection option "hots"');
  assert.throws(() => resolve({ host: 5 as unknown as string }), TypeError);
  assert.throws(() => resolveConnInfo(5 as unknown as string), TypeError);
});

test("resolveConnInfo() defaults dbname to replication for physical replication, as pg_receivewal does", () => {
  const physical = resolve("replication=true user=r");
  assert.equal(physical.options.dbname, "replication");
  assert.equal(replicationMode(physical), "physical");
  const logical = resolve("replication=database user=r");
  assert.equal(logical.options.dbname, "r");
  assert.equal(replicationMode(logical), "logical");
  assert.equal(replicationMode(resolve("replication=off user=r")), undefined);
  assert.equal(replicationMode(resolve("user=r")), undefined);
  assert.equal(resolve("replication=on dbname=x").options.dbname, "x");
});

// --- service files -------------------------------------------------------------------------

const SERVICE_FILE = [
  "# a comment",
  "  [a]  ",
  "host=/svc-a",
  "port=7777",
  "dbname=svcdb",
  "with_rsocket=on",
  "port=1",
  "",
  "[spaced]",
  "dbname =x",
  "[nested]",
  "service=a",
  "[bogus]",
  "bogus=1",
  "[noequals]",
  "noequals",
  "[twice]",
  "user=first",
  "[twice]",
  "user=second",
  "[quoted]",
  "application_name='a b' c",
  "",
].join("\n");

test("resolveConnInfo() reads a service named in the string, below the string and above the environment", () => {
  const dir = tempDir();
  try {
    writeFileSync(join(dir, "svc.conf"), SERVICE_FILE);
    const env = { PGSERVICEFILE: join(dir, "svc.conf"), PGPORT: "6000", PGDATABASE: "envdb", PGUSER: "envuser" };
    const info = resolve("service=a dbname=strdb", env);
    assert.equal(info.options.service, "a");
    assert.equal(info.options.host, "/svc-a");
    assert.equal(info.options.port, "7777", "the service beats PGPORT, and its first port= line wins");
    assert.equal(info.options.dbname, "strdb", "the string beats the service");
    assert.equal(info.options.user, "envuser");
    assert.equal(info.options.with_rsocket, "true", "with_rsocket may be set in a service");
    assert.deepEqual(info.hosts, [{ host: "/svc-a", port: 7777, kind: "unix" }]);
    // Values are taken verbatim; a second group of the same name is not read.
    assert.equal(resolve("service=quoted", env).options.application_name, "'a b' c");
    assert.equal(resolve("service=twice", env).options.user, "first");
    // PGSERVICE names a service too.
    assert.equal(resolve("", { ...env, PGSERVICE: "a" }).options.host, "/svc-a");
    assert.equal(resolve("service=twice", { ...env, PGSERVICE: "a" }).options.host, undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("resolveConnInfo() reports service file errors with libpq's messages and line numbers", () => {
  const dir = tempDir();
  try {
    const file = join(dir, "svc.conf");
    writeFileSync(file, SERVICE_FILE);
    const env = { PGSERVICEFILE: file };
    assert.equal(resolveError("service=spaced", env), `syntax error in service file "${file}", line 10`);
    assert.equal(
      resolveError("service=nested", env),
      `nested service specifications not supported in service file "${file}", line 12`,
    );
    assert.equal(resolveError("service=bogus", env), `syntax error in service file "${file}", line 14`);
    assert.equal(resolveError("service=noequals", env), `syntax error in service file "${file}", line 16`);
    assert.equal(resolveError("service=nope", env), 'definition of service "nope" not found');
    assert.equal(
      resolveError("service=a", { PGSERVICEFILE: join(dir, "missing.conf") }),
      `service file "${join(dir, "missing.conf")}" not found`,
    );
    writeFileSync(file, "[b]\nsslmode=foo\n");
    assert.equal(resolveError("service=b", env), 'invalid sslmode value: "foo"');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("resolveConnInfo() looks for services in ~/.pg_service.conf, then PGSYSCONFDIR/pg_service.conf", () => {
  const home = tempDir();
  const sys = tempDir();
  try {
    writeFileSync(join(home, ".pg_service.conf"), "[both]\nhost=/home-both\n[home]\nhost=/home-only\n");
    writeFileSync(join(sys, "pg_service.conf"), "[both]\nhost=/sys-both\nport=1\n[sys]\nhost=/sys-only\n");
    const at = (service: string) =>
      resolveConnInfo(`service=${service}`, { env: { PGSYSCONFDIR: sys }, homeDir: home }).options;
    assert.equal(at("both").host, "/home-both");
    assert.equal(at("both").port, "5432", "a service found in the user's file is not merged with the system's");
    assert.equal(at("home").host, "/home-only");
    assert.equal(at("sys").host, "/sys-only");
    // PGSERVICEFILE replaces ~/.pg_service.conf; the system file is still searched.
    writeFileSync(join(home, "other.conf"), "[other]\nhost=/other\n");
    const env = { PGSYSCONFDIR: sys, PGSERVICEFILE: join(home, "other.conf") };
    assert.equal(resolveConnInfo("service=other", { env, homeDir: home }).options.host, "/other");
    assert.throws(() => resolveConnInfo("service=home", { env, homeDir: home }), /definition of service "home" not found/);
    assert.equal(resolveConnInfo("service=sys", { env, homeDir: home }).options.host, "/sys-only");
  } finally {
    rmSync(home, { recursive: true, force: true });
    rmSync(sys, { recursive: true, force: true });
  }
});

// --- .pgpass -------------------------------------------------------------------------------

const PGPASS = [
  "# comment:*:*:*:nope",
  "localhost:5432:db:u:pw-local",
  "h\\:x:*:*:u:pw-colon",
  "*:5433:*:*:pw\\:a\\\\b\\c:tail",
  "h:*:replication:u:pw-repl",
  "h:*:*:u:pw-h",
  "/tmp/s:*:*:u:pw-sock",
  "10.0.0.1:*:*:u:pw-addr",
  "  h2:*:*:u:pw-space",
  "h3:*:*:u",
  "h4:*:*:u:",
  "*:*:*:*:pw-any\r",
].join("\n");

function withPgpass(mode: number, fn: (file: string) => void): void {
  const dir = tempDir();
  try {
    const file = join(dir, "pgpass");
    writeFileSync(file, PGPASS);
    chmodSync(file, mode);
    fn(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("lookupPassword() matches .pgpass lines as libpq does", () => {
  withPgpass(0o600, (file) => {
    const lookup = (conn: string) => {
      const info = resolve(conn, { PGPASSFILE: file });
      return lookupPassword(info, info.hosts[0], { env: {} });
    };
    assert.equal(lookup(`host=${DEFAULT_SOCKET_DIR} dbname=db user=u`), "pw-local", "default socket dir = localhost");
    assert.equal(lookup("dbname=db user=u"), "pw-local", "no host = localhost");
    assert.equal(lookup("host=localhost dbname=db user=u"), "pw-local");
    assert.equal(lookup("host=/var/run/postgresql dbname=db user=u"), "pw-any", "another socket dir is not localhost");
    assert.equal(lookup("host=h:x dbname=d user=u"), "pw-colon");
    assert.equal(lookup("host=h port=5433 dbname=d user=u"), "pw:a\\bc");
    assert.equal(lookup("host=h dbname=replication user=u"), "pw-repl");
    assert.equal(lookup("host=h replication=true user=u"), "pw-repl", "physical replication matches replication");
    assert.equal(lookup("host=h replication=database user=u"), "pw-h");
    assert.equal(lookup("host=h dbname=x user=u"), "pw-h");
    assert.equal(lookup("host=/tmp/s dbname=x user=u"), "pw-sock");
    assert.equal(lookup("hostaddr=10.0.0.1 dbname=x user=u"), "pw-addr");
    assert.equal(lookup("host=other hostaddr=10.0.0.1 dbname=x user=u"), "pw-any", "host, not hostaddr, is the key");
    assert.equal(lookup("host=h2 dbname=x user=u"), "pw-any", "leading spaces are part of the field");
    assert.equal(lookup("host=h3 dbname=x user=u"), "pw-any", "a line without a password field does not match");
    assert.equal(lookup("host=h4 dbname=x user=u"), "");
  });
});

test("lookupPassword() uses the host entry it is given, with its own port", () => {
  withPgpass(0o600, (file) => {
    const info = resolve("host=h3,h,h port=1,2,5433 dbname=x user=u", { PGPASSFILE: file });
    assert.deepEqual(info.hosts.map((h) => lookupPassword(info, h, { env: {} })), ["pw-any", "pw-h", "pw:a\\bc"]);
  });
});

test("lookupPassword() ignores a password file others can read, with libpq's warning", () => {
  withPgpass(0o640, (file) => {
    const warnings: string[] = [];
    const info = resolve("host=h dbname=x user=u", { PGPASSFILE: file });
    assert.equal(lookupPassword(info, info.hosts[0], { env: {}, onWarning: (m) => warnings.push(m) }), undefined);
    assert.deepEqual(warnings, [
      `WARNING: password file "${file}" has group or world access; permissions should be u=rw (0600) or less`,
    ]);
    assert.equal(lookupPassword(info, info.hosts[0], { env: {} }), undefined, "no callback: still refused, no throw");
  });
});

test("lookupPassword() reads passfile=, then ~/.pgpass, and returns undefined without a file or match", () => {
  const home = tempDir();
  try {
    writeFileSync(join(home, ".pgpass"), "*:*:*:u:from-home\n", { mode: 0o600 });
    const other = join(home, "other");
    writeFileSync(other, "*:*:*:u:from-passfile\n", { mode: 0o600 });
    const opts = { env: {}, homeDir: home };
    const info = resolveConnInfo("host=h user=u", opts);
    assert.equal(lookupPassword(info, info.hosts[0], opts), "from-home");
    const withFile = resolveConnInfo(`host=h user=u passfile=${other}`, opts);
    assert.equal(lookupPassword(withFile, withFile.hosts[0], opts), "from-passfile");
    const nobody = resolveConnInfo("host=h user=v", opts);
    assert.equal(lookupPassword(nobody, nobody.hosts[0], opts), undefined);
    const missing = resolveConnInfo(`host=h user=u passfile=${join(home, "none")}`, opts);
    assert.equal(lookupPassword(missing, missing.hosts[0], opts), undefined);
    const warnings: string[] = [];
    const dirFile = resolveConnInfo(`host=h user=u passfile=${home}`, opts);
    assert.equal(lookupPassword(dirFile, dirFile.hosts[0], { ...opts, onWarning: (m) => warnings.push(m) }), undefined);
    assert.deepEqual(warnings, [`WARNING: password file "${home}" is not a plain file`]);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

// --- printing ------------------------------------------------------------------------------

test("ConnInfo prints with passwords redacted in toString(), String(), JSON and inspect", () => {
  const info = resolve("postgresql://app:s3cret@db1,db2/shop?port=5433&sslmode=require&sslpassword=k3y&application_name=a%20b");
  const text = info.toString();
  assert.equal(
    text,
    "user=app password=******** dbname=shop host=db1,db2 port=5433 application_name='a b' sslmode=require sslpassword=********",
  );
  assert.equal(String(info), text);
  assert.equal(`${info}`, text);
  const json = JSON.stringify(info);
  const inspected = inspect(info);
  for (const out of [text, json, inspected]) {
    assert.ok(!out.includes("s3cret") && !out.includes("k3y"), `secret printed: ${out}`);
  }
  assert.equal(JSON.parse(json).options.password, "********");
  assert.equal(JSON.parse(json).hosts.length, 2);
  assert.match(inspected, /password=\*{8}/);
  // The client still gets the real password.
  assert.equal(info.options.password, "s3cret");
  assert.ok(Object.isFrozen(info.options));
  assert.ok(Object.isFrozen(info.hosts));
});

test("ConnectionStringError shows ******** where libpq's message would quote a password", () => {
  const cases: [string, string][] = [
    [
      "postgresql://u:s3cret@[::1]z",
      'unexpected character "z" at position 28 in URI (expected ":" or "/"): "postgresql://u:********@[::1]z"',
    ],
    ["postgresql://u:s3cret@[::1", 'end of string reached when looking for matching "]" in IPv6 host address in URI: "postgresql://u:********@[::1"'],
    ["postgresql://u:s3%zzcret@h", 'invalid percent-encoded token: "********"'],
    ["postgresql://h?password=s3%zz", 'invalid percent-encoded token: "********"'],
    ["postgresql://h?sslpassword=s3 cret", 'unexpected spaces found in "********", use percent-encoded spaces (%20) instead'],
    ["postgresql://h?user=s3%zz", 'invalid percent-encoded token: "s3%zz"'],
  ];
  for (const [input, message] of cases) checkParse(input, { error: message });
});

test("ConnInfo's string form parses back to the same settings", () => {
  const info = resolve("host='/a dir' user=o\\'brien options='-c x=\\\\y' with_rsocket=prefer");
  const again = resolve(info.toString());
  assert.deepEqual(again.options, info.options);
});

// --- libpq itself, through psql --------------------------------------------------------------

const PSQL = ["/usr/lib/postgresql/15/bin/psql", "/usr/bin/psql"].find((p) => existsSync(p));

test(
  "resolveConnInfo() words errors as psql (libpq) does for malformed strings",
  { skip: PSQL ? undefined : "psql is not installed (apt-get install postgresql-client-15)" },
  async () => {
    const dir = tempDir();
    mkdirSync(join(dir, "home"));
    try {
      const inputs = [
        "foo=bar",
        "host='abc",
        "host=a uzer=b",
        "postgresql://h?uzer=1",
        "postgres://[::1",
        "postgres://[]",
        "postgresql://%zz",
        "postgresql://host?key=key=value",
        "postgresql://host?zzz",
        "sslmode=foo",
        "host=a,b,c port=1,2",
        "host=/x port=0",
        "target_session_attrs=x",
        "service=nosuch",
      ];
      for (const input of inputs) {
        const env = { PATH: process.env.PATH ?? "", HOME: join(dir, "home"), PGSYSCONFDIR: dir, PGCONNECT_TIMEOUT: "1" };
        const stderr = await new Promise<string>((done) => {
          execFile(PSQL!, ["-X", "-c", "", input], { env }, (_e, _out, err) => done(String(err)));
        });
        const theirs = stderr.replace(/^psql: error: /, "").trim();
        const ours = resolveError(input);
        assert.equal(ours, theirs, input);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
