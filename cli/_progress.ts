/**
 * Progress reporting for long commands (dump, basebackup, receivewal): one status line on a
 * terminal, redrawn at most every 100 ms; nothing while running when stderr is piped or with
 * `--quiet`; one summary line at the end (not with `--quiet`).
 *
 * It never sets a timer and never reads the clock more than once per update, so it costs next to
 * nothing when updated per row: the caller reports, the reporter decides whether to draw. The
 * stream is injected (`{ isTTY, columns, write }`), so tests need no terminal.
 *
 * @module
 */

/** Where progress goes: `process.stderr`, or anything shaped like it. */
export interface ProgressStream {
  readonly isTTY?: boolean;
  /** Terminal width; lines are cut to fit so a redraw never wraps. */
  readonly columns?: number;
  write(s: string): unknown;
}

/** Options of {@linkcode createProgress}. */
export interface ProgressOptions {
  /** Default: `process.stderr`. */
  stream?: ProgressStream;
  /** `--quiet`: print nothing, not even the summary. */
  quiet?: boolean;
  /** What is counted: bytes (shown in KiB/MiB/GiB) or rows. Default `"bytes"`. */
  unit?: "bytes" | "rows";
  /** The expected total, when known: enables the percentage and the ETA. */
  total?: number;
  /** Prefix of every line, e.g. `"dump"` or a table name. */
  label?: string;
  /** Minimum time between redraws, ms. Default 100. */
  intervalMs?: number;
  /** Clock in ms (injectable for tests). Default `performance.now`. */
  now?: () => number;
}

/** A running progress report. */
export interface Progress {
  /** Counted so far. */
  readonly done: number;
  /** Expected total; may be set or corrected while running (e.g. once a size is known). */
  total: number | undefined;
  /** Counts `n` more (bytes or rows) and redraws if the interval has passed. */
  add(n: number): void;
  /** Sets the count to `done` and redraws if the interval has passed. */
  update(done: number): void;
  /**
   * Ends the report: clears the status line and writes the summary (unless quiet); later calls
   * return the same summary and write nothing. `note` is appended, e.g. `"interrupted"`.
   * Returns the summary text.
   */
  finish(note?: string): string;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"] as const;

/** `1536` → `"1.5 KiB"`. */
export function formatBytes(n: number): string {
  let i = 0;
  let v = n;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${Math.round(v)} B` : `${v.toFixed(1)} ${UNITS[i]}`;
}

/** Seconds as `m:ss` or `h:mm:ss`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

const rows = (n: number) => `${Math.round(n).toLocaleString("en-US")} rows`;

/**
 * Starts a progress report.
 *
 * @example
 * ```ts
 * const p = createProgress({ label: "base backup", total: size, quiet: values.quiet === true });
 * for await (const chunk of archive) p.add(chunk.length);
 * p.finish(); // "base backup: 1.2 GiB in 14.0 s (87.9 MiB/s)"
 * ```
 */
export function createProgress(opts: ProgressOptions = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  const now = opts.now ?? (() => performance.now());
  const interval = opts.intervalMs ?? 100;
  if (!(interval >= 0)) throw new RangeError(`intervalMs must be >= 0, got ${interval}`);
  const unit = opts.unit ?? "bytes";
  if (unit !== "bytes" && unit !== "rows") {
    throw new TypeError(`unit must be "bytes" or "rows", got ${String(unit)}`);
  }
  const quiet = opts.quiet === true;
  const live = !quiet && stream.isTTY === true;
  const label = opts.label ? `${opts.label}: ` : "";
  const amount = unit === "bytes" ? formatBytes : rows;
  const rateOf = (perSecond: number) =>
    unit === "bytes" ? `${formatBytes(perSecond)}/s` : `${rows(perSecond)}/s`;
  const start = now();
  let lastDraw = -Infinity;
  let drawn = false;
  let done = 0;
  let summary: string | undefined;

  const fit = (line: string) => {
    const width = (stream.columns ?? 80) - 1; // the last column would wrap on some terminals
    return line.length > width ? line.slice(0, Math.max(0, width - 1)) + "…" : line;
  };

  const status = (t: number): string => {
    const elapsed = (t - start) / 1000;
    const total = p.total;
    let line = label + amount(done);
    if (total !== undefined && total > 0) {
      line += ` of ${amount(total)} (${Math.min(100, Math.floor((done / total) * 100))}%)`;
    }
    // A rate over less than half a second is mostly noise.
    if (elapsed >= 0.5) {
      const rate = done / elapsed;
      line += `, ${rateOf(rate)}`;
      if (total !== undefined && total > done && rate > 0) {
        line += `, ETA ${formatDuration((total - done) / rate)}`;
      }
    }
    return line;
  };

  const maybeDraw = () => {
    if (!live || summary !== undefined) return;
    const t = now();
    if (t - lastDraw < interval) return;
    lastDraw = t;
    // \r to the line start, the text, then clear what a longer previous line left behind.
    stream.write(`\r${fit(status(t))}\x1b[K`);
    drawn = true;
  };

  const p: Progress = {
    get done() {
      return done;
    },
    total: opts.total,
    add(n: number) {
      if (typeof n !== "number" || !Number.isFinite(n) || n < 0) {
        throw new RangeError(`progress increment must be a finite number >= 0, got ${String(n)}`);
      }
      done += n;
      maybeDraw();
    },
    update(value: number) {
      if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
        throw new RangeError(`progress value must be a finite number >= 0, got ${String(value)}`);
      }
      done = value;
      maybeDraw();
    },
    finish(note?: string) {
      if (summary !== undefined) return summary;
      const elapsed = (now() - start) / 1000;
      summary = `${label}${amount(done)} in ${
        elapsed < 60 ? `${elapsed.toFixed(1)} s` : formatDuration(elapsed)
      }`;
      if (elapsed > 0) summary += ` (${rateOf(done / elapsed)})`;
      if (note) summary += `, ${note}`;
      if (!quiet) stream.write(`${drawn ? "\r\x1b[K" : ""}${live ? fit(summary) : summary}\n`);
      return summary;
    },
  };
  return p;
}
