// `pg-rdma demo` (what `npm start` runs) end to end in each runtime: embedded PostgreSQL 18,
// schema, dump, snapshot-then-stream, a burst of writes arriving, everything stopped after.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { moduleCommand } from "./_fixture/runtime.ts";
import { unavailable } from "./_fixture/cluster.ts";

test("pg-rdma demo: runs the main job on an embedded PostgreSQL 18 and exits 0, leaving nothing behind", { skip: unavailable(18) }, async () => {
  const before = new Set(readdirSync(tmpdir()).filter((n) => n.startsWith("pg-rdma-demo-")));
  const [cmd, args] = moduleCommand("../cli/main.ts", import.meta.url);
  const { code, out, err } = await new Promise<{ code: number; out: string; err: string }>((resolve) => {
    execFile(cmd, [...args, "demo"], { timeout: 180_000 }, (e, stdout, stderr) =>
      resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, out: String(stdout), err: String(stderr) }));
  });
  assert.equal(code, 0, err);
  assert.match(out, /connected: PostgreSQL 18\./);
  assert.match(out, /transport: (rsockets over an RDMA device|no RDMA device here .*provider "kernel")/);
  assert.match(out, /dumped to .*: 4 tables, 470 rows/);
  assert.match(out, /snapshot copied .*public\.customers 50, public\.products 20, public\.orders 200, public\.order_items 200/);
  assert.equal((out.match(/^ {2}(insert|update|delete) /gm) ?? []).length, 16, out);
  assert.match(out, /received 10 transactions/);
  assert.match(out, /stopped PostgreSQL and removed its directory/);
  const left = readdirSync(tmpdir()).filter((n) => n.startsWith("pg-rdma-demo-") && !before.has(n));
  assert.deepEqual(left, []);
});
