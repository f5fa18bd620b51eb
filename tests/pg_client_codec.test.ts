// I/O-free parts of the client, byte by byte: framing, message builders, SCRAM, SASLprep,
// channel-binding hashes, require_auth parsing and the TLS plan.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cluster, unavailable } from "./_fixture/cluster.ts";
import { cancelRequest, FrameReader, PIECE_FIRST, PIECE_LAST, SSL_REQUEST, startupMessage, SYNC, type WireParam, writeBind, Writer, writeParse } from "../pg/_codec.ts";
import { md5Password, saslprep, ScramClient, ScramError, serverEndPointHash } from "../pg/_scram.ts";
import { AuthError, parseAuthPolicy } from "../pg/_auth.ts";
import { planTls, TlsError } from "../pg/_tls.ts";
import { ProtocolError } from "../pg/errors.ts";

const enc = new TextEncoder();

function frame(type: string, body: number[]): number[] {
  const n = body.length + 4;
  return [type.charCodeAt(0), n >>> 24, (n >> 16) & 255, (n >> 8) & 255, n & 255, ...body];
}

test("FrameReader yields the same frames however the stream is split (every offset, every pair)", () => {
  const stream = Uint8Array.from([
    ...frame("Z", [0x49]),
    ...frame("D", [0, 1, 0, 0, 0, 3, 97, 98, 99]),
    ...frame("C", [...enc.encode("SELECT 1"), 0]),
    ...frame("1", []),
  ]);
  const expect = [["Z", "49"], ["D", "0001000000036162 63".replace(" ", "")], ["C", Buffer.from("SELECT 1\0").toString("hex")], ["1", ""]];
  const collect = (parts: Uint8Array[]) => {
    const r = new FrameReader();
    const out: string[][] = [];
    for (const p of parts) {
      r.push(p);
      let f;
      while ((f = r.next())) out.push([String.fromCharCode(f.type), Buffer.from(f.body).toString("hex")]);
    }
    assert.equal(r.idle, true);
    return out;
  };
  for (let i = 0; i <= stream.length; i++) {
    for (let j = i; j <= stream.length; j++) {
      assert.deepEqual(collect([stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)]), expect, `split at ${i}/${j}`);
    }
  }
  assert.deepEqual(collect(Array.from(stream, (b) => Uint8Array.of(b))), expect);
});

test("FrameReader.detach() moves a frame cut at a chunk's end into its own memory: the chunk may then be overwritten (every cut)", () => {
  const stream = Uint8Array.from([...frame("D", [0, 1, 0, 0, 0, 3, 97, 98, 99]), ...frame("C", [...enc.encode("SELECT 1"), 0])]);
  const want = [["D", "000100000003616263"], ["C", Buffer.from("SELECT 1\0").toString("hex")]];
  for (let cut = 1; cut < stream.length; cut++) {
    const r = new FrameReader();
    const out: string[][] = [];
    const first = stream.slice(0, cut);
    r.push(first);
    let f;
    while ((f = r.next())) out.push([String.fromCharCode(f.type), Buffer.from(f.body).toString("hex")]);
    r.detach();
    first.fill(0xee); // the buffer is read into again
    r.push(stream.slice(cut));
    while ((f = r.next())) out.push([String.fromCharCode(f.type), Buffer.from(f.body).toString("hex")]);
    assert.deepEqual(out, want, `cut at ${cut}`);
    assert.equal(r.idle, true);
  }
});

test("FrameReader with pieceType hands CopyData bodies spanning chunks on in pieces that join to the whole-message frames (every split)", () => {
  const payload = (n: number, seed: number) => Array.from({ length: n }, (_, i) => (i * 7 + seed) & 255);
  const stream = Uint8Array.from([
    ...frame("d", payload(9, 1)),
    ...frame("Z", [0x49]),
    ...frame("d", payload(40, 2)),
    ...frame("d", []),
    ...frame("d", payload(1, 3)),
    ...frame("C", [...enc.encode("COPY 3"), 0]),
    ...frame("d", payload(23, 4)),
  ]);
  // The oracle: the same stream read whole, in one chunk, without pieces.
  const oracle = new FrameReader();
  oracle.push(stream);
  const expect: string[][] = [];
  for (let f; (f = oracle.next());) expect.push([String.fromCharCode(f.type), Buffer.from(f.body).toString("hex")]);
  assert.equal(expect.length, 7);
  const collect = (parts: Uint8Array[]) => {
    const r = new FrameReader();
    r.pieceType = 0x64;
    const out: string[][] = [];
    let open: number[] | undefined; // the body of a CopyData arriving in pieces
    let pieces = 0;
    for (const p of parts) {
      r.push(p);
      while (r.advance()) {
        const first = (r.piece & PIECE_FIRST) !== 0;
        const last = (r.piece & PIECE_LAST) !== 0;
        if (first && last) {
          assert.equal(open, undefined, "a whole frame arrived inside a frame in pieces");
          out.push([String.fromCharCode(r.type), Buffer.from(r.bytes.subarray(r.start, r.end)).toString("hex")]);
          continue;
        }
        pieces++;
        assert.equal(r.type, 0x64, "only CopyData is cut");
        assert.ok(r.end > r.start, "pieces are never empty");
        assert.equal(r.bytes, p, "a piece is a view of the chunk just pushed, not a copy");
        assert.equal(first, open === undefined, "PIECE_FIRST exactly on a frame's first piece");
        open = [...(open ?? []), ...r.bytes.subarray(r.start, r.end)];
        if (last) {
          out.push(["d", Buffer.from(open).toString("hex")]);
          open = undefined;
        }
      }
    }
    assert.equal(open, undefined);
    assert.equal(r.idle, true);
    return { out, pieces };
  };
  let cut = 0;
  for (let i = 0; i <= stream.length; i++) {
    for (let j = i; j <= stream.length; j++) {
      const { out, pieces } = collect([stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)]);
      assert.deepEqual(out, expect, `split at ${i}/${j}`);
      cut += pieces;
    }
  }
  assert.ok(cut > 0, "some splits produced pieces");
  // One byte per chunk: every body of 2 bytes or more spans 3+ chunks.
  const bytewise = collect(Array.from(stream, (b) => Uint8Array.of(b)));
  assert.deepEqual(bytewise.out, expect);
  assert.equal(bytewise.pieces, 9 + 40 + 23); // a 1-byte body comes as one piece, first and last: whole
  // Every message in one chunk: nothing is cut.
  assert.deepEqual(collect([stream]), { out: expect, pieces: 0 });
});

test("FrameReader rejects bytes that are not the PostgreSQL protocol", () => {
  const r = new FrameReader();
  r.push(enc.encode("HTTP/1.1 400 Bad Request\r\n"));
  assert.throws(() => r.next(), (e: unknown) => e instanceof ProtocolError && /invalid message from server: type 0x48/.test(e.message));
  const neg = new FrameReader();
  neg.push(Uint8Array.of(0x44, 0, 0, 0, 2));
  assert.throws(() => neg.next(), ProtocolError);
});

test("message builders produce the protocol's bytes", () => {
  assert.deepEqual([...SYNC], [0x53, 0, 0, 0, 4]);
  assert.deepEqual([...SSL_REQUEST], [0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]);
  assert.deepEqual([...startupMessage({ user: "u" })], [0, 0, 0, 16, 0, 3, 0, 0, 117, 115, 101, 114, 0, 117, 0, 0]);
  assert.deepEqual([...cancelRequest(7, Uint8Array.of(1, 2, 3, 4))], [0, 0, 0, 16, 4, 0xd2, 0x16, 0x2e, 0, 0, 0, 7, 1, 2, 3, 4]);
  const w = new Writer(4);
  writeParse(w, "s", "SELECT $1", [23]);
  assert.deepEqual([...w.take()], frame("P", [115, 0, ...enc.encode("SELECT $1"), 0, 0, 1, 0, 0, 0, 23]));
  const params: WireParam[] = ["ab", null, Uint8Array.of(9)];
  writeBind(w, "", "s", params, [1]);
  assert.deepEqual([...w.take()], frame("B", [0, 115, 0, 0, 3, 0, 0, 0, 0, 0, 1, 0, 3, 0, 0, 0, 2, 97, 98, 255, 255, 255, 255, 0, 0, 0, 1, 9, 0, 1, 0, 1]));
  assert.throws(() => new Writer().cstr("a\0b"), TypeError);
});

test("ScramClient reproduces the RFC 7677 SCRAM-SHA-256 example and checks the server signature", () => {
  const s = new ScramClient("pencil", undefined, "rOprNGfwEbeRWgbNEkqO", "user");
  assert.equal(new TextDecoder().decode(s.first()), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  const final = s.final(enc.encode("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"));
  assert.equal(new TextDecoder().decode(final), "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  assert.throws(() => s.verify(enc.encode("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")), ScramError);
  s.verify(enc.encode("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="));
  assert.equal(s.completed, true);
  const bad = new ScramClient("pencil", undefined, "abc");
  bad.first();
  assert.throws(() => bad.final(enc.encode("r=xyz,s=AAAA,i=4096")), /nonce mismatch/);
});

test("ScramClient with channel binding sends p=tls-server-end-point and the hash in c=", () => {
  const cb = Uint8Array.of(1, 2, 3);
  const s = new ScramClient("pw", cb, "nonce");
  assert.equal(s.mechanism, "SCRAM-SHA-256-PLUS");
  assert.equal(new TextDecoder().decode(s.first()), "p=tls-server-end-point,,n=,r=nonce");
  const final = new TextDecoder().decode(s.final(enc.encode("r=nonceSERVER,s=AAAA,i=1")));
  assert.equal(final.split(",")[0], "c=" + btoa("p=tls-server-end-point,,\x01\x02\x03"));
  assert.equal(new TextDecoder().decode(new ScramClient("pw", "y", "n").first()), "y,,n=,r=n");
});

test("saslprep() passes ASCII through, maps and normalises the rest, keeps prohibited input raw", () => {
  assert.equal(saslprep("pencil\x07 x"), "pencil\x07 x");
  assert.equal(saslprep("I\u00ADX"), "IX");
  assert.equal(saslprep("\u00AA"), "a");
  assert.equal(saslprep("\u2168"), "IX");
  assert.equal(saslprep("a\u00A0b"), "a b");
  assert.equal(saslprep("\u00e9\u0007"), "\u00e9\u0007");
});

test("md5Password() is md5(md5(password + user) + salt) with the md5 prefix", () => {
  const salt = Uint8Array.of(1, 2, 3, 4);
  const inner = createHash("md5").update("secretalice").digest("hex");
  const want = "md5" + createHash("md5").update(inner).update(salt).digest("hex");
  assert.equal(md5Password("alice", "secret", salt), want);
  assert.match(want, /^md5[0-9a-f]{32}$/);
});

test("serverEndPointHash() hashes an ecdsa-with-SHA256 certificate with SHA-256", { skip: unavailable(18) }, async () => {
  const c = await cluster(18);
  const pem = readFileSync(c.tls.ca, "utf8");
  const der = Uint8Array.from(Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64"));
  assert.deepEqual(serverEndPointHash(der), new Uint8Array(createHash("sha256").update(der).digest()));
  assert.throws(() => serverEndPointHash(Uint8Array.of(0x30, 0x03, 0x02, 0x01)), ScramError);
});

test("parseAuthPolicy() follows libpq: lists, negation, none, and its error messages", () => {
  assert.deepEqual([...parseAuthPolicy("md5,password", undefined).allowed].sort(), ["md5", "password"]);
  assert.deepEqual([...parseAuthPolicy("!md5", undefined).allowed].sort(), ["gss", "none", "password", "scram-sha-256", "sspi"]);
  assert.throws(() => parseAuthPolicy("md5,!password", undefined), (e: unknown) => e instanceof AuthError && e.message === 'negative require_auth method "!password" cannot be mixed with non-negative methods');
  assert.throws(() => parseAuthPolicy("!md5,password", undefined), /^AuthError: require_auth method "password" cannot be mixed with negative methods$/);
  assert.throws(() => parseAuthPolicy("kerberos", undefined), /invalid require_auth value: "kerberos"/);
  assert.throws(() => parseAuthPolicy(undefined, "maybe"), /invalid channel_binding value: "maybe"/);
  assert.equal(parseAuthPolicy(undefined, undefined).channelBinding, "prefer");
});

test("planTls() maps sslmode to attempts and verification as libpq does", () => {
  const home = mkdtempSync(join(tmpdir(), "pg-rdma-tls-"));
  assert.deepEqual(planTls({ sslmode: "prefer" }, false, home).attempts, ["tls", "plain"]);
  assert.deepEqual(planTls({ sslmode: "allow" }, false, home).attempts, ["plain", "tls"]);
  assert.deepEqual(planTls({ sslmode: "require" }, true, home).attempts, ["plain"]); // unix socket
  assert.equal(planTls({ sslmode: "require" }, false, home).verify, "none");
  assert.throws(() => planTls({ sslmode: "verify-full" }, false, home), (e: unknown) => e instanceof TlsError && /root certificate file ".*root\.crt" does not exist/.test(e.message));
  assert.throws(() => planTls({ sslmode: "require", sslrootcert: "system" }, false, home), /weak sslmode "require" may not be used with sslrootcert=system/);
  assert.equal(planTls({ sslmode: "verify-full", sslrootcert: "system" }, false, home).verify, "full");
  // libpq: require with a root certificate present verifies the chain.
  const ca = join(home, "ca.pem");
  writeFileSync(ca, "not really a certificate");
  assert.equal(planTls({ sslmode: "require", sslrootcert: ca }, false, home).verify, "ca");
  assert.equal(planTls({ sslmode: "prefer", sslrootcert: ca }, false, home).verify, "ca");
  const key = join(home, "k.pem");
  writeFileSync(key, "k", { mode: 0o644 });
  assert.throws(() => planTls({ sslmode: "require", sslcert: ca, sslkey: key }, false, home), /has group or world access/);
});
