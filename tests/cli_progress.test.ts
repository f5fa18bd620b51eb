// The progress reporter: redraws one line on a terminal at most every 100 ms, stays silent when
// piped or quiet, and ends with one summary line; driven by a fake stream and a fake clock.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createProgress, formatBytes, formatDuration } from "../cli/_progress.ts";

function fakeStream(isTTY: boolean, columns = 80) {
  const writes: string[] = [];
  return { isTTY, columns, writes, write: (s: string) => (writes.push(s), true) };
}

function clock(start = 1000) {
  const c = { t: start, now: () => c.t };
  return c;
}

test("createProgress() on a TTY redraws at most once per 100 ms", () => {
  const s = fakeStream(true);
  const c = clock();
  const p = createProgress({ stream: s, now: c.now, unit: "bytes" });
  p.add(10); // first update draws
  assert.equal(s.writes.length, 1);
  for (let i = 0; i < 50; i++) {
    c.t += 1; // 50 updates within 50 ms: no redraw
    p.add(10);
  }
  assert.equal(s.writes.length, 1);
  c.t += 50; // 100 ms after the first draw
  p.add(10);
  assert.equal(s.writes.length, 2);
  assert.ok(
    s.writes[1].startsWith("\r") && s.writes[1].endsWith("\x1b[K"),
    "a redraw returns to the line start and clears the rest",
  );
  assert.equal(p.done, 520);
});

test("createProgress() shows percentage, rate and ETA when the total is known", () => {
  const s = fakeStream(true, 200);
  const c = clock();
  const p = createProgress({ stream: s, now: c.now, total: 4 * 1024 * 1024, label: "basebackup" });
  c.t += 1000;
  p.update(1024 * 1024);
  const line = s.writes.at(-1)!;
  assert.match(line, /basebackup: 1\.0 MiB of 4\.0 MiB \(25%\)/);
  assert.match(line, /1\.0 MiB\/s/);
  assert.match(line, /ETA 0:03/);
});

test("createProgress() counts rows with a rows/s rate", () => {
  const s = fakeStream(true, 200);
  const c = clock();
  const p = createProgress({ stream: s, now: c.now, unit: "rows", label: "public.orders" });
  c.t += 2000;
  p.add(12_000);
  assert.match(s.writes.at(-1)!, /public\.orders: 12,000 rows, 6,000 rows\/s/);
  assert.doesNotMatch(s.writes.at(-1)!, /ETA/, "no ETA without a total");
});

test("createProgress() cuts the status line to the terminal width", () => {
  const s = fakeStream(true, 30);
  const p = createProgress({
    stream: s,
    now: clock().now,
    label: "a-very-long-label-that-does-not-fit",
  });
  p.add(1);
  const text = s.writes[0].slice(1, -"\x1b[K".length); // without the leading \r and the trailing clear
  assert.ok(text.length <= 29, `"${text}" is ${text.length} characters`);
  assert.ok(text.endsWith("…"));
});

test("createProgress() writes nothing while running when not a TTY, then one summary line", () => {
  const s = fakeStream(false);
  const c = clock();
  const p = createProgress({ stream: s, now: c.now, label: "dump" });
  for (let i = 0; i < 100; i++) {
    c.t += 100;
    p.add(1024);
  }
  assert.deepEqual(s.writes, []);
  const summary = p.finish();
  assert.equal(summary, "dump: 100.0 KiB in 10.0 s (10.0 KiB/s)");
  assert.deepEqual(s.writes, [summary + "\n"], "piped: no carriage return, no escape codes");
});

test("createProgress() with quiet writes nothing at all, even on a TTY", () => {
  const s = fakeStream(true);
  const c = clock();
  const p = createProgress({ stream: s, now: c.now, quiet: true });
  p.add(5);
  c.t += 500;
  p.add(5);
  assert.match(p.finish(), /^10 B in 0\.5 s/);
  assert.deepEqual(s.writes, []);
});

test("finish() on a TTY clears the status line, prints the summary once, and is idempotent", () => {
  const s = fakeStream(true);
  const c = clock();
  const p = createProgress({ stream: s, now: c.now, unit: "rows" });
  p.add(3);
  c.t += 1500;
  const summary = p.finish("interrupted");
  assert.match(summary, /^3 rows in 1\.5 s \(2 rows\/s\), interrupted$/);
  assert.equal(s.writes.at(-1), `\r\x1b[K${summary}\n`);
  const n = s.writes.length;
  assert.equal(p.finish(), summary);
  p.add(1); // after finish: counted, never drawn
  assert.equal(s.writes.length, n);
});

test("createProgress() rejects negative, NaN and infinite amounts with RangeError", () => {
  const p = createProgress({ stream: fakeStream(false) });
  assert.throws(() => p.add(-1), RangeError);
  assert.throws(() => p.add(Number.NaN), RangeError);
  assert.throws(() => p.update(Infinity), RangeError);
  assert.throws(() => createProgress({ stream: fakeStream(false), intervalMs: -5 }), RangeError);
  assert.throws(
    () => createProgress({ stream: fakeStream(false), unit: "kg" as "rows" }),
    TypeError,
  );
});

test("formatBytes() and formatDuration() use binary units and m:ss / h:mm:ss", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1023), "1023 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(5 * 1024 ** 3), "5.0 GiB");
  assert.equal(formatDuration(0), "0:00");
  assert.equal(formatDuration(61.4), "1:01");
  assert.equal(formatDuration(3 * 3600 + 5), "3:00:05");
});
