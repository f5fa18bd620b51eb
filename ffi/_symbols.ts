/**
 * The one symbol table of the rsocket ABI. Every backend (`_deno.ts`, `_bun.ts`, `_node.ts`)
 * derives its runtime's declaration from these entries; nothing is declared twice.
 *
 * Each entry: the C prototype (from rdma-core `librdmacm/rsocket.h`; the kernel twin has the same
 * signature without the `r`), argument types, result type, whether a copy that runs off the main
 * thread is declared (`offThread`), and the libc name of the kernel twin (`null`: none exists).
 *
 * Type vocabulary (Linux LP64, x86_64/aarch64):
 * - `i32`: `int`, `socklen_t`, flags; `u64`: `nfds_t`, `size_t` arguments; `i64`: `off_t`;
 * - `buf`: any pointer to memory the caller owns for the duration of the call, passed as a
 *   `Uint8Array` (subarray offsets honoured by all three runtimes, measured) or `null`;
 * - results `i32`, `i64` (`ssize_t`, and `size_t` of `riowrite`, read signed so -1 is seen),
 *   `ptr` (an address, only for libc's `__errno_location`).
 *
 * @module
 */

/** Argument type of a native call. */
export type ArgType = "i32" | "u64" | "i64" | "buf";
/** Result type of a native call. */
export type ResultType = "i32" | "i64" | "ptr";

/** One C function. */
export interface SymbolSpec {
  /** The C prototype, as documentation. */
  readonly c: string;
  readonly args: readonly ArgType[];
  readonly result: ResultType;
  /**
   * Variadic C function whose trailing argument we always pass as one `int` (`fcntl`). koffi
   * declares it with `...`; Deno and Bun cannot declare variadics and use the fixed
   * `(int, int, int)` form, which is the same call on x86_64 and aarch64 Linux (integer variadic
   * arguments travel in the same registers as fixed ones there; not on Apple aarch64).
   */
  readonly variadic?: true;
  /** Also declared in a form that runs on another thread and returns a Promise. */
  readonly offThread?: true;
  /** The libc twin for the kernel provider; `null` when there is none. */
  readonly kernel: string | null;
}

const i32 = "i32", u64 = "u64", i64 = "i64", buf = "buf";

/**
 * The rsocket functions, keyed by their name without the `r` (`socket` is `rsocket`). The
 * rdma provider binds `"r" + key` in librdmacm, the kernel provider `kernel` in libc.
 */
export const RSOCKET_SYMBOLS = {
  socket: {
    c: "int rsocket(int domain, int type, int protocol)",
    args: [i32, i32, i32],
    result: i32,
    kernel: "socket",
  },
  bind: {
    c: "int rbind(int socket, const struct sockaddr *addr, socklen_t addrlen)",
    args: [i32, buf, i32],
    result: i32,
    kernel: "bind",
  },
  listen: {
    c: "int rlisten(int socket, int backlog)",
    args: [i32, i32],
    result: i32,
    kernel: "listen",
  },
  accept: {
    c: "int raccept(int socket, struct sockaddr *addr, socklen_t *addrlen)",
    args: [i32, buf, buf],
    result: i32,
    kernel: "accept",
  },
  connect: {
    c: "int rconnect(int socket, const struct sockaddr *addr, socklen_t addrlen)",
    args: [i32, buf, i32],
    result: i32,
    kernel: "connect",
  },
  shutdown: {
    c: "int rshutdown(int socket, int how)",
    args: [i32, i32],
    result: i32,
    kernel: "shutdown",
  },
  close: { c: "int rclose(int socket)", args: [i32], result: i32, kernel: "close" },
  recv: {
    c: "ssize_t rrecv(int socket, void *buf, size_t len, int flags)",
    args: [i32, buf, u64, i32],
    result: i64,
    kernel: "recv",
  },
  recvfrom: {
    c: "ssize_t rrecvfrom(int socket, void *buf, size_t len, int flags, struct sockaddr *src_addr, socklen_t *addrlen)",
    args: [i32, buf, u64, i32, buf, buf],
    result: i64,
    kernel: "recvfrom",
  },
  recvmsg: {
    c: "ssize_t rrecvmsg(int socket, struct msghdr *msg, int flags)",
    args: [i32, buf, i32],
    result: i64,
    kernel: "recvmsg",
  },
  send: {
    c: "ssize_t rsend(int socket, const void *buf, size_t len, int flags)",
    args: [i32, buf, u64, i32],
    result: i64,
    kernel: "send",
  },
  sendto: {
    c: "ssize_t rsendto(int socket, const void *buf, size_t len, int flags, const struct sockaddr *dest_addr, socklen_t addrlen)",
    args: [i32, buf, u64, i32, buf, i32],
    result: i64,
    kernel: "sendto",
  },
  sendmsg: {
    c: "ssize_t rsendmsg(int socket, const struct msghdr *msg, int flags)",
    args: [i32, buf, i32],
    result: i64,
    kernel: "sendmsg",
  },
  read: {
    c: "ssize_t rread(int socket, void *buf, size_t count)",
    args: [i32, buf, u64],
    result: i64,
    kernel: "read",
  },
  readv: {
    c: "ssize_t rreadv(int socket, const struct iovec *iov, int iovcnt)",
    args: [i32, buf, i32],
    result: i64,
    kernel: "readv",
  },
  write: {
    c: "ssize_t rwrite(int socket, const void *buf, size_t count)",
    args: [i32, buf, u64],
    result: i64,
    kernel: "write",
  },
  writev: {
    c: "ssize_t rwritev(int socket, const struct iovec *iov, int iovcnt)",
    args: [i32, buf, i32],
    result: i64,
    kernel: "writev",
  },
  poll: {
    c: "int rpoll(struct pollfd *fds, nfds_t nfds, int timeout)",
    args: [buf, u64, i32],
    result: i32,
    offThread: true,
    kernel: "poll",
  },
  select: {
    c: "int rselect(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds, struct timeval *timeout)",
    args: [i32, buf, buf, buf, buf],
    result: i32,
    kernel: "select",
  },
  getpeername: {
    c: "int rgetpeername(int socket, struct sockaddr *addr, socklen_t *addrlen)",
    args: [i32, buf, buf],
    result: i32,
    kernel: "getpeername",
  },
  getsockname: {
    c: "int rgetsockname(int socket, struct sockaddr *addr, socklen_t *addrlen)",
    args: [i32, buf, buf],
    result: i32,
    kernel: "getsockname",
  },
  setsockopt: {
    c: "int rsetsockopt(int socket, int level, int optname, const void *optval, socklen_t optlen)",
    args: [i32, i32, i32, buf, i32],
    result: i32,
    kernel: "setsockopt",
  },
  getsockopt: {
    c: "int rgetsockopt(int socket, int level, int optname, void *optval, socklen_t *optlen)",
    args: [i32, i32, i32, buf, buf],
    result: i32,
    kernel: "getsockopt",
  },
  fcntl: {
    c: "int rfcntl(int socket, int cmd, ... /* arg */)",
    args: [i32, i32, i32],
    result: i32,
    variadic: true,
    kernel: "fcntl",
  },
  // RDMA-only: direct writes into a peer's registered memory; the kernel has no twin.
  iomap: {
    c: "off_t riomap(int socket, void *buf, size_t len, int prot, int flags, off_t offset)",
    args: [i32, buf, u64, i32, i32, i64],
    result: i64,
    kernel: null,
  },
  iounmap: {
    c: "int riounmap(int socket, void *buf, size_t len)",
    args: [i32, buf, u64],
    result: i32,
    kernel: null,
  },
  iowrite: {
    c: "size_t riowrite(int socket, const void *buf, size_t count, off_t offset, int flags)",
    args: [i32, buf, u64, i64, i32],
    result: i64,
    kernel: null,
  },
} as const satisfies Record<string, SymbolSpec>;

/** Name of an rsocket function without its `r` prefix. */
export type RsocketName = keyof typeof RSOCKET_SYMBOLS;

/**
 * libc helpers every provider needs besides the socket calls: errno of the calling thread (for
 * Deno and Bun; koffi reads it itself), an identity call that yields a buffer's address (to fill
 * `iovec`/`msghdr`), and the wake-up eventfd.
 */
export const LIBC_SYMBOLS = {
  __errno_location: {
    c: "int *__errno_location(void)",
    args: [],
    result: "ptr",
    kernel: "__errno_location",
  },
  // memmove(p, p, 0) returns p: the one portable way to learn a Uint8Array's address in koffi.
  memmove: {
    c: "void *memmove(void *dest, const void *src, size_t n)",
    args: [buf, buf, u64],
    result: "i64",
    kernel: "memmove",
  },
  eventfd: {
    c: "int eventfd(unsigned int initval, int flags)",
    args: [i32, i32],
    result: i32,
    kernel: "eventfd",
  },
  read: {
    c: "ssize_t read(int fd, void *buf, size_t count)",
    args: [i32, buf, u64],
    result: i64,
    kernel: "read",
  },
  write: {
    c: "ssize_t write(int fd, const void *buf, size_t count)",
    args: [i32, buf, u64],
    result: i64,
    kernel: "write",
  },
  close: { c: "int close(int fd)", args: [i32], result: i32, kernel: "close" },
} as const satisfies Record<string, SymbolSpec>;

/** A table entry bound to the name it has in one library. */
export interface BoundSymbol extends SymbolSpec {
  /** Our name (the key). */
  readonly key: string;
  /** The exported C name in the library. */
  readonly native: string;
}

/**
 * The entries a provider binds: for `rdma` every rsocket function as `r<name>`, for `kernel` the
 * libc twins (entries without one are left out), and for `libc` the helper table.
 */
export function bindTable(kind: "rdma" | "kernel" | "libc"): BoundSymbol[] {
  if (kind === "libc") {
    return Object.entries(LIBC_SYMBOLS).map(([key, s]) => ({ ...s, key, native: s.kernel }));
  }
  const out: BoundSymbol[] = [];
  for (const [key, s] of Object.entries(RSOCKET_SYMBOLS) as [string, SymbolSpec][]) {
    if (kind === "rdma") out.push({ ...s, key, native: `r${key}` });
    else if (s.kernel !== null) out.push({ ...s, key, native: s.kernel });
  }
  return out;
}
