// What this host offers the rdma provider, for the static `skip` option of tests that load the
// real librdmacm: whether Debian's librdmacm1 is installed, and whether rsocket() can be
// expected to fail with ENODEV (no RDMA device).
import { existsSync, readdirSync } from "node:fs";

/** Why a test needing librdmacm cannot run here, or undefined when it can. */
export const noLib: string | undefined =
  existsSync("/usr/lib/x86_64-linux-gnu/librdmacm.so.1") ||
      existsSync("/usr/lib/aarch64-linux-gnu/librdmacm.so.1")
    ? undefined
    : "librdmacm1 is not installed (apt-get install librdmacm1)";

const hasDevice = existsSync("/sys/class/infiniband") &&
  readdirSync("/sys/class/infiniband").length > 0;

/** Why a test expecting rsocket()'s ENODEV cannot run here, or undefined when it can. */
export const noEnodev: string | undefined = noLib ??
  (hasDevice ? "an RDMA device is present, so rsocket() succeeds" : undefined);
