/**
 * `RsocketError`: the one error class of the FFI layer, and the messages a person can act on.
 *
 * @module
 */
import { ENODEV, ERRNO, errnoName } from "./constants.ts";

/** A failed rsocket (or kernel socket) call: -1 with errno, or a library that cannot be loaded. */
export class RsocketError extends Error {
  /** errno name, e.g. `"ENODEV"`, `"EAGAIN"`, `"ECONNREFUSED"`. */
  readonly code: string;
  /** errno number (Linux). */
  readonly errno: number;
  /** The C function that failed, e.g. `"rsocket"`, `"connect"`, `"dlopen"`. */
  readonly syscall: string;

  /** Builds the error; `message` defaults to `<syscall>() failed: <meaning> (<CODE>)`. */
  constructor(syscall: string, errno: number, options?: { message?: string; cause?: unknown }) {
    super(
      options?.message ?? defaultMessage(syscall, errno),
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "RsocketError";
    this.code = errnoName(errno);
    this.errno = errno;
    this.syscall = syscall;
  }
}

function defaultMessage(syscall: string, errno: number): string {
  const meaning = (ERRNO as Record<number, readonly [string, string]>)[errno]?.[1] ??
    `errno ${errno}`;
  return `${syscall}() failed: ${meaning} (${errnoName(errno)})`;
}

/** The error for -1 + errno from `syscall`, with advice where there is some to give. */
export function rsocketError(syscall: string, errno: number): RsocketError {
  if (syscall === "rsocket" && errno === ENODEV) {
    return new RsocketError(syscall, errno, {
      message:
        "rsocket() failed: no RDMA device is present (ENODEV). List devices with `ibv_devices` " +
        "(package ibverbs-utils) or `rdma link` (iproute2); without RDMA hardware, Soft-RoCE can stand in: " +
        "`rdma link add rxe0 type rxe netdev <interface>`. Or use the kernel (TCP) provider.",
    });
  }
  return new RsocketError(syscall, errno);
}
