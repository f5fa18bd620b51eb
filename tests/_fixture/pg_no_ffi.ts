/**
 * Connects with pg/ over native TCP, runs one query, and prints which FFI libraries the process
 * has mapped (koffi's addon, librdmacm): none may be, since pg/ loads the transport only for
 * with_rsocket. Args: port user password.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { connect } from "../../pg/mod.ts";

const [port, user, password] = process.argv.slice(-3);
const client = await connect(`host=127.0.0.1 port=${port} user=${user} password=${password} dbname=postgres sslmode=disable`, { env: {} });
const { rows } = await client.query("SELECT 1 AS one");
await client.close();
const maps = readFileSync("/proc/self/maps", "utf8");
const ffi = [...new Set(maps.split("\n").map((l) => l.split(/\s+/)[5] ?? "").filter((p) => /koffi|librdmacm/.test(p)))];
process.stdout.write(JSON.stringify({ one: rows[0].one, ffi }) + "\n");
