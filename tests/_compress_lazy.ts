// Child process of compress_codec.test.ts: prints how many modules of the lz4/zstd packages are
// loaded after importing pg-rdma's public API, after an lz4 call and after a zstd call.
import { createRequire } from "node:module";
import * as api from "../mod.ts";

const require = createRequire(import.meta.url);
const loaded = () => Object.keys(require.cache).filter((k) => /lz4-napi|zstd-wasm/.test(k)).length;
const counts = [loaded()];
await api.compress(new Uint8Array(10), "lz4");
counts.push(loaded());
await api.compress(new Uint8Array(10), "zstd");
counts.push(loaded());
console.log(JSON.stringify(counts));
