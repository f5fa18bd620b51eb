#!/usr/bin/env node
/**
 * The `pg-rdma` command.
 *
 * @module
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { VERSION } from "../version.ts";

const USAGE = `pg-rdma ${VERSION}: PostgreSQL over RDMA (rsockets) for Deno, Node and Bun

Usage: pg-rdma <command> [options]

Commands:
  demo        start an embedded PostgreSQL 18, connect, show the transport, stop

Options:
  -h, --help     show this help
  -V, --version  print the version
`;

/** Runs the CLI with the given arguments; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: false,
    options: { help: { type: "boolean", short: "h" }, version: { type: "boolean", short: "V" } },
  });
  const [command] = positionals;
  if (values.version) {
    console.log(VERSION);
    return 0;
  }
  if (!command || values.help) {
    process.stdout.write(USAGE);
    return command || values.help ? 0 : 2;
  }
  switch (command) {
    case "demo": {
      const { demo } = await import("./demo.ts");
      return await demo();
    }
    default:
      process.stderr.write(`pg-rdma: unknown command "${command}"\nTry "pg-rdma --help".\n`);
      return 2;
  }
}

function isEntry(): boolean {
  const meta = import.meta as ImportMeta & { main?: boolean };
  if (typeof meta.main === "boolean") return meta.main; // Deno, Bun
  try {
    return !!process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isEntry()) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (err) => {
    process.stderr.write(`pg-rdma: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
