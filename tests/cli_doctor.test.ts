// pg-rdma doctor: on this machine (librdmacm v44, no RDMA device) as a child process, and
// in-process against a made-up /sys, /proc, /dev and /etc tree for what this machine lacks.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import {
  diagnose,
  type DoctorCheck,
  type DoctorReport,
  formatReport,
  rdmaCoreVersion,
} from "../cli/doctor.ts";
import { dynamicSymbols } from "../cli/_elf.ts";
import { moduleCommand } from "./_fixture/runtime.ts";
import { noEnodev, noLib } from "./_fixture/rdma.ts";

const [exe, baseArgs] = moduleCommand("../cli/main.ts", import.meta.url);

/** Runs `pg-rdma doctor` without PG_RDMA_LIBRDMACM and WITH_RSOCKET, which would change its report. */
function doctor(args: string[]) {
  const env = { ...process.env };
  delete env.PG_RDMA_LIBRDMACM;
  delete env.WITH_RSOCKET;
  return new Promise<{ code: number; out: string; err: string }>((resolve) => {
    execFile(exe, [...baseArgs, "doctor", ...args], { env, timeout: 60_000 }, (e, out, err) => {
      resolve({
        code: e ? Number((e as { code?: unknown }).code ?? -1) : 0,
        out: String(out),
        err: String(err),
      });
    });
  });
}

const byId = (r: DoctorReport, id: string): DoctorCheck => {
  const c = r.checks.find((x) => x.id === id);
  assert.ok(c, `no check "${id}"`);
  return c;
};

const IDS = [
  "library",
  "symbols",
  "devices",
  "device_files",
  "modules",
  "memlock",
  "swap",
  "rsocket_config",
  "rsocket",
  "transport",
];

test(
  "doctor --json on this host: librdmacm v44 found, 27 symbols, no device, ENODEV, prefer → tcp, exit 1",
  {
    skip: noEnodev,
  },
  async () => {
    const r = await doctor(["--json"]);
    assert.equal(r.err, "");
    assert.equal(r.code, 1, "exit 1: RDMA is not usable here");
    const report = JSON.parse(r.out) as DoctorReport;
    assert.equal(report.schema, 1);
    assert.equal(report.usable, false);
    assert.deepEqual(report.checks.map((c) => c.id), IDS);
    const lib = byId(report, "library");
    assert.equal(lib.status, "ok");
    assert.match(lib.details.path as string, /^\/.*\/librdmacm\.so\.1\.3\.44\.0$/);
    assert.equal(lib.details.rdmaCore, 44);
    const sym = byId(report, "symbols");
    assert.equal(sym.status, "ok");
    assert.equal(sym.details.expected, 27);
    assert.equal((sym.details.resolved as string[]).length, 27);
    assert.deepEqual(sym.details.missing, []);
    const dev = byId(report, "devices");
    assert.equal(dev.status, "fail");
    assert.deepEqual(dev.details.devices, []);
    assert.match(dev.hint!, /rdma link add rxe0 type rxe netdev/);
    const rs = byId(report, "rsocket");
    assert.equal(rs.status, "fail");
    assert.equal(rs.details.code, "ENODEV");
    assert.equal(rs.details.errno, 19);
    assert.match(rs.details.message as string, /no RDMA device/);
    const tr = byId(report, "transport");
    assert.equal((tr.details.prefer as { transport: string }).transport, "tcp");
    // rdma-core 44 predates v63: wake_up_interval's default is 5000 there.
    const cfg = byId(report, "rsocket_config").details.settings as Record<
      string,
      { default: number }
    >;
    assert.equal(cfg.wake_up_interval.default, 5000);
    assert.match(report.verdict, /not usable/);
  },
);

test("doctor (text) on this host: one marked line per check, fix hints, a verdict", {
  skip: noEnodev,
}, async () => {
  const r = await doctor([]);
  assert.equal(r.code, 1);
  assert.match(
    r.out,
    /^\[ ok \] library +librdmacm loaded: .*librdmacm\.so\.1\.3\.44\.0 \(rdma-core 44\)$/m,
  );
  assert.match(r.out, /^\[ ok \] symbols +all 27 rsocket functions resolved$/m);
  assert.match(
    r.out,
    /^\[FAIL\] rsocket +rsocket\(AF_INET, SOCK_STREAM, 0\) failed with ENODEV \(errno 19\)$/m,
  );
  assert.match(r.out, /^ +polling_time +default 10$/m);
  assert.match(r.out, /^ +fix: /m);
  assert.match(r.out, /^verdict: RDMA \(rsockets\) is not usable here/m);
  for (const id of IDS) {
    assert.match(r.out, new RegExp(`^\\[(?: ok |warn|FAIL|info)\\] ${id} `, "m"), id);
  }
  const q = await doctor(["--quiet"]);
  assert.equal(q.code, 1);
  assert.equal(q.out, "", "--quiet: the exit status says it all");
});

test("doctor --library with a missing file reports the load failure and still exits 1 without crashing", async () => {
  const r = await doctor(["--json", "--library=/nonexistent/librdmacm.so.1"]);
  assert.equal(r.code, 1, r.err);
  const report = JSON.parse(r.out) as DoctorReport;
  const lib = byId(report, "library");
  assert.equal(lib.status, "fail");
  assert.equal(lib.details.loaded, false);
  assert.match(lib.hint!, /\/nonexistent\/librdmacm\.so\.1/);
  assert.match(lib.hint!, /apt-get install librdmacm1/);
  assert.equal(byId(report, "symbols").status, "fail");
  assert.match(byId(report, "rsocket").summary, /not tried/);
  assert.equal(report.usable, false);
});

/** Writes files under a temporary root: `{ "sys/class/infiniband/x/ports/1/state": "4: ACTIVE" }`. */
function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "pg-rdma-doctor-"));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

test("diagnose() reads devices, ports, device files, modules, limits, swap and rsocket settings", () => {
  const root = tree({
    "sys/class/infiniband/mlx5_0/ports/1/state": "4: ACTIVE\n",
    "sys/class/infiniband/mlx5_0/ports/1/phys_state": "5: LinkUp\n",
    "sys/class/infiniband/mlx5_0/ports/1/link_layer": "InfiniBand\n",
    "sys/class/infiniband/rxe0/ports/1/state": "1: DOWN\n",
    "sys/class/infiniband/rxe0/ports/1/link_layer": "Ethernet\n",
    "sys/class/infiniband_verbs/uverbs0/ibdev": "mlx5_0\n",
    "dev/infiniband/rdma_cm": "",
    "dev/infiniband/uverbs0": "",
    "sys/module/ib_core/refcnt": "3\n",
    "sys/module/mlx5_ib/refcnt": "0\n",
    "proc/self/limits":
      "Limit Soft Limit Hard Limit Units\nMax locked memory         unlimited            unlimited            bytes\n",
    "proc/swaps": "Filename\tType\tSize\tUsed\tPriority\n/swapfile  file  2097148  0  -2\n",
    "etc/rdma/rsocket/polling_time": "50\n",
    "etc/rdma/rsocket/sqsize_default": "lots\n",
  });
  try {
    const r = diagnose({ fsRoot: root, env: {} });
    const dev = byId(r, "devices");
    assert.equal(dev.status, "ok");
    assert.equal(dev.summary, "mlx5_0 (port 1 ACTIVE InfiniBand); rxe0 (port 1 DOWN Ethernet)");
    assert.deepEqual((dev.details.devices as { name: string }[]).map((d) => d.name), [
      "mlx5_0",
      "rxe0",
    ]);
    assert.deepEqual(dev.details.uverbs, ["uverbs0"]);
    assert.equal(byId(r, "device_files").status, "ok");
    assert.deepEqual(byId(r, "modules").details.loaded, ["ib_core", "mlx5_ib"]);
    assert.equal(byId(r, "modules").status, "ok");
    assert.equal(byId(r, "memlock").status, "ok");
    assert.equal(byId(r, "memlock").details.unlimited, true);
    const swap = byId(r, "swap");
    assert.equal(swap.status, "warn");
    assert.match(swap.summary, /\/swapfile \(2\.0 GiB\)/);
    assert.match(swap.hint!, /swapoff -a/);
    const cfg = byId(r, "rsocket_config");
    assert.equal(cfg.status, "warn");
    const settings = cfg.details.settings as Record<string, { value: number; source: string }>;
    assert.deepEqual(settings.polling_time, { value: 50, default: 10, source: "file" });
    assert.equal(settings.sqsize_default.source, "invalid");
    assert.equal(settings.sqsize_default.value, 384, "an invalid file leaves the default in force");
    assert.equal(settings.inline_default.source, "default");
    const text = formatReport(r);
    assert.match(text, /^ +polling_time +50$/m);
    assert.match(text, /^ +inline_default +default 64$/m);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("diagnose(): devices with no ACTIVE port fail; a finite memlock limit warns with the fix", () => {
  const root = tree({
    "sys/class/infiniband/mlx5_0/ports/1/state": "1: DOWN\n",
    "sys/class/infiniband_verbs/uverbs0/ibdev": "mlx5_0\n",
    "proc/self/limits":
      "Max locked memory         65536                65536                bytes\n",
    "proc/swaps": "Filename\tType\tSize\tUsed\tPriority\n",
  });
  try {
    const r = diagnose({ fsRoot: root, env: {} });
    const dev = byId(r, "devices");
    assert.equal(dev.status, "fail");
    assert.match(dev.summary, /no ACTIVE port: mlx5_0 \(port 1 DOWN\)/);
    assert.match(dev.hint!, /opensm/);
    assert.equal(byId(r, "device_files").status, "fail", "a device but no /dev/infiniband/rdma_cm");
    const mem = byId(r, "memlock");
    assert.equal(mem.status, "warn");
    assert.equal(mem.details.soft, 65536);
    assert.equal(mem.details.connections, 0);
    assert.match(mem.hint!, /LimitMEMLOCK=infinity/);
    assert.match(mem.hint!, /\/etc\/security\/limits\.conf/);
    assert.equal(byId(r, "swap").status, "ok");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("diagnose(): WITH_RSOCKET in the environment is reported; an invalid value warns", () => {
  const root = tree({});
  try {
    const ok = byId(diagnose({ fsRoot: root, env: { WITH_RSOCKET: "true" } }), "transport");
    assert.deepEqual((ok.details.environment as { transport: string }).transport, "rsocket");
    assert.match(ok.summary, /WITH_RSOCKET=true in this environment means rsockets/);
    const bad = byId(diagnose({ fsRoot: root, env: { WITH_RSOCKET: "bogus" } }), "transport");
    assert.equal(bad.status, "warn");
    assert.match(bad.summary, /WITH_RSOCKET=bogus is invalid/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("diagnose() rejects an empty libraryPath with TypeError", () => {
  assert.throws(() => diagnose({ libraryPath: "" }), TypeError);
});

test("rdmaCoreVersion() reads the rdma-core release from librdmacm's file name", () => {
  assert.equal(rdmaCoreVersion("/usr/lib/x86_64-linux-gnu/librdmacm.so.1.3.44.0"), 44);
  assert.equal(rdmaCoreVersion("/usr/lib64/librdmacm.so.1.3.63.0"), 63);
  assert.equal(rdmaCoreVersion("/usr/lib/librdmacm.so.1"), null);
  assert.equal(rdmaCoreVersion("/opt/custom/librdmacm.so"), null);
});

const LIBZ = ["/usr/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/aarch64-linux-gnu/libz.so.1"].find((
  p,
) => existsSync(p));

test(
  "doctor --library on a library without rsocket functions lists every missing one from its ELF table",
  {
    skip: LIBZ ? undefined : "no libz.so.1 to stand in for a wrong library",
  },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "pg-rdma-doctor-"));
    try {
      const fake = join(dir, "librdmacm.so.1.3.99.0");
      copyFileSync(LIBZ!, fake);
      const r = await doctor(["--json", `--library=${fake}`]);
      assert.equal(r.code, 1, r.err);
      const report = JSON.parse(r.out) as DoctorReport;
      const lib = byId(report, "library");
      assert.equal(lib.status, "fail");
      assert.equal(lib.details.path, fake);
      const sym = byId(report, "symbols");
      assert.equal(sym.status, "fail");
      assert.equal(sym.details.source, "elf");
      assert.equal((sym.details.missing as string[]).length, 27);
      assert.match(
        sym.summary,
        /27 of 27 rsocket functions missing from librdmacm\.so\.1\.3\.99\.0: rsocket, rbind/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test("dynamicSymbols() lists librdmacm's exports without loading it, and refuses a non-ELF file", {
  skip: noLib,
}, () => {
  const lib = [
    "/usr/lib/x86_64-linux-gnu/librdmacm.so.1",
    "/usr/lib/aarch64-linux-gnu/librdmacm.so.1",
  ].find((p) => existsSync(p))!;
  const names = dynamicSymbols(lib);
  for (const s of ["rsocket", "rpoll", "rfcntl", "riowrite", "rdma_create_id"]) {
    assert.ok(names.has(s), s);
  }
  assert.ok(!names.has("malloc"), "imported (undefined) symbols are not listed");
  const dir = mkdtempSync(join(tmpdir(), "pg-rdma-elf-"));
  try {
    writeFileSync(
      join(dir, "x.so"),
      "not an ELF file, just text that is long enough to have a header's worth of bytes",
    );
    assert.throws(
      () => dynamicSymbols(join(dir, "x.so")),
      (e: unknown) => e instanceof RangeError && /no ELF magic/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
