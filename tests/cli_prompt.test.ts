// The -W password prompt: raw, unechoed input on a terminal (fake TTY), one line from a pipe.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { promptPassword } from "../cli/_prompt.ts";

class FakeInput extends EventEmitter {
  rawModes: boolean[] = [];
  paused = true;
  readonly isTTY: boolean;
  constructor(isTTY: boolean) {
    super();
    this.isTTY = isTTY;
  }
  setRawMode(mode: boolean) {
    this.rawModes.push(mode);
    return this;
  }
  resume() {
    this.paused = false;
    return this;
  }
  pause() {
    this.paused = true;
    return this;
  }
}

function output() {
  const writes: string[] = [];
  return { writes, write: (s: string) => writes.push(s) };
}

test("promptPassword() on a terminal reads raw without echo, honours Backspace and Ctrl-U, restores the mode", async () => {
  const input = new FakeInput(true);
  const out = output();
  const p = promptPassword("Password for user alice: ", { input, output: out });
  assert.deepEqual(input.rawModes, [true]);
  assert.equal(input.paused, false);
  input.emit("data", new TextEncoder().encode("junk\x15se"));
  input.emit("data", "cx\x7fret\r");
  assert.equal(await p, "secret");
  assert.deepEqual(input.rawModes, [true, false]);
  assert.equal(input.paused, true);
  assert.equal(input.listenerCount("data"), 0);
  assert.deepEqual(
    out.writes,
    ["Password for user alice: ", "\n"],
    "the password itself is never written",
  );
});

test("promptPassword() rejects with AbortError on Ctrl-C and restores the terminal", async () => {
  const input = new FakeInput(true);
  const p = promptPassword("Password: ", { input, output: output() });
  input.emit("data", "abc\x03");
  await assert.rejects(p, (e: unknown) => e instanceof DOMException && e.name === "AbortError");
  assert.deepEqual(input.rawModes, [true, false]);
});

test("promptPassword() from a pipe reads one line", async () => {
  const input = new FakeInput(false);
  const p = promptPassword("Password: ", { input, output: output() });
  input.emit("data", "pipe-pw\nrest");
  assert.equal(await p, "pipe-pw");
  assert.deepEqual(input.rawModes, [], "no raw mode on a pipe");
});

test("promptPassword() rejects when the input ends first or the signal aborts", async () => {
  const input = new FakeInput(false);
  const p = promptPassword("Password: ", { input, output: output() });
  input.emit("end");
  await assert.rejects(p, /no password entered/);
  const ac = new AbortController();
  const q = promptPassword("Password: ", {
    input: new FakeInput(true),
    output: output(),
    signal: ac.signal,
  });
  ac.abort(new DOMException("interrupted by SIGINT", "AbortError"));
  await assert.rejects(q, /interrupted by SIGINT/);
  assert.throws(
    () => promptPassword(42 as unknown as string, { input, output: output() }),
    TypeError,
  );
});
