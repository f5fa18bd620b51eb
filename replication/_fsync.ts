// Making written files durable, shared by the base backup, the WAL receiver and the dump's
// directory format: fsync of one path (a file or a directory) and of many on the thread pool.
import { closeSync, fsync, fsyncSync, openSync } from "node:fs";

/** fsyncs one file or directory (opened read-only: enough for fsync on Linux, and allowed on a directory). */
export function fsyncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Files fsynced at once at most by {@link fsyncAll}: the device gets several flushes queued. */
const FSYNC_PARALLEL = 8;

/**
 * fsyncs every file of `paths`, several at a time on the runtime's thread pool, as pg_basebackup
 * and pg_dump do at the end (fsync_pgdata, fsync_dir_recurse) rather than one by one while
 * receiving: a 1 GiB file's flush would stall the stream for seconds.
 */
export async function fsyncAll(paths: string[]): Promise<void> {
  let next = 0;
  const one = async (): Promise<void> => {
    while (next < paths.length) {
      const fd = openSync(paths[next++], "r");
      try {
        await new Promise<void>((resolve, reject) => fsync(fd, (e) => (e ? reject(e) : resolve())));
      } finally {
        closeSync(fd);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(FSYNC_PARALLEL, paths.length) }, one));
}
