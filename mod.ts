/**
 * pg-rdma: PostgreSQL over RDMA (librdmacm rsockets) for Deno, Node and Bun, with a clean
 * fallback to TCP.
 *
 * @module
 */
export { VERSION } from "./version.ts";
