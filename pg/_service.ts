// Connection service files (pg_service.conf), as libpq's parseServiceInfo() and
// parseServiceFile() read them: INI-like groups, `keyword=value` lines taken verbatim (no quoting,
// no spaces around "="), the first value of a keyword wins, a nested `service=` is an error.
import { readFileSync, statSync } from "node:fs";
import { ConnectionStringError } from "./errors.ts";
import { KEYWORD_SPECS } from "./_keywords.ts";

/**
 * Where pg_service.conf is looked for when PGSYSCONFDIR is not set. libpq uses the SYSCONFDIR it
 * was built with; Debian's and Ubuntu's libpq (the psql most of our users run) use this one.
 */
export const DEFAULT_SYSCONFDIR = "/etc/postgresql-common";

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

function isSpace(c: string | undefined): boolean {
  return c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\v" || c === "\f";
}

/**
 * Reads the group `service` of one file into `out`, never overwriting a keyword `out` already
 * has. Returns whether the group was found.
 */
export function readServiceFile(
  path: string,
  service: string,
  out: Record<string, string>,
  onSet?: (keyword: string) => void,
): boolean {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    throw new ConnectionStringError(`service file "${path}" not found`, { cause });
  }
  let inGroup = false;
  const lines = text.split("\n");
  // A final newline does not start another line.
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i];
    let end = line.length;
    while (end > 0 && isSpace(line[end - 1])) end--;
    let from = 0;
    while (from < end && isSpace(line[from])) from++;
    line = line.slice(from, end);
    if (line === "" || line[0] === "#") continue;
    if (line[0] === "[") {
      // The next group header ends the one we wanted.
      if (inGroup) return true;
      inGroup = line.startsWith(service, 1) && line[service.length + 1] === "]";
      continue;
    }
    if (!inGroup) continue;
    const eq = line.indexOf("=");
    const where = `in service file "${path}", line ${i + 1}`;
    if (eq < 0) throw new ConnectionStringError(`syntax error ${where}`);
    const keyword = line.slice(0, eq);
    if (keyword === "service") {
      throw new ConnectionStringError(`nested service specifications not supported ${where}`, {
        keyword,
      });
    }
    if (!KEYWORD_SPECS.has(keyword)) throw new ConnectionStringError(`syntax error ${where}`);
    if (!(keyword in out)) {
      out[keyword] = line.slice(eq + 1);
      onSet?.(keyword);
    }
  }
  return inGroup;
}

/**
 * Applies service `service` to `out` (keywords already present win), with libpq's lookup order:
 * the file named by PGSERVICEFILE (which must exist) or else `~/.pg_service.conf` (if it exists);
 * when the service is not there, `PGSYSCONFDIR/pg_service.conf` (if it exists).
 */
export function applyService(
  service: string,
  out: Record<string, string>,
  env: Record<string, string | undefined>,
  homeDir: string | undefined,
  onSet?: (keyword: string) => void,
): void {
  const explicit = env.PGSERVICEFILE;
  const userFile = explicit ?? (homeDir ? `${homeDir}/.pg_service.conf` : undefined);
  if (userFile !== undefined && (explicit !== undefined || exists(userFile))) {
    if (readServiceFile(userFile, service, out, onSet)) return;
  }
  const systemFile = `${env.PGSYSCONFDIR ?? DEFAULT_SYSCONFDIR}/pg_service.conf`;
  if (exists(systemFile) && readServiceFile(systemFile, service, out, onSet)) return;
  throw new ConnectionStringError(`definition of service "${service}" not found`, {
    keyword: "service",
  });
}
