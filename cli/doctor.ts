/**
 * `pg-rdma doctor`: can RDMA (rsockets) work on this host, and if not, what to fix.
 *
 * One check per concern, each `ok`, `warn`, `fail` or `info` with a fix hint:
 *
 * | id | what is looked at |
 * |---|---|
 * | `library` | librdmacm loads (`openProvider("rdma")`); its real file and rdma-core version, from the name `librdmacm.so.1.3.<rdma-core>.0` found in `/proc/self/maps` |
 * | `symbols` | every rsocket function of `ffi/`'s table resolved (when the library does not load: present in its ELF export table) |
 * | `devices` | `/sys/class/infiniband/<dev>/ports/<n>/{state,phys_state,link_layer}`, `/sys/class/infiniband_verbs` |
 * | `device_files` | `/dev/infiniband/rdma_cm` and `uverbs*` exist and are readable and writable |
 * | `modules` | RDMA kernel modules loaded (`/sys/module`); Soft-RoCE / Soft-iWARP hint |
 * | `memlock` | `Max locked memory` in `/proc/self/limits` (RDMA pins its buffers) |
 * | `swap` | `/proc/swaps` (Postgres Pro advises disabling swap with RDMA) |
 * | `rsocket_config` | `/etc/rdma/rsocket/*`: each value, or "default N" |
 * | `rsocket` | `rsocket(AF_INET, SOCK_STREAM, 0)` succeeds (then closed) |
 * | `transport` | what `with_rsocket=prefer` would choose (`transport/select.ts`) |
 *
 * Verdict: RDMA is usable when the library, its symbols and the rsocket check pass. The command
 * exits 0 when usable and 1 when not, so `pg-rdma doctor -q && ...` works in scripts; `--json`
 * prints the same report with stable keys. A check that throws becomes a `fail` naming the error:
 * doctor itself does not crash.
 *
 * @module
 */
import {
  accessSync,
  constants,
  existsSync,
  readdirSync,
  readFileSync,
  realpathSync,
} from "node:fs";
import { arch, release } from "node:os";
import { basename, join } from "node:path";
import {
  AF_INET,
  openProvider,
  RSOCKET_SYMBOLS,
  RsocketError,
  type RsocketProvider,
} from "../ffi/mod.ts";
import { type RsocketProbe, selectTransport } from "../transport/select.ts";
import { VERSION } from "../version.ts";
import type { CommandContext } from "./_commands.ts";
import { dynamicSymbols } from "./_elf.ts";
import { formatBytes } from "./_progress.ts";

/** How a check came out. */
export type CheckStatus = "ok" | "warn" | "fail" | "info";

/** One check of the report. */
export interface DoctorCheck {
  /** Stable identifier, e.g. `"library"` (see the module doc for the list). */
  readonly id: string;
  readonly status: CheckStatus;
  /** One line a person can read. */
  readonly summary: string;
  /** What to do about it; `null` when nothing needs doing. */
  readonly hint: string | null;
  /** Machine-readable facts behind the summary; keys are stable per check id. */
  readonly details: Readonly<Record<string, unknown>>;
}

/** The whole report (`--json` prints exactly this). */
export interface DoctorReport {
  /** Version of this report's shape; bumped when keys change. */
  readonly schema: 1;
  readonly pgRdma: string;
  readonly runtime: "deno" | "bun" | "node";
  readonly kernel: string;
  readonly arch: string;
  /** RDMA (rsockets) can be used here: library, symbols and rsocket creation all ok. */
  readonly usable: boolean;
  /** One sentence: the outcome and, when not usable, the first thing to fix. */
  readonly verdict: string;
  readonly checks: readonly DoctorCheck[];
}

/** Options of {@linkcode diagnose}. */
export interface DiagnoseOptions {
  /** librdmacm to check (default: as `openProvider("rdma")` finds it, `PG_RDMA_LIBRDMACM` first). */
  libraryPath?: string;
  /**
   * Where `/sys`, `/proc` (but `/proc/self/maps`), `/dev` and `/etc` are read from; default `/`.
   * Tests point it at a made-up tree to see devices this machine does not have.
   */
  fsRoot?: string;
  /** For `WITH_RSOCKET` (default `process.env`). */
  env?: Record<string, string | undefined>;
}

/** rsocket's built-in defaults (rdma-core `librdmacm/rsocket.c`); `wake_up_interval` was 5000 before v63. */
export const RSOCKET_DEFAULTS = {
  polling_time: 10,
  wake_up_interval: 500,
  inline_default: 64,
  sqsize_default: 384,
  rqsize_default: 384,
  mem_default: 131072,
  wmem_default: 131072,
  iomap_size: 0,
} as const;

/** RDMA kernel modules worth naming: the core, the user-space interfaces, drivers, soft devices. */
const RDMA_MODULES = [
  "ib_core",
  "ib_uverbs",
  "rdma_cm",
  "rdma_ucm",
  "rdma_rxe",
  "siw",
  "mlx5_ib",
  "mlx4_ib",
  "irdma",
  "bnxt_re",
  "qedr",
  "efa",
  "hfi1",
  "ionic_rdma",
] as const;

/** Standard library directories, for finding librdmacm's file when `/proc/self/maps` cannot say. */
const LIB_DIRS = [
  "/lib/x86_64-linux-gnu",
  "/usr/lib/x86_64-linux-gnu",
  "/lib/aarch64-linux-gnu",
  "/usr/lib/aarch64-linux-gnu",
  "/usr/lib64",
  "/lib64",
  "/usr/lib",
  "/lib",
  "/usr/local/lib",
];

const runtimeName = (): DoctorReport["runtime"] =>
  "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

function list(path: string): string[] {
  try {
    return readdirSync(path).sort();
  } catch {
    return [];
  }
}

/**
 * The rdma-core release in a librdmacm file name: `librdmacm.so.1.3.44.0` → 44 (rdma-core builds
 * the library as version `1.3.<release>`); `null` when the name does not say.
 */
export function rdmaCoreVersion(path: string): number | null {
  const m = /librdmacm\.so\.\d+\.\d+\.(\d+)(?:\.\d+)?$/.exec(basename(path));
  return m ? Number(m[1]) : null;
}

/** The librdmacm file this process mapped (the kernel lists real paths), else one found on disk. */
function locateLibrary(
  requested: string | undefined,
  env: Record<string, string | undefined>,
): string | null {
  const maps = read("/proc/self/maps");
  if (maps) {
    for (const line of maps.split("\n")) {
      const path = line.slice(line.indexOf("/"));
      if (line.includes("/") && /\/librdmacm[^/]*\.so[^/]*$/.test(path)) return path;
    }
  }
  const name = requested ?? "librdmacm.so.1";
  const candidates = name.includes("/") ? [name] : [
    ...(env.LD_LIBRARY_PATH ?? "").split(":").filter(Boolean),
    ...LIB_DIRS,
  ].map((d) => join(d, name));
  for (const c of candidates) {
    try {
      return realpathSync(c);
    } catch { /* try the next one */ }
  }
  return null;
}

/** The default-route interface (for a concrete `rdma link add` hint), else `eth0`. */
function defaultInterface(root: string): string {
  const route = read(join(root, "proc/net/route")) ?? "";
  for (const line of route.split("\n").slice(1)) {
    const [iface, dest] = line.trim().split(/\s+/);
    if (dest === "00000000" && iface) return iface;
  }
  return "eth0";
}

function check(
  id: string,
  status: CheckStatus,
  summary: string,
  hint: string | null = null,
  details: Record<string, unknown> = {},
): DoctorCheck {
  return { id, status, summary, hint, details };
}

/**
 * Runs every check and returns the report. Synchronous, reads only small files, and loads
 * librdmacm (once per process, like any `openProvider("rdma")` user).
 *
 * @example
 * ```ts
 * const report = diagnose();
 * if (!report.usable) console.error(report.verdict);
 * ```
 */
export function diagnose(opts: DiagnoseOptions = {}): DoctorReport {
  if (
    opts.libraryPath !== undefined &&
    (typeof opts.libraryPath !== "string" || opts.libraryPath === "")
  ) {
    throw new TypeError("libraryPath must be a non-empty string");
  }
  const root = opts.fsRoot ?? "/";
  const env = opts.env ?? process.env;
  const checks: DoctorCheck[] = [];
  const guard = (id: string, fn: () => DoctorCheck) => {
    let c: DoctorCheck;
    try {
      c = fn();
    } catch (e) {
      c = check(
        id,
        "fail",
        `the check itself failed: ${e instanceof Error ? e.message : String(e)}`,
        null,
        {
          error: e instanceof Error ? e.message : String(e),
        },
      );
    }
    checks.push(c);
    return c;
  };

  // --- librdmacm and its symbols -------------------------------------------------------------
  let provider: RsocketProvider | undefined;
  let rdmaCore: number | null = null;
  const library = guard("library", () => {
    const requested = opts.libraryPath ?? (env.PG_RDMA_LIBRDMACM || undefined);
    try {
      provider = openProvider(
        "rdma",
        opts.libraryPath !== undefined ? { libraryPath: opts.libraryPath } : {},
      );
    } catch (e) {
      const path = locateLibrary(requested, env);
      return check(
        "library",
        "fail",
        path
          ? `librdmacm is at ${path} but did not load`
          : "librdmacm (the rsocket library) was not found",
        e instanceof Error ? e.message : String(e),
        {
          loaded: false,
          requested: requested ?? null,
          path,
          rdmaCore: path ? rdmaCoreVersion(path) : null,
        },
      );
    }
    const path = locateLibrary(requested ?? provider.libraryPath, env);
    rdmaCore = path ? rdmaCoreVersion(path) : null;
    return check(
      "library",
      "ok",
      `librdmacm loaded: ${path ?? provider.libraryPath} (${
        rdmaCore !== null ? `rdma-core ${rdmaCore}` : "version unknown"
      })`,
      null,
      { loaded: true, requested: provider.libraryPath, path, rdmaCore },
    );
  });

  const symbols = guard("symbols", () => {
    const expected = Object.keys(RSOCKET_SYMBOLS).map((k) => `r${k}`);
    if (!provider) {
      // Not loaded: read the file's export table instead, to tell a library that lacks rsocket
      // functions from one that exports them all but fails for another reason.
      const path = library.details.path;
      if (typeof path !== "string") {
        return check("symbols", "fail", "not checked: librdmacm was not found", null, {
          expected: expected.length,
          resolved: [],
          missing: expected,
          source: null,
        });
      }
      const exported = dynamicSymbols(path);
      const missing = expected.filter((s) => !exported.has(s));
      return check(
        "symbols",
        "fail",
        missing.length === 0
          ? `all ${expected.length} rsocket functions are exported by ${
            basename(path)
          }, but it did not load (see library)`
          : `${missing.length} of ${expected.length} rsocket functions missing from ${
            basename(path)
          }: ${missing.join(", ")}`,
        missing.length === 0
          ? null
          : "Install a complete librdmacm (rdma-core), or point PG_RDMA_LIBRDMACM at one.",
        { expected: expected.length, resolved: [], missing, source: "elf" },
      );
    }
    const have = new Set(provider.symbols);
    const missing = expected.filter((s) => !have.has(s));
    return missing.length === 0
      ? check("symbols", "ok", `all ${expected.length} rsocket functions resolved`, null, {
        expected: expected.length,
        resolved: [...provider.symbols],
        missing,
        source: "loaded",
      })
      : check(
        "symbols",
        "fail",
        `${missing.length} of ${expected.length} rsocket functions missing: ${missing.join(", ")}`,
        "Install a newer librdmacm (rdma-core).",
        { expected: expected.length, resolved: [...provider.symbols], missing, source: "loaded" },
      );
  });

  // --- devices, device files, modules ----------------------------------------------------------
  const iface = defaultInterface(root);
  const softHint =
    `Without RDMA hardware, Soft-RoCE can stand in: \`modprobe rdma_rxe && rdma link add rxe0 type rxe ` +
    `netdev ${iface}\` (or Soft-iWARP: \`modprobe siw && rdma link add siw0 type siw netdev ${iface}\`); ` +
    "in a container, do it on the host.";
  let deviceCount = 0;
  guard("devices", () => {
    const ib = join(root, "sys/class/infiniband");
    const verbs = list(join(root, "sys/class/infiniband_verbs")).filter((n) =>
      n.startsWith("uverbs")
    );
    const devices = list(ib).map((name) => {
      const ports = list(join(ib, name, "ports")).map((port) => {
        const at = (f: string) => read(join(ib, name, "ports", port, f))?.trim() ?? null;
        const state = at("state"); // "4: ACTIVE"
        return {
          port: Number(port),
          state: state?.replace(/^\d+:\s*/, "") ?? null,
          physState: at("phys_state")?.replace(/^\d+:\s*/, "") ?? null,
          linkLayer: at("link_layer"),
        };
      });
      return { name, ports };
    });
    deviceCount = devices.length;
    const details = { devices, uverbs: verbs };
    if (devices.length === 0) {
      return check(
        "devices",
        "fail",
        existsSync(ib)
          ? "no RDMA device (/sys/class/infiniband is empty)"
          : "no RDMA device (/sys/class/infiniband does not exist)",
        "List devices with `rdma link` (iproute2) or `ibv_devices` (ibverbs-utils). " + softHint,
        details,
      );
    }
    const text = devices.map((d) =>
      `${d.name} (${
        d.ports.map((p) =>
          `port ${p.port} ${p.state ?? "?"}${p.linkLayer ? ` ${p.linkLayer}` : ""}`
        ).join(", ") || "no ports"
      })`
    ).join("; ");
    const active = devices.some((d) => d.ports.some((p) => p.state === "ACTIVE"));
    if (!active) {
      return check(
        "devices",
        "fail",
        `no ACTIVE port: ${text}`,
        "Bring a link up: check the cable and switch; on InfiniBand a subnet manager must run (`systemctl start opensm`); " +
          "on RoCE the Ethernet interface must be up. `rdma link` shows the state.",
        details,
      );
    }
    if (verbs.length === 0) {
      return check(
        "devices",
        "fail",
        `${text}, but no user-space verbs device`,
        "Load it: `modprobe ib_uverbs`.",
        details,
      );
    }
    return check("devices", "ok", text, null, details);
  });

  guard("device_files", () => {
    const dir = join(root, "dev/infiniband");
    const names = list(dir);
    const files = names.filter((n) => n === "rdma_cm" || n.startsWith("uverbs")).map((name) => {
      let access = true;
      try {
        accessSync(join(dir, name), constants.R_OK | constants.W_OK);
      } catch {
        access = false;
      }
      return { name, access };
    });
    const details = { dir, files };
    if (deviceCount === 0 && files.length === 0) {
      return check(
        "device_files",
        "info",
        `${dir} has no RDMA device files (expected with no device)`,
        null,
        details,
      );
    }
    if (!files.some((f) => f.name === "rdma_cm")) {
      return check(
        "device_files",
        "fail",
        `${dir}/rdma_cm is missing`,
        "Load the RDMA CM user interface: `modprobe rdma_ucm`.",
        details,
      );
    }
    const denied = files.filter((f) => !f.access).map((f) => f.name);
    if (denied.length) {
      return check(
        "device_files",
        "fail",
        `no read/write access to ${denied.map((n) => `${dir}/${n}`).join(", ")}`,
        "Give this user access (usually membership of the group owning them, e.g. `rdma`, via a udev rule), " +
          "or in a container pass them in: `--device /dev/infiniband`.",
        details,
      );
    }
    return check(
      "device_files",
      "ok",
      `${files.map((f) => f.name).join(", ")} accessible`,
      null,
      details,
    );
  });

  guard("modules", () => {
    const loaded = RDMA_MODULES.filter((m) => existsSync(join(root, "sys/module", m)));
    const kernel = release();
    const moduleDir = join(root, "lib/modules", kernel);
    const soft = {
      rdma_rxe: "kernel/drivers/infiniband/sw/rxe",
      siw: "kernel/drivers/infiniband/sw/siw",
    };
    const available = Object.entries(soft)
      .filter(([name, dir]) => list(join(moduleDir, dir)).some((f) => f.startsWith(`${name}.ko`)))
      .map(([name]) => name);
    const details = {
      loaded,
      softAvailable: available,
      moduleDir: existsSync(moduleDir) ? moduleDir : null,
    };
    const text = loaded.length ? `loaded: ${loaded.join(", ")}` : "no RDMA kernel module loaded";
    if (deviceCount > 0) {
      return check("modules", loaded.length ? "ok" : "info", text, null, details);
    }
    const where = existsSync(moduleDir)
      ? available.length
        ? `${available.join(" and ")} ${
          available.length > 1 ? "are" : "is"
        } available in ${moduleDir}. `
        : `rdma_rxe and siw are not in ${moduleDir} (install the kernel's extra modules package). `
      : `${moduleDir} does not exist (a container? modules are loaded on the host). `;
    return check(
      "modules",
      "warn",
      text,
      where +
        "`modprobe rdma_rxe` (Soft-RoCE) or `modprobe siw` (Soft-iWARP) adds a software RDMA driver; " +
        "then create a device with `rdma link add` (see devices).",
      details,
    );
  });

  // --- memory: locked-memory limit, swap -------------------------------------------------------
  const config = readRsocketConfig(root, rdmaCore);
  guard("memlock", () => {
    const limits = read(join(root, "proc/self/limits")) ?? "";
    const m = /^Max locked memory\s+(\S+)\s+(\S+)/m.exec(limits);
    if (!m) {
      return check("memlock", "info", "locked-memory limit unknown (no /proc/self/limits)", null, {
        soft: null,
        hard: null,
      });
    }
    const num = (v: string) => (v === "unlimited" ? null : Number(v));
    const soft = num(m[1]), hard = num(m[2]);
    const details = { soft, hard, unit: "bytes", unlimited: soft === null };
    if (soft === null) return check("memlock", "ok", "locked memory: unlimited", null, details);
    const perConnection = config.values.mem_default + config.values.wmem_default;
    const connections = Math.floor(soft / perConnection);
    return check(
      "memlock",
      "warn",
      `locked memory limited to ${formatBytes(soft)} (hard ${
        hard === null ? "unlimited" : formatBytes(hard)
      }): ` +
        `room for about ${connections} rsocket connections (each pins at least ${
          formatBytes(perConnection)
        } of buffers)`,
      "RDMA pins (locks) its buffers. Raise the limit: `LimitMEMLOCK=infinity` in the [Service] section of a systemd " +
        "unit; `* - memlock unlimited` in /etc/security/limits.conf for login sessions (log in again); " +
        "`--ulimit memlock=-1` for Docker; `ulimit -l` shows it.",
      { ...details, connections, perConnection },
    );
  });

  guard("swap", () => {
    const swaps = read(join(root, "proc/swaps"));
    if (swaps === undefined) {
      return check("swap", "info", "swap unknown (no /proc/swaps)", null, { devices: [] });
    }
    const devices = swaps.split("\n").slice(1).filter((l) => l.trim()).map((l) => {
      const [name, type, size, used] = l.trim().split(/\s+/);
      return { name, type, sizeKiB: Number(size), usedKiB: Number(used) };
    });
    if (devices.length === 0) return check("swap", "ok", "swap is off", null, { devices });
    const total = devices.reduce((n, d) => n + d.sizeKiB * 1024, 0);
    return check(
      "swap",
      "warn",
      `swap is on: ${devices.map((d) => d.name).join(", ")} (${formatBytes(total)})`,
      "Postgres Pro advises disabling swap on RDMA hosts: `swapoff -a`, and remove the swap lines from /etc/fstab.",
      { devices },
    );
  });

  guard("rsocket_config", () => {
    const bad = Object.entries(config.settings).filter(([, s]) => s.source === "invalid");
    const set = Object.entries(config.settings).filter(([, s]) => s.source === "file");
    const summary = set.length === 0 && bad.length === 0
      ? `all defaults (${
        config.dirExists ? `nothing set in ${config.dir}` : `${config.dir} does not exist`
      })`
      : `${
        set.map(([k, s]) => `${k}=${s.value}`).join(", ") || "nothing valid"
      } set in ${config.dir}`;
    return check(
      "rsocket_config",
      bad.length ? "warn" : "ok",
      bad.length ? `${summary}; not a number: ${bad.map(([k]) => k).join(", ")}` : summary,
      bad.length
        ? `Each file in ${config.dir} holds one integer; fix or remove ${
          bad.map(([k]) => k).join(", ")
        }.`
        : null,
      { dir: config.dir, settings: config.settings },
    );
  });

  // --- an rsocket, and the transport prefer would pick -------------------------------------------
  let probe: RsocketProbe = { ok: false, error: new Error("librdmacm did not load") };
  const rsocket = guard("rsocket", () => {
    if (!provider) {
      return check("rsocket", "fail", "not tried: librdmacm did not load", null, {
        created: false,
        code: null,
        errno: null,
        message: null,
      });
    }
    try {
      const fd = provider.socket(AF_INET);
      provider.close(fd);
      probe = { ok: true };
      return check("rsocket", "ok", "rsocket(AF_INET, SOCK_STREAM, 0) created and closed", null, {
        created: true,
        code: null,
        errno: null,
        message: null,
      });
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      probe = { ok: false, error: err };
      const code = e instanceof RsocketError ? e.code : null;
      const errno = e instanceof RsocketError ? e.errno : null;
      return check(
        "rsocket",
        "fail",
        `rsocket(AF_INET, SOCK_STREAM, 0) failed${code ? ` with ${code} (errno ${errno})` : ""}`,
        err.message,
        { created: false, code, errno, message: err.message },
      );
    }
  });

  guard("transport", () => {
    const prefer = selectTransport({
      setting: "prefer",
      env: {},
      probe: () => probe,
      notice: () => {},
    });
    const details: Record<string, unknown> = {
      prefer: { transport: prefer.transport, reason: prefer.reason },
      environment: null,
    };
    let note = "";
    if (env.WITH_RSOCKET !== undefined && env.WITH_RSOCKET !== "") {
      try {
        const d = selectTransport({ env, probe: () => probe, notice: () => {} });
        details.environment = {
          WITH_RSOCKET: env.WITH_RSOCKET,
          transport: d.transport,
          reason: d.reason,
        };
        note = `; WITH_RSOCKET=${env.WITH_RSOCKET} in this environment means ${
          d.transport === "rsocket" ? "rsockets" : "TCP"
        }`;
      } catch (e) {
        details.environment = {
          WITH_RSOCKET: env.WITH_RSOCKET,
          error: e instanceof Error ? e.message : String(e),
        };
        return check(
          "transport",
          "warn",
          `WITH_RSOCKET=${env.WITH_RSOCKET} is invalid`,
          "Set it to true, false or prefer.",
          details,
        );
      }
    }
    const which = prefer.transport === "rsocket" ? "rsockets (RDMA)" : "native TCP";
    return check(
      "transport",
      prefer.transport === "rsocket" ? "ok" : "info",
      `with_rsocket=prefer would use ${which}${note}`,
      null,
      details,
    );
  });

  const usable = library.status === "ok" && symbols.status === "ok" && rsocket.status === "ok";
  const firstFail = checks.find((c) => c.status === "fail");
  const verdict = usable
    ? "RDMA (rsockets) is usable here: connect with with_rsocket=true (or prefer)"
    : `RDMA (rsockets) is not usable here${
      firstFail ? `: ${firstFail.summary}` : ""
    }; with_rsocket=prefer uses TCP, ` +
      "with_rsocket=true fails";
  return {
    schema: 1,
    pgRdma: VERSION,
    runtime: runtimeName(),
    kernel: release(),
    arch: arch(),
    usable,
    verdict,
    checks,
  };
}

type RsocketSetting = keyof typeof RSOCKET_DEFAULTS;

/** `/etc/rdma/rsocket/*`: each setting's value and where it came from. */
function readRsocketConfig(root: string, rdmaCore: number | null) {
  const dir = join(root, "etc/rdma/rsocket");
  const settings = {} as Record<
    RsocketSetting,
    { value: number; default: number; source: "file" | "default" | "invalid"; raw?: string }
  >;
  const values = {} as Record<RsocketSetting, number>;
  for (const key of Object.keys(RSOCKET_DEFAULTS) as RsocketSetting[]) {
    const def = key === "wake_up_interval" && rdmaCore !== null && rdmaCore < 63
      ? 5000
      : RSOCKET_DEFAULTS[key];
    const raw = read(join(dir, key));
    const n = raw === undefined ? NaN : Number(raw.trim());
    if (raw === undefined) settings[key] = { value: def, default: def, source: "default" };
    else if (raw.trim() !== "" && Number.isInteger(n) && n >= 0) {
      settings[key] = { value: n, default: def, source: "file" };
    } else settings[key] = { value: def, default: def, source: "invalid", raw: raw.trim() };
    values[key] = settings[key].value;
  }
  return { dir, dirExists: existsSync(dir), settings, values };
}

/**
 * Splits text into lines of at most `width` characters at spaces; a `command in backticks` is
 * never split, so it can be copied whole (long words and commands overflow instead).
 */
function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = "";
  for (const word of text.match(/[^\s`]*`[^`]*`[^\s`]*|\S+/g) ?? []) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(line);
  return out;
}

const MARK: Record<CheckStatus, string> = {
  ok: "[ ok ]",
  warn: "[warn]",
  fail: "[FAIL]",
  info: "[info]",
};

/** The report as text: one line per check with its mark, a `fix:` line under problems, the verdict. */
export function formatReport(
  report: DoctorReport,
  opts: { verbose?: boolean; columns?: number } = {},
): string {
  const width = Math.max(...report.checks.map((c) => c.id.length)) + 2;
  const lines = [
    `pg-rdma doctor ${report.pgRdma} (${report.runtime}, Linux ${report.kernel} ${report.arch})`,
    "",
  ];
  for (const c of report.checks) {
    lines.push(`${MARK[c.status]} ${c.id.padEnd(width)}${c.summary}`);
    const indent = " ".repeat(7 + width);
    if (c.id === "rsocket_config") {
      const settings = c.details.settings as
        | Record<string, { value: number; default: number; source: string }>
        | undefined;
      for (const [k, s] of Object.entries(settings ?? {})) {
        lines.push(
          `${indent}${k.padEnd(17)}${s.source === "file" ? `${s.value}` : `default ${s.default}`}`,
        );
      }
    }
    if (c.hint && (c.status === "fail" || c.status === "warn" || opts.verbose)) {
      const width = Math.max(40, (opts.columns ?? 100) - indent.length);
      const text = `fix: ${c.hint}`.split("\n").flatMap((para) => wrap(para.trim(), width));
      lines.push(...text.map((l) => indent + l));
    }
    if (opts.verbose && c.id === "symbols") {
      const resolved = c.details.resolved as string[] | undefined;
      if (resolved?.length) lines.push(`${indent}${resolved.join(" ")}`);
    }
  }
  lines.push("", `verdict: ${report.verdict}`);
  return lines.join("\n") + "\n";
}

/** `pg-rdma doctor`: prints the report (text, or JSON with `--json`); 0 when usable, 1 when not. */
export function doctorCommand(ctx: CommandContext): Promise<number> {
  const library = ctx.args.values.library;
  const report = diagnose({
    env: { ...ctx.env },
    ...(typeof library === "string" ? { libraryPath: library } : {}),
  });
  if (ctx.args.values.json) ctx.stdout.write(JSON.stringify(report, null, 2) + "\n");
  else if (!ctx.quiet) {
    const columns = ctx.stdout.isTTY ? ctx.stdout.columns : undefined;
    ctx.stdout.write(
      formatReport(report, { verbose: ctx.verbose, ...(columns ? { columns } : {}) }),
    );
  }
  return Promise.resolve(report.usable ? 0 : 1);
}
