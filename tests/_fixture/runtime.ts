/**
 * Which runtime runs the tests, and how to start another process of the same runtime on one of
 * our modules (the sources under Deno and Bun, the build under Node).
 *
 * @module
 */
import { fileURLToPath } from "node:url";

export type Runtime = "deno" | "bun" | "node";

/** The runtime executing this code. */
export const runtime: Runtime = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";

/**
 * The argv that runs a module of ours (given relative to the calling module's URL, with its
 * `.ts` name) in a new process of the current runtime.
 */
export function moduleCommand(relativeTs: string, base: string | URL): [string, string[]] {
  const url = new URL(relativeTs, base);
  // Under Node the calling module is the compiled .js in dist/; so is its neighbour.
  const path = fileURLToPath(url).replace(/\.ts$/, base.toString().endsWith(".js") ? ".js" : ".ts");
  if (runtime === "deno") return [process.execPath, ["run", "-A", path]];
  return [process.execPath, [path]];
}
