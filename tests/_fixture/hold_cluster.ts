/**
 * Starts a cluster, prints its info as one JSON line, then waits to be killed. The fixture test
 * uses it to prove that a cluster goes away when the process that started it dies abruptly.
 *
 * @module
 */
import { startCluster, type Version } from "./cluster.ts";

const version = Number(process.argv[process.argv.length - 1]) as Version;
const c = await startCluster(version);
process.stdout.write(JSON.stringify(c) + "\n");
setInterval(() => {}, 1 << 30);
