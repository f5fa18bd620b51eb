/**
 * The password prompt of `-W` (and of a server that asks when neither `-w` nor a password from
 * the environment or `~/.pgpass` settles it), like psql's `Password for user alice: `.
 *
 * On a terminal it reads in raw mode without echo (Enter ends, Backspace deletes, Ctrl-U clears,
 * Ctrl-C aborts); from a pipe it reads one line. Raw mode is always restored, and the input is
 * paused afterwards, so the process can still exit.
 *
 * @module
 */

/** The input side: `process.stdin`, or anything shaped like it. */
export interface PromptInput {
  readonly isTTY?: boolean;
  setRawMode?(mode: boolean): unknown;
  on(event: "data", listener: (chunk: Uint8Array | string) => void): unknown;
  on(event: "end", listener: () => void): unknown;
  off(event: "data", listener: (chunk: Uint8Array | string) => void): unknown;
  off(event: "end", listener: () => void): unknown;
  resume(): unknown;
  pause(): unknown;
}

/** Options of {@linkcode promptPassword}. */
export interface PromptOptions {
  /** Default `process.stdin`. */
  input?: PromptInput;
  /** Where the prompt goes; default `process.stderr` (stdout may be a dump file). */
  output?: { write(s: string): unknown };
  /** Aborting it rejects the prompt with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * Asks for a password; resolves with what was typed (without the line end). Rejects with an
 * `AbortError` DOMException on Ctrl-C or when `signal` aborts, and with an Error when the input
 * ends before a line was entered.
 *
 * @example
 * ```ts
 * const password = await promptPassword(`Password for user ${user}: `, { signal: ctx.signal });
 * ```
 */
export function promptPassword(prompt: string, opts: PromptOptions = {}): Promise<string> {
  if (typeof prompt !== "string") throw new TypeError("prompt must be a string");
  const input = opts.input ?? process.stdin;
  const output = opts.output ?? process.stderr;
  const raw = input.isTTY === true && typeof input.setRawMode === "function";
  const decoder = new TextDecoder();
  return new Promise<string>((resolve, reject) => {
    if (opts.signal?.aborted) return reject(opts.signal.reason);
    let typed = "";
    const finish = (error: unknown, value?: string) => {
      input.off("data", onData);
      input.off("end", onEnd);
      opts.signal?.removeEventListener("abort", onAbort);
      if (raw) input.setRawMode!(false);
      input.pause();
      // The Enter key was not echoed: end the prompt's line ourselves.
      if (raw) output.write("\n");
      if (error !== undefined) reject(error);
      else resolve(value!);
    };
    const onAbort = () => finish(opts.signal!.reason);
    const onEnd = () => finish(new Error("no password entered: the input ended"));
    const onData = (chunk: Uint8Array | string) => {
      const text = typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
      for (const ch of text) {
        if (ch === "\r" || ch === "\n") return finish(undefined, typed);
        if (!raw) {
          typed += ch;
          continue;
        }
        if (ch === "\x03") {
          return finish(new DOMException("password prompt interrupted", "AbortError"));
        }
        if (ch === "\x04") {
          if (typed === "") return onEnd();
          continue;
        }
        if (ch === "\x7f" || ch === "\b") typed = typed.slice(0, -1);
        else if (ch === "\x15") typed = "";
        else if (ch >= " ") typed += ch;
      }
    };
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    output.write(prompt);
    if (raw) input.setRawMode!(true);
    input.on("data", onData);
    input.on("end", onEnd);
    input.resume();
  });
}
