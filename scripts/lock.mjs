#!/usr/bin/env node
// npm run lock: makes package-lock.json acceptable to `npm ci` here.
//
// The registry these machines reach serves only some platforms' builds of packages that ship
// per-platform optional dependencies (@deno/*, @msgpackr-extract/*). npm leaves those names in
// the lock's optionalDependencies lists without entries of their own, and `npm ci` then refuses
// the lock ("Missing: @deno/darwin-arm64@ from lock file"). This drops the names that have no
// entry. Run it after every `npm install`; `npm test --check` fails while it is needed.
// With --check it only reports (exit 1 when the lock needs fixing).
import { readFileSync, writeFileSync } from "node:fs";

const path = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(path, "utf8"));
const present = new Set(Object.keys(lock.packages).map((k) => k.replace(/^.*node_modules\//, "")));
const dangling = [];
for (const [key, pkg] of Object.entries(lock.packages)) {
  for (const dep of Object.keys(pkg.optionalDependencies ?? {})) {
    if (present.has(dep)) continue;
    dangling.push(`${key || "(root)"} -> ${dep}`);
    delete pkg.optionalDependencies[dep];
  }
}
if (process.argv.includes("--check")) {
  if (dangling.length) {
    console.error(`package-lock.json names optional dependencies it has no entry for (npm ci will refuse it); run npm run lock:\n  ${dangling.join("\n  ")}`);
    process.exit(1);
  }
} else {
  writeFileSync(path, JSON.stringify(lock, null, 2) + "\n");
  console.log(dangling.length ? `dropped ${dangling.length} dangling optional dependencies` : "lock is fine");
}
