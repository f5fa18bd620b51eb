/**
 * WAL segment file names and sizes, I/O-free (PostgreSQL `xlog_internal.h`: `XLogFileName`,
 * `XLogFromFileName`, `IsXLogFileName`, `IsPartialXLogFileName`, `IsTLHistoryFileName`).
 *
 * A segment is named `TTTTTTTTXXXXXXXXYYYYYYYY`: the timeline, then the segment number split in
 * two, each as 8 upper-case hex digits, where `XXXXXXXX` counts 4 GiB units of WAL and
 * `YYYYYYYY` the segments inside one (so the split depends on the segment size).
 *
 * @module
 */

/** Segment sizes PostgreSQL accepts: a power of two from 1 MiB to 1 GiB. */
export function checkSegmentSize(size: number): number {
  if (!Number.isInteger(size) || size < 1 << 20 || size > 1 << 30 || (size & (size - 1)) !== 0) {
    throw new RangeError(`WAL segment size must be a power of two from 1 MiB to 1 GiB, got ${size}`);
  }
  return size;
}

/** Parses a size setting as `SHOW` prints it (`16MB`, `1GB`, `8192kB`, `512`) into bytes. */
export function parseSizeSetting(text: string): number {
  const m = /^\s*(\d+)\s*(B|kB|MB|GB|TB)?\s*$/.exec(text);
  if (!m) throw new RangeError(`cannot read the size ${JSON.stringify(text)}`);
  const unit = { B: 1, kB: 1024, MB: 1 << 20, GB: 1 << 30, TB: 2 ** 40 }[m[2] ?? "B"] as number;
  return Number(m[1]) * unit;
}

const hex8 = (n: number | bigint) => n.toString(16).toUpperCase().padStart(8, "0");

/** The segment number holding `lsn`. */
export function segmentNumber(lsn: bigint, segSize: number): bigint {
  return lsn / BigInt(segSize);
}

/** The file name of segment `segno` on timeline `tli` (`XLogFileName`). */
export function segmentName(tli: number, segno: bigint, segSize: number): string {
  const perId = 0x1_0000_0000n / BigInt(segSize);
  return hex8(tli) + hex8(segno / perId) + hex8(segno % perId);
}

/** The file name of the segment holding `lsn` on timeline `tli`. */
export function segmentNameOf(tli: number, lsn: bigint, segSize: number): string {
  return segmentName(tli, segmentNumber(lsn, segSize), segSize);
}

/** The name of a timeline's history file (`00000002.history`). */
export function historyFileName(tli: number): string {
  return `${hex8(tli)}.history`;
}

/** A WAL file found in an archive directory. */
export interface SegmentFile {
  tli: number;
  segno: bigint;
  /** Still being written (`.partial`): re-fetch it from its start. */
  partial: boolean;
  /** Compression suffix (`.gz`), or "" for a plain segment. */
  compression: string;
}

const SEGMENT_FILE = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.gz|\.lz4|\.zst)?(\.partial)?$/;

/** Reads a segment file name (plain, `.partial`, `.gz`, `.gz.partial`); undefined for other files. */
export function parseSegmentFileName(name: string, segSize: number): SegmentFile | undefined {
  const m = SEGMENT_FILE.exec(name);
  if (!m) return undefined;
  const perId = 0x1_0000_0000n / BigInt(segSize);
  const lo = BigInt(parseInt(m[3], 16));
  if (lo >= perId) return undefined; // not a name this segment size produces
  return {
    tli: parseInt(m[1], 16),
    segno: BigInt(parseInt(m[2], 16)) * perId + lo,
    partial: m[5] !== undefined,
    compression: m[4] ?? "",
  };
}
