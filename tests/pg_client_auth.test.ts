// The protocol client against real servers: every authentication method of the fixture roles,
// require_auth and channel_binding as libpq enforces them, and TLS in every sslmode.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer as createTlsServer } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cluster, type ClusterInfo, ROLES, unavailable, VERSIONS } from "./_fixture/cluster.ts";
import { type Client, connect, type ConnectOptions, ConnectionError } from "../pg/mod.ts";

// An empty home and environment: no ~/.pgpass, ~/.postgresql or PG* variables leak in.
const homeDir = mkdtempSync(join(tmpdir(), "pg-rdma-home-"));
const base = { env: {}, homeDir };

/**
 * Every TCP test runs over the runtime's own sockets and over our FFI transport with rsocket's
 * kernel provider (the RDMA code path on libc TCP); unix-socket cases stay native.
 */
const TRANSPORTS = [
  { name: "native", conn: "", env: {}, expect: "tcp" },
  { name: "rsocket/kernel", conn: " with_rsocket=true", env: { PG_RDMA_PROVIDER: "kernel" }, expect: "rsocket" },
] as const;
type Transport = (typeof TRANSPORTS)[number];

function tcp(c: ClusterInfo, tr: Transport, user: string, extra = ""): string {
  return `host=127.0.0.1 port=${c.port} dbname=postgres user=${user} ${extra}${tr.conn}`;
}

/** connect() with the transport's environment; a TCP client must have gone the transport's way. */
async function connectVia(tr: Transport, info: string, options: ConnectOptions): Promise<Client> {
  const client = await connect(info, { ...options, env: tr.env });
  if (client.host.kind === "tcp") assert.equal(client.transport.transport, tr.expect);
  return client;
}

async function one(client: Client, sql: string): Promise<unknown> {
  const { rows } = await client.query<unknown[]>(sql, [], { rowMode: "array" });
  return rows[0][0];
}

async function refused(p: Promise<Client>): Promise<ConnectionError> {
  try {
    const c = await p;
    await c.close();
  } catch (e) {
    assert.ok(e instanceof ConnectionError, `expected ConnectionError, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    return e;
  }
  assert.fail("the connection succeeded but should have failed");
}

for (const v of VERSIONS) {
  const skip = unavailable(v);

  test(`connect() PG${v}: trust over the unix socket as the superuser`, { skip }, async () => {
    const c = await cluster(v);
    const client = await connect(`host=${c.socketDir} port=${c.port} user=postgres dbname=postgres`, base);
    try {
      assert.equal(client.authMethod, "trust");
      assert.equal(client.host.kind, "unix");
      assert.equal(await one(client, "SELECT current_user"), "postgres");
      assert.equal(await one(client, "SELECT coalesce(inet_client_addr()::text, 'unix')"), "unix");
      assert.ok(client.processId > 0);
      assert.equal(client.parameters.get("server_version")?.split(".")[0], String(v));
    } finally {
      await client.close();
    }
  });

  for (const tr of TRANSPORTS) {
    for (const [method, expected] of [["scram", "SCRAM-SHA-256"], ["md5", "md5"], ["password", "password"]] as const) {
      test(`connect() PG${v} ${tr.name}: ${ROLES[method].user} authenticates by ${method} and a wrong password fails like libpq`, { skip }, async () => {
        const c = await cluster(v);
        const role = ROLES[method];
        const client = await connectVia(tr, tcp(c, tr, role.user, "sslmode=disable"), { ...base, password: role.password });
        try {
          assert.equal(client.authMethod, expected);
          assert.equal(await one(client, "SELECT current_user"), role.user);
        } finally {
          await client.close();
        }
        const e = await refused(connectVia(tr, tcp(c, tr, role.user, "sslmode=disable"), { ...base, password: "wrong" }));
        assert.equal(e.message, `connection to server at "127.0.0.1", port ${c.port} failed: FATAL:  password authentication failed for user "${role.user}"`);
        assert.equal(e.code, "28P01");
      });
    }

    test(`connect() PG${v} ${tr.name}: the password comes from the connection string, a function, or ~/.pgpass`, { skip }, async () => {
      const c = await cluster(v);
      const a = await connectVia(tr, tcp(c, tr, ROLES.md5.user, `sslmode=disable password=${ROLES.md5.password}`), base);
      await a.close();
      let asked = 0;
      const b = await connectVia(tr, tcp(c, tr, ROLES.md5.user, "sslmode=disable"), { ...base, password: () => (asked++, ROLES.md5.password) });
      await b.close();
      assert.equal(asked, 1);
      const none = await refused(connectVia(tr, tcp(c, tr, ROLES.md5.user, "sslmode=disable"), base));
      assert.match(none.message, /fe_sendauth: no password supplied$/);
      const home = mkdtempSync(join(tmpdir(), "pg-rdma-pgpass-"));
      writeFileSync(join(home, ".pgpass"), `127.0.0.1:${c.port}:*:${ROLES.md5.user}:${ROLES.md5.password}\n`, { mode: 0o600 });
      const fromFile = await connectVia(tr, tcp(c, tr, ROLES.md5.user, "sslmode=disable"), { env: {}, homeDir: home });
      assert.equal(fromFile.authMethod, "md5");
      await fromFile.close();
    });

    test(`connect() PG${v} ${tr.name}: TLS client certificate authenticates pgrdma_cert; without one the server refuses`, { skip }, async () => {
      const c = await cluster(v);
      const client = await connectVia(tr, tcp(c, tr, ROLES.cert.user, `sslmode=verify-full sslrootcert=${c.tls.ca} sslcert=${c.tls.clientCert} sslkey=${c.tls.clientKey}`), base);
      try {
        assert.equal(client.tls, true);
        assert.equal(await one(client, "SELECT current_user"), ROLES.cert.user);
      } finally {
        await client.close();
      }
      const e = await refused(connectVia(tr, tcp(c, tr, ROLES.cert.user, `sslmode=verify-full sslrootcert=${c.tls.ca}`), base));
      assert.match(e.message, /FATAL: {2}connection requires a valid client certificate/);
    });

    test(`connect() PG${v} ${tr.name}: an encrypted client key opens with sslpassword and not without`, { skip }, async () => {
      const c = await cluster(v);
      const key = join(homeDir, `enc-${v}.key`);
      execFileSync("openssl", ["pkey", "-in", c.tls.clientKey, "-aes256", "-passout", "pass:sesame", "-out", key]);
      chmodSync(key, 0o600);
      const info = tcp(c, tr, ROLES.cert.user, `sslmode=verify-full sslrootcert=${c.tls.ca} sslcert=${c.tls.clientCert} sslkey=${key}`);
      const client = await connectVia(tr, `${info} sslpassword=sesame`, base);
      assert.equal(await one(client, "SELECT current_user"), ROLES.cert.user);
      await client.close();
      const wrong = await refused(connectVia(tr, `${info} sslpassword=wrong`, base));
      assert.match(wrong.message, new RegExp(`^could not load private key file "${key}": `));
    });

    test(`connect() PG${v} ${tr.name}: replication=database connects the REPLICATION role and runs IDENTIFY_SYSTEM`, { skip }, async () => {
      const c = await cluster(v);
      const client = await connectVia(tr, tcp(c, tr, ROLES.replication.user, "replication=database sslmode=disable"), { ...base, password: ROLES.replication.password });
      try {
        const [r] = await client.simpleQuery<{ systemid: string; timeline: number }>("IDENTIFY_SYSTEM");
        assert.match(r.rows[0].systemid, /^\d{10,}$/);
        assert.equal(String(r.rows[0].timeline), "1");
      } finally {
        await client.close();
      }
    });

    test(`connect() PG${v} ${tr.name}: require_auth refuses a method the user did not allow, with libpq's message`, { skip }, async () => {
      const c = await cluster(v);
      const pw = await refused(connectVia(tr, tcp(c, tr, ROLES.password.user, "sslmode=disable require_auth=scram-sha-256"), { ...base, password: ROLES.password.password }));
      assert.equal(pw.message, `connection to server at "127.0.0.1", port ${c.port} failed: authentication method requirement "scram-sha-256" failed: server requested a cleartext password`);
      const md5 = await refused(connectVia(tr, tcp(c, tr, ROLES.md5.user, "sslmode=disable require_auth=!md5"), { ...base, password: ROLES.md5.password }));
      assert.match(md5.message, /authentication method requirement "!md5" failed: server requested a hashed password$/);
      const sasl = await refused(connectVia(tr, tcp(c, tr, ROLES.scram.user, "sslmode=disable require_auth=password,md5"), { ...base, password: ROLES.scram.password }));
      assert.match(sasl.message, /authentication method requirement "password,md5" failed: server requested SASL authentication$/);
      const trust = await refused(connectVia(tr, `host=${c.socketDir} port=${c.port} user=postgres dbname=postgres require_auth=scram-sha-256`, base));
      assert.match(trust.message, /authentication method requirement "scram-sha-256" failed: server did not complete authentication$/);
      // Allowed methods pass.
      const ok = await connectVia(tr, tcp(c, tr, ROLES.scram.user, "sslmode=disable require_auth=scram-sha-256"), { ...base, password: ROLES.scram.password });
      await ok.close();
      const none = await connectVia(tr, `host=${c.socketDir} port=${c.port} user=postgres dbname=postgres require_auth=none`, base);
      await none.close();
    });

    test(`connect() PG${v} ${tr.name}: SCRAM-SHA-256-PLUS binds to the TLS channel; channel_binding=require refuses what cannot bind`, { skip }, async () => {
      const c = await cluster(v);
      const tlsOpts = `sslmode=verify-full sslrootcert=${c.tls.ca}`;
      const plus = await connectVia(tr, tcp(c, tr, ROLES.scram.user, `${tlsOpts} channel_binding=require`), { ...base, password: ROLES.scram.password });
      try {
        assert.equal(plus.authMethod, "SCRAM-SHA-256-PLUS");
        assert.equal(plus.channelBound, true);
      } finally {
        await plus.close();
      }
      const off = await connectVia(tr, tcp(c, tr, ROLES.scram.user, `${tlsOpts} channel_binding=disable`), { ...base, password: ROLES.scram.password });
      assert.equal(off.authMethod, "SCRAM-SHA-256");
      assert.equal(off.channelBound, false);
      await off.close();
      const noTls = await refused(connectVia(tr, tcp(c, tr, ROLES.scram.user, "sslmode=disable channel_binding=require"), { ...base, password: ROLES.scram.password }));
      assert.match(noTls.message, /failed: channel binding is required, but server did not offer an authentication method that supports channel binding$/);
      const md5 = await refused(connectVia(tr, tcp(c, tr, ROLES.md5.user, `${tlsOpts} channel_binding=require`), { ...base, password: ROLES.md5.password }));
      assert.match(md5.message, /failed: channel binding required but not supported by server's authentication request$/);
      const trust = await refused(connectVia(tr, `host=${c.socketDir} port=${c.port} user=postgres dbname=postgres channel_binding=require`, base));
      assert.match(trust.message, /failed: channel binding required, but server authenticated client without channel binding$/);
    });

    for (const [mode, tls] of [["disable", false], ["allow", false], ["prefer", true], ["require", true]] as const) {
      test(`connect() PG${v} ${tr.name}: sslmode=${mode} ${tls ? "uses" : "does not use"} TLS`, { skip }, async () => {
        const c = await cluster(v);
        const client = await connectVia(tr, tcp(c, tr, ROLES.scram.user, `sslmode=${mode}`), { ...base, password: ROLES.scram.password });
        try {
          assert.equal(client.tls, tls);
          assert.equal(await one(client, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"), tls);
        } finally {
          await client.close();
        }
      });
    }

    test(`connect() PG${v} ${tr.name}: sslmode=verify-ca and verify-full check the chain; verify-full also the host name`, { skip }, async () => {
      const c = await cluster(v);
      const opts = { ...base, password: ROLES.scram.password };
      for (const mode of ["verify-ca", "verify-full"]) {
        const ok = await connectVia(tr, tcp(c, tr, ROLES.scram.user, `sslmode=${mode} sslrootcert=${c.tls.ca}`), opts);
        assert.equal(ok.tls, true);
        await ok.close();
      }
      // A name the certificate does not carry: verify-full fails, verify-ca does not look.
      const wrongName = `host=127.0.0.2 hostaddr=127.0.0.1 port=${c.port} dbname=postgres user=${ROLES.scram.user} sslrootcert=${c.tls.ca}${tr.conn}`;
      const e = await refused(connectVia(tr, `${wrongName} sslmode=verify-full`, opts));
      assert.equal(e.message, `connection to server at "127.0.0.2" (127.0.0.1), port ${c.port} failed: server certificate for "localhost" (and 1 other name) does not match host name "127.0.0.2"`);
      const ca = await connectVia(tr, `${wrongName} sslmode=verify-ca`, opts);
      await ca.close();
      // The wrong CA fails the chain, also for require when a root certificate is given (libpq).
      for (const mode of ["verify-ca", "require"]) {
        const bad = await refused(connectVia(tr, tcp(c, tr, ROLES.scram.user, `sslmode=${mode} sslrootcert=${c.tls.clientCert}`), opts));
        assert.match(bad.message, /failed: SSL error: /);
      }
      // prefer verifies too when a root certificate is given, and falls back to no TLS on failure.
      const fallback = await connectVia(tr, tcp(c, tr, ROLES.scram.user, `sslmode=prefer sslrootcert=${c.tls.clientCert}`), opts);
      assert.equal(fallback.tls, false);
      await fallback.close();
      const missing = await refused(connectVia(tr, tcp(c, tr, ROLES.scram.user, "sslmode=verify-ca"), opts));
      assert.match(missing.message, /^root certificate file ".*root\.crt" does not exist\nEither provide the file/);
    });

    test(`connect() PG${v} ${tr.name}: sslnegotiation=direct ${v >= 17 ? "starts TLS at once (ALPN postgresql)" : "fails on a server older than 17"}`, { skip }, async () => {
      const c = await cluster(v);
      const info = tcp(c, tr, ROLES.scram.user, `sslmode=verify-full sslrootcert=${c.tls.ca} sslnegotiation=direct`);
      if (v >= 17) {
        const client = await connectVia(tr, info, { ...base, password: ROLES.scram.password });
        assert.equal(client.tls, true);
        await client.close();
      } else {
        const e = await refused(connectVia(tr, info, { ...base, password: ROLES.scram.password }));
        assert.match(e.message, /failed: /);
      }
      await assert.rejects(connectVia(tr, tcp(c, tr, ROLES.scram.user, "sslmode=prefer sslnegotiation=direct"), base), /weak sslmode "prefer" may not be used with sslnegotiation=direct/);
    });
  }
}

test("connect(): SNI carries the host name, not an IP address, and not with sslsni=0", { skip: unavailable(18) }, async () => {
  // A TLS server speaking direct TLS (ALPN postgresql) records the name each client asked for.
  const c = await cluster(18);
  const seen: unknown[] = [];
  const srv = createTlsServer({ key: readFileSync(c.tls.clientKey), cert: readFileSync(c.tls.clientCert), ALPNProtocols: ["postgresql"] }, (s) => {
    seen.push(s.servername);
    s.destroy();
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  try {
    for (const h of ["host=localhost hostaddr=127.0.0.1", "host=127.0.0.1", "host=localhost hostaddr=127.0.0.1 sslsni=0"]) {
      await assert.rejects(connect(`${h} port=${port} user=u dbname=d sslmode=require sslnegotiation=direct connect_timeout=5`, base), ConnectionError);
    }
    assert.equal(seen.length, 3);
    assert.equal(seen[0], "localhost");
    assert.ok(!seen[1] && !seen[2], `no SNI expected, got ${JSON.stringify(seen)}`);
  } finally {
    await new Promise((r) => srv.close(r));
  }
});
