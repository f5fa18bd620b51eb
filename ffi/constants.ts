/**
 * Numeric constants of the socket ABI that rsockets mirror, as Linux defines them on x86_64 and
 * aarch64 (the two architectures pg-rdma supports; other architectures differ in a few of these,
 * e.g. `O_NONBLOCK` on some, and are refused nowhere but untested).
 *
 * `SOL_RDMA` and the `RDMA_*` options are librdmacm's own (`rdma/rsocket.h`); the rest are the
 * kernel's. Each group is an `as const` table so a name can be looked up from a value in errors.
 *
 * @module
 */

/** Address families (`AF_*`). */
export const AF_INET = 2;
/** IPv6 address family. */
export const AF_INET6 = 10;
/** Unspecified family (only meaningful to name resolution). */
export const AF_UNSPEC = 0;

/** Socket types (`SOCK_*`). */
export const SOCK_STREAM = 1;
/** Datagram socket type (rsockets support it only with an RDMA device and UD QPs). */
export const SOCK_DGRAM = 2;
/**
 * Non-blocking flag for the socket type. librdmacm v44 (Debian 12) answers EOPNOTSUPP to it
 * (accepted from rdma-core v63): use {@linkcode O_NONBLOCK} through `fcntl` instead.
 */
export const SOCK_NONBLOCK = 0x800;
/** Close-on-exec flag for the socket type. */
export const SOCK_CLOEXEC = 0x80000;

/** Protocol levels for `getsockopt`/`setsockopt`. */
export const SOL_SOCKET = 1;
/** TCP option level. */
export const IPPROTO_TCP = 6;
/** IPv6 option level. */
export const IPPROTO_IPV6 = 41;
/** librdmacm's option level for the RDMA queue settings (`RDMA_*`). */
export const SOL_RDMA = 0x10000;

/** `SOL_SOCKET` options. */
export const SO_REUSEADDR = 2;
/** Pending socket error (read once to learn how a non-blocking connect ended). */
export const SO_ERROR = 4;
/** Send buffer size (rsockets: only before connect). */
export const SO_SNDBUF = 7;
/** Receive buffer size (rsockets: only before connect). */
export const SO_RCVBUF = 8;
/** Keepalive probes (rsockets: sent by a service thread, timed by TCP_KEEPIDLE). */
export const SO_KEEPALIVE = 9;
/** Linger on close (a struct option: use the byte form of setsockopt). */
export const SO_LINGER = 13;

/** `IPPROTO_TCP` options. */
export const TCP_NODELAY = 1;
/** Idle seconds before the first keepalive probe. */
export const TCP_KEEPIDLE = 4;
/** Seconds between keepalive probes. */
export const TCP_KEEPINTVL = 5;
/** Unanswered probes before the connection is dropped. */
export const TCP_KEEPCNT = 6;

/** `IPPROTO_IPV6` option: refuse IPv4-mapped traffic on an IPv6 socket. */
export const IPV6_V6ONLY = 26;

/** `SOL_RDMA` options; all must be set before `connect` (EINVAL after). */
export const RDMA_SQSIZE = 0;
/** Receive queue size. */
export const RDMA_RQSIZE = 1;
/** Inline data size. */
export const RDMA_INLINE = 2;
/** Number of `riomap` slots. */
export const RDMA_IOMAPSIZE = 3;
/** Route (a struct option). */
export const RDMA_ROUTE = 4;

/** `poll` events. */
export const POLLIN = 1;
/** Urgent data. */
export const POLLPRI = 2;
/** Writable. */
export const POLLOUT = 4;
/** Error (revents only). */
export const POLLERR = 8;
/** Hang-up (revents only). */
export const POLLHUP = 16;
/** Descriptor not open (revents only). */
export const POLLNVAL = 32;
/** Peer closed its writing half. */
export const POLLRDHUP = 0x2000;

/** `send`/`recv` flags. */
export const MSG_PEEK = 2;
/** Fail with EAGAIN instead of blocking, for this call only. */
export const MSG_DONTWAIT = 0x40;
/** Block until the whole buffer is filled. */
export const MSG_WAITALL = 0x100;
/** EPIPE instead of SIGPIPE when the peer is gone (the kernel provider always adds it). */
export const MSG_NOSIGNAL = 0x4000;

/** `fcntl` commands and flags. */
export const F_GETFL = 3;
/** Set file status flags. */
export const F_SETFL = 4;
/** Non-blocking file status flag. */
export const O_NONBLOCK = 0x800;

/** `shutdown` directions. */
export const SHUT_RD = 0;
/** Stop sending (the peer reads EOF). */
export const SHUT_WR = 1;
/** Both directions. */
export const SHUT_RDWR = 2;

/** `riomap` protection flag (the only one rsockets accept). */
export const PROT_WRITE = 2;

/** `eventfd` flags. */
export const EFD_NONBLOCK = 0x800;
/** Close-on-exec for the eventfd. */
export const EFD_CLOEXEC = 0x80000;

/** errno values used by name in this code. */
export const EINTR = 4;
/** Bad file descriptor. */
export const EBADF = 9;
/** Would block. */
export const EAGAIN = 11;
/** No such device (rsocket: no RDMA device present). */
export const ENODEV = 19;
/** Invalid argument. */
export const EINVAL = 22;
/** Broken pipe (peer gone; MSG_NOSIGNAL turned SIGPIPE into this). */
export const EPIPE = 32;
/** Function not implemented. */
export const ENOSYS = 38;
/** Cannot access a needed shared library (used for a failed library load). */
export const ELIBACC = 79;
/** Operation not supported. */
export const EOPNOTSUPP = 95;
/** Connection reset by peer. */
export const ECONNRESET = 104;
/** Connection timed out. */
export const ETIMEDOUT = 110;
/** Connection refused. */
export const ECONNREFUSED = 111;
/** Connect in progress (non-blocking connect). */
export const EINPROGRESS = 115;

/**
 * errno number → [code, what it means]. Linux generic numbering (x86_64 and aarch64 share it).
 * The text is ours, written for someone reading an error message, not a copy of strerror().
 */
export const ERRNO = {
  1: ["EPERM", "operation not permitted"],
  2: ["ENOENT", "no such file or directory"],
  4: ["EINTR", "interrupted by a signal"],
  5: ["EIO", "input/output error"],
  6: ["ENXIO", "no such device or address"],
  9: ["EBADF", "not an open descriptor"],
  11: ["EAGAIN", "the call would block"],
  12: [
    "ENOMEM",
    "out of memory (RDMA also fails this way when locked memory is limited: see ulimit -l)",
  ],
  13: ["EACCES", "permission denied"],
  14: ["EFAULT", "bad address"],
  16: ["EBUSY", "device or resource busy"],
  17: ["EEXIST", "already exists"],
  19: ["ENODEV", "no such device"],
  22: ["EINVAL", "invalid argument"],
  23: ["ENFILE", "too many open files in the system"],
  24: ["EMFILE", "too many open files in this process"],
  28: ["ENOSPC", "no space left"],
  32: ["EPIPE", "the peer is gone (broken pipe)"],
  38: ["ENOSYS", "not implemented"],
  61: ["ENODATA", "no data available"],
  71: ["EPROTO", "protocol error"],
  79: ["ELIBACC", "cannot access a needed shared library"],
  88: ["ENOTSOCK", "not a socket"],
  89: ["EDESTADDRREQ", "destination address required"],
  90: ["EMSGSIZE", "message too long"],
  91: ["EPROTOTYPE", "wrong protocol type for socket"],
  92: ["ENOPROTOOPT", "protocol option not available"],
  93: ["EPROTONOSUPPORT", "protocol not supported"],
  94: ["ESOCKTNOSUPPORT", "socket type not supported"],
  95: ["EOPNOTSUPP", "operation not supported"],
  97: ["EAFNOSUPPORT", "address family not supported"],
  98: ["EADDRINUSE", "address already in use"],
  99: ["EADDRNOTAVAIL", "address not available on this host"],
  100: ["ENETDOWN", "network is down"],
  101: ["ENETUNREACH", "network is unreachable"],
  103: ["ECONNABORTED", "connection aborted"],
  104: ["ECONNRESET", "connection reset by peer"],
  105: ["ENOBUFS", "no buffer space available"],
  106: ["EISCONN", "already connected"],
  107: ["ENOTCONN", "not connected"],
  108: ["ESHUTDOWN", "the socket was shut down for sending"],
  110: ["ETIMEDOUT", "connection timed out"],
  111: ["ECONNREFUSED", "connection refused"],
  112: ["EHOSTDOWN", "host is down"],
  113: ["EHOSTUNREACH", "no route to host"],
  114: ["EALREADY", "a connect is already in progress"],
  115: ["EINPROGRESS", "connect in progress"],
} as const satisfies Record<number, readonly [string, string]>;

/** The errno code name for a number (`"ENODEV"` for 19), or `"E<number>"` if unknown here. */
export function errnoName(errno: number): string {
  return (ERRNO as Record<number, readonly [string, string]>)[errno]?.[0] ?? `E${errno}`;
}
