#!/usr/bin/env node
// `npm run bench -- <scenario> [args]` runs bench/dist/<scenario>.js (compiled from bench/<scenario>.ts);
// with no scenario it runs every scenario in turn with the given args.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const dist = fileURLToPath(new URL('./dist/', import.meta.url));
const scenarios = existsSync(dist)
  ? readdirSync(dist).filter((f) => f.endsWith('.js') && f !== 'common.js').map((f) => f.slice(0, -3)).sort()
  : [];
if (scenarios.length === 0) {
  console.error('no compiled benchmarks: run `npm run build` first');
  process.exit(1);
}
const [first, ...rest] = process.argv.slice(2);
const chosen = first && !first.startsWith('-') ? [first] : scenarios;
const args = first && !first.startsWith('-') ? rest : process.argv.slice(2);
let failed = 0;
for (const name of chosen) {
  if (!scenarios.includes(name)) {
    console.error(`unknown benchmark '${name}'; known: ${scenarios.join(', ')}`);
    process.exit(2);
  }
  const r = spawnSync(process.execPath, [join(dist, `${name}.js`), ...args], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
