// Client.copyBoth(): the COPY of replication commands (START_REPLICATION's CopyBoth and
// BASE_BACKUP's CopyOut, with the result sets around them), against real servers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cluster, unavailable, VERSIONS } from "./_fixture/cluster.ts";
import { connect } from "../pg/mod.ts";

const base = { env: {}, homeDir: mkdtempSync(join(tmpdir(), "pg-rdma-home-")) };

for (const v of VERSIONS) {
  const skip = unavailable(v);

  test(`copyBoth() PG${v}: START_REPLICATION PHYSICAL streams, takes a status update and ends on CopyDone`, { skip }, async () => {
    const c = await cluster(v);
    const client = await connect(`host=${c.socketDir} port=${c.port} user=postgres replication=true`, base);
    try {
      const [id] = await client.simpleQuery("IDENTIFY_SYSTEM");
      const { xlogpos, timeline } = id.rows[0] as { xlogpos: string; timeline: number };
      // Stream from the start of the current segment: there is WAL to send at once.
      const [hi, lo] = xlogpos.split("/").map((x) => parseInt(x, 16));
      const start = `${hi.toString(16).toUpperCase()}/${(lo - (lo % (16 << 20))).toString(16).toUpperCase()}`;
      const copy = client.copyBoth(`START_REPLICATION PHYSICAL ${start} TIMELINE ${timeline}`);
      assert.equal(await copy.started(), "both");
      let wal = 0;
      for await (const msg of copy) {
        assert.ok(msg[0] === 0x77 /* w */ || msg[0] === 0x6b /* k */, `unexpected message ${msg[0]}`);
        if (msg[0] === 0x77) wal += msg.length - 25;
        if (wal > 0) {
          // Standby status update 'r': write/flush/apply positions, clock, no reply wanted.
          const r = new Uint8Array(34);
          r[0] = 0x72;
          assert.equal(typeof copy.write(r), "boolean");
          copy.end();
          break;
        }
      }
      assert.ok(wal > 0, "no WAL arrived");
      // Our CopyDone ends the stream: the server answers CopyDone, then CommandComplete.
      for await (const _ of copy) { /* drain what was in flight */ }
      const done = await copy.done;
      assert.equal(done.before.length, 0);
      // The connection is usable again afterwards.
      const [again] = await client.simpleQuery("IDENTIFY_SYSTEM");
      assert.equal(again.rows.length, 1);
    } finally {
      await client.close();
    }
  });

  test(`copyBoth() PG${v}: BASE_BACKUP gives its result sets (those before the copy at its start) and the archive stream`, { skip }, async () => {
    const c = await cluster(v);
    const client = await connect(`host=${c.socketDir} port=${c.port} user=postgres replication=true`, base);
    try {
      const copy = client.copyBoth("BASE_BACKUP (LABEL 'copyboth test', CHECKPOINT 'fast', MANIFEST 'no', PROGRESS)");
      // The start position and the tablespace list (with PROGRESS: sizes) come before any archive byte is read.
      const early = await copy.before();
      assert.equal(copy.serverDone, false, "before() resolved while the copy runs");
      assert.equal(early.length, 2);
      assert.match(String(early[0].rows[0].recptr), /^[0-9A-F]+\/[0-9A-F]+$/);
      assert.ok(early[1].rows.some((r) => r.spcoid === null && Number(r.size) > 0), "the main tablespace with its size in kB");
      const kinds = new Map<string, number>();
      let bytes = 0;
      for await (const msg of copy) {
        const k = String.fromCharCode(msg[0]);
        kinds.set(k, (kinds.get(k) ?? 0) + 1);
        if (k === "d") bytes += msg.length - 1;
      }
      assert.equal(await copy.started(), "out");
      const { before, after } = await copy.done;
      assert.equal(before.length, 2, "start position and tablespaces");
      assert.deepEqual(before, early);
      assert.match(String(before[0].rows[0].recptr), /^[0-9A-F]+\/[0-9A-F]+$/);
      // The end position (a one-row result), then the command's own CommandComplete.
      assert.match(String(after[0].rows[0].recptr), /^[0-9A-F]+\/[0-9A-F]+$/);
      assert.equal(after[after.length - 1].command, "BASE_BACKUP");
      assert.ok((kinds.get("n") ?? 0) >= 1, "an archive started");
      assert.ok(bytes > 1 << 20, `archive has ${bytes} bytes`);
    } finally {
      await client.close();
    }
  });

  test(`copyBoth() PG${v}: a failing command rejects started() with the server's error`, { skip }, async () => {
    const c = await cluster(v);
    const client = await connect(`host=${c.socketDir} port=${c.port} user=postgres replication=true`, base);
    try {
      const copy = client.copyBoth("START_REPLICATION SLOT no_such_slot PHYSICAL 0/0");
      await assert.rejects(copy.started(), { code: "42704" });
      await assert.rejects(async () => {
        for await (const _ of copy) { /* nothing */ }
      }, { code: "42704" });
      const [r] = await client.simpleQuery("IDENTIFY_SYSTEM");
      assert.equal(r.rows.length, 1);
    } finally {
      await client.close();
    }
  });
}
