#!/usr/bin/env node
// npm test: type-check and lint, build, start one PostgreSQL cluster per version, run the whole
// suite under deno test, bun test and node --test (the build), and end with one line
// "N passed, N failed, N skipped" summed over the runtimes. Exit status 1 if anything failed.
//
// Options: --runtime deno,bun,node (default all three), --no-check, then test files
// (tests/foo.test.ts; under Node the built dist/tests/foo.test.js is run).
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const bin = (name) => `${root}node_modules/.bin/${name}`;
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { runtime: { type: "string", default: "deno,bun,node" }, "no-check": { type: "boolean" } },
});
const runtimes = values.runtime.split(",");
const files = positionals.length ? positionals : ["tests/"];
const failures = [];

function step(name, cmd, args) {
  process.stdout.write(`\n== ${name}\n`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit" });
  if (r.status !== 0) failures.push(`${name} (exit ${r.status ?? r.signal})`);
  return r.status === 0;
}

if (!values["no-check"]) {
  step("lockfile (npm ci accepts it)", process.execPath, [`${root}scripts/lock.mjs`, "--check"]);
  step("type-check (tsc)", process.execPath, [`${root}node_modules/typescript/bin/tsc`, "-p", "tsconfig.json"]);
  step("lint (deno lint)", bin("deno"), ["lint", "--quiet"]);
}
if (!step("build (dist/)", process.execPath, [`${root}scripts/build.mjs`])) {
  console.log(`\n0 passed, 1 failed`);
  process.exit(1);
}

// Every temporary file of the run (clusters, base backups, archives, dumps) goes under one
// directory that is removed at the end, so a test that forgets its own cleanup cannot fill the
// disk across runs. Sticky and world-writable like /tmp: servers run as another OS user.
const runTmp = mkdtempSync(join(tmpdir(), "pg-rdma-run-"));
chmodSync(runTmp, 0o1777);
process.env.TMPDIR = runTmp;
const removeRunTmp = () => rmSync(runTmp, { recursive: true, force: true });

const fixture = await import(new URL("../dist/tests/_fixture/cluster.js", import.meta.url).href);
const clusters = [];
for (const v of fixture.VERSIONS) {
  const why = fixture.unavailable(v);
  if (why) {
    process.stdout.write(`PostgreSQL ${v}: not started (${why}); its tests are skipped\n`);
    continue;
  }
  clusters.push(fixture.startCluster(v));
}
const started = await Promise.all(clusters);
for (const c of started) process.stdout.write(`PostgreSQL ${c.serverVersion} on 127.0.0.1:${c.port} (${c.baseDir})\n`);
const env = { ...process.env, ...fixture.clustersEnv(started), NO_COLOR: "1" };
delete env.FORCE_COLOR;
const stopAll = () => Promise.all(started.map((c) => c.stop()));
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => stopAll().then(removeRunTmp).then(() => process.exit(130)));

// The first match of `re` after the first occurrence of `marker` in `out`, within 2000 characters.
function firstAfter(out, marker, re) {
  const at = out.indexOf(marker);
  if (at < 0) return undefined;
  return re.exec(out.slice(at + marker.length, at + marker.length + 2000))?.[1];
}

const RUNNERS = {
  deno: {
    cmd: bin("deno"),
    args: ["test", "-A", "--no-check", ...files],
    parse(out) {
      const m = /(ok|FAILED) \| (\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed(?: \((\d+) steps?\))?(?: \| (\d+) ignored)?/.exec(out);
      if (!m) return undefined;
      if (m[3] || m[5]) throw new Error("deno counted test steps: write flat test() calls (no describe/t.test), so the three runners count alike");
      return { passed: +m[2], failed: +m[4], skipped: +(m[6] ?? 0) };
    },
    failedNames: (out) => [...out.matchAll(/^(.+?) \.\.\. FAILED\b/gm)].map((m) => m[1]),
    // deno's ERRORS section: "name => file:line:col", then "error: ...".
    why: (out, t) => firstAfter(out, `${t} => `, /^error: (.+)$/m),
  },
  bun: {
    cmd: bin("bun"),
    args: ["test", "--timeout", "900000", ...files.map((f) => (f.startsWith("/") || f.startsWith(".") ? f : `./${f}`))],
    parse(out) {
      const n = (w) => +(new RegExp(`^\\s*(\\d+) ${w}$`, "m").exec(out)?.[1] ?? NaN);
      const r = { passed: n("pass"), failed: n("fail"), skipped: n("skip") || 0 };
      if (Number.isNaN(r.passed) || Number.isNaN(r.failed)) return undefined;
      r.skipped += n("todo") || 0;
      return r;
    },
    failedNames: (out) => [...out.matchAll(/^\(fail\) (.+?)(?: \[[\d.]+m?s\])?$/gm)].map((m) => m[1]),
    // bun prints the error above the "(fail)" line.
    why: (out, t) => {
      const at = out.indexOf(`(fail) ${t}`);
      const before = out.slice(Math.max(0, at - 4000), at);
      return [...before.matchAll(/^(error: .+|\w*Error\b.*)$/gm)].at(-1)?.[1];
    },
  },
  node: {
    cmd: process.execPath,
    args: ["--test", "--test-reporter=spec",
      ...files.map((f) => `dist/${f}`.replace(/\.ts$/, ".js"))],
    parse(out) {
      const n = (w) => +(new RegExp(`ℹ ${w} (\\d+)`).exec(out)?.[1] ?? NaN);
      if (Number.isNaN(n("pass"))) return undefined;
      return { passed: n("pass"), failed: n("fail") + (n("cancelled") || 0), skipped: n("skipped") + (n("todo") || 0) };
    },
    failedNames: (out) => [...out.matchAll(/^\s*✖ (.+?)(?: \([\d.]+m?s\))?$/gm)].map((m) => m[1]),
    // the spec reporter indents the error's first line under the test's name.
    why: (out, t) => firstAfter(out, `✖ ${t}`, /\n\s+(\S.*)/),
  },
};

function runRuntime(name) {
  const r = RUNNERS[name];
  process.stdout.write(`\n== ${name}: ${[r.cmd.replace(root, ""), ...r.args].join(" ")}\n`);
  return new Promise((resolveRun) => {
    const child = spawn(r.cmd, r.args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let out = "";
    const tee = (to) => (d) => { out += d; to.write(d); };
    child.stdout.on("data", tee(process.stdout));
    child.stderr.on("data", tee(process.stderr));
    const limit = setTimeout(() => {
      out += `\n${name}: killed after 30 minutes\n`;
      try { process.kill(-child.pid, "SIGKILL"); } catch { /* gone */ }
    }, 30 * 60_000);
    child.on("close", (code, signal) => {
      clearTimeout(limit);
      let counts;
      // deno colours its summary even with NO_COLOR in some modes: read it without escapes.
      // deno-lint-ignore no-control-regex
      const clean = out.replace(/\x1b\[[0-9;]*m/g, "");
      try {
        counts = r.parse(clean);
        if (!counts) failures.push(`${name}: no test summary found in its output`);
      } catch (e) {
        failures.push(`${name}: ${e.message}`);
      }
      counts ??= { passed: 0, failed: 1, skipped: 0 };
      // The failed tests are named again in the summary: a CI log is often read from its tail.
      const names = [...new Set(r.failedNames(clean))].filter((t) => !/^failing tests:?$/.test(t));
      for (const t of names.slice(0, 20)) {
        const why = r.why(clean, t)?.trim().slice(0, 300);
        failures.push(`${name}: ${t}${why ? `\n    ${why}` : ""}`);
      }
      if (names.length > 20) failures.push(`${name}: and ${names.length - 20} more failed tests`);
      if (code !== 0 && counts.failed === 0) {
        counts.failed = 1;
        failures.push(`${name} exited with ${code ?? signal} without reporting a failed test`);
      }
      resolveRun({ name, ...counts, code });
    });
  });
}

const results = [];
for (const name of runtimes) {
  if (!RUNNERS[name]) throw new Error(`unknown runtime ${name}`);
  results.push(await runRuntime(name));
}
await stopAll();
for (const c of started) {
  if (existsSync(c.baseDir)) failures.push(`PostgreSQL ${c.version}: ${c.baseDir} left behind`);
  try {
    process.kill(c.pid, 0);
    failures.push(`PostgreSQL ${c.version}: postmaster ${c.pid} still running`);
  } catch { /* gone, as it should be */ }
}

removeRunTmp();

process.stdout.write("\n== summary\n");
for (const r of results) process.stdout.write(`${r.name.padEnd(5)} ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped\n`);
for (const f of failures) process.stdout.write(`FAILED: ${f}\n`);
const sum = (k) => results.reduce((a, r) => a + r[k], 0);
const failed = sum("failed") + (failures.length && !sum("failed") ? failures.length : 0);
process.stdout.write(`${sum("passed")} passed, ${failed} failed, ${sum("skipped")} skipped\n`);
process.exit(failed || failures.length ? 1 : 0);
