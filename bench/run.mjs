#!/usr/bin/env node
// `npm run bench` runs every scenario of bench/ (bench/dist/<scenario>.js, compiled from
// bench/<scenario>.ts) at a size that fits in about 30 minutes on a 2-core machine, then the
// Terraform peer on the same shapes when `terraform` is on PATH, and writes the report:
// bench/results/<date>.json, <date>.md and <date>-<chart>.svg (see docs/bench.md).
//   npm run bench -- --full            the big runs (1,000,000-member groups, 1M actors)
//   npm run bench -- --only a,b        only these scenarios;  --no-peers  skip Terraform
//   npm run bench -- --results DIR     write the report there instead of bench/results
//   npm run bench -- <scenario> [args] one scenario, args passed through, no report
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'bench', 'dist');
const scenarios = existsSync(dist)
  ? readdirSync(dist).filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -3)).sort()
  : [];
if (scenarios.length === 0) {
  console.error('no compiled benchmarks: run `npm run build` first');
  process.exit(1);
}

const argv = process.argv.slice(2);
const [first, ...rest] = argv;
if (first && !first.startsWith('-')) {
  if (!scenarios.includes(first)) {
    console.error(`unknown benchmark '${first}'; known: ${scenarios.join(', ')}`);
    process.exit(2);
  }
  const r = spawnSync(process.execPath, [join(dist, `${first}.js`), ...rest], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const full = argv.includes('--full');
const noPeers = argv.includes('--no-peers');
const onlyArg = argv.includes('--only') ? argv[argv.indexOf('--only') + 1] : undefined;
const only = onlyArg ? onlyArg.split(',') : undefined;

// What "fits in 30 minutes" means per scenario; --full runs each at its full size. A scenario
// not listed here gets --quick by default (every bench of bench/ understands it).
const DEFAULT_ARGS = {
  template: [],
  runtime: ['--quick'],
  engine: ['--only', 'wide1k,wide10k,chain1k,group10k,group100k'],
};
const argsFor = (s) => (full ? [] : (DEFAULT_ARGS[s] ?? ['--quick']));

// Terraform on the engine's shapes: [shape, N, parallelism]. Terraform takes ~3 min for the four
// steps of 1,000 terraform_data resources here, so 10K and more only run with --full.
const PEER_RUNS = full
  ? [['wide', 1000, 10], ['chain', 1000, 10], ['wide', 10000, 10], ['group', 10000, 10], ['group', 100000, 10]]
  : [['wide', 1000, 10], ['chain', 1000, 10]];

const date = new Date().toISOString().slice(0, 10);
const resultsDir = argv.includes('--results') ? argv[argv.indexOf('--results') + 1] : join(root, 'bench', 'results');
mkdirSync(resultsDir, { recursive: true });

/** Runs a command, echoing its output, and returns its stdout and exit status. */
function run(cmd, args, env = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      process.stdout.write(d);
    });
    child.on('close', (code) => resolve({ code, out }));
  });
}

const { benchJsonOf, buildReport, parsePeerSteps, renderCharts, renderMarkdown } = await import(pathToFileURL(join(dist, 'lib', 'report.js')).href);

const runs = [];
for (const scenario of scenarios.filter((s) => !only || only.includes(s))) {
  const jsonFile = join(resultsDir, `${date}-${scenario}.tmp`);
  rmSync(jsonFile, { force: true });
  const args = argsFor(scenario);
  console.log(`\n== ${scenario} ${args.join(' ')}`);
  const t0 = performance.now();
  const loadStart = loadavg()[0];
  const { code, out } = await run(process.execPath, [join(dist, `${scenario}.js`), ...args, '--json', jsonFile]);
  let result = benchJsonOf(out);
  if (result === undefined && existsSync(jsonFile)) result = JSON.parse(readFileSync(jsonFile, 'utf8'));
  rmSync(jsonFile, { force: true });
  runs.push({ scenario, args, ok: code === 0, seconds: (performance.now() - t0) / 1000, load: [loadStart, loadavg()[0]], result });
}

const peerDir = join(root, '..', 'shared', 'peers', 'terraform');
const terraform = { steps: [] };
if (noPeers) terraform.absent = 'skipped (--no-peers)';
else if (spawnSync('terraform', ['version'], { stdio: 'ignore' }).status !== 0) terraform.absent = 'terraform not on PATH';
else if (!existsSync(join(peerDir, 'run.sh'))) terraform.absent = `no peer scripts at ${peerDir}`;
else {
  const jsonl = join(resultsDir, `${date}-terraform.tmp`);
  rmSync(jsonl, { force: true });
  for (const [shape, n, par] of PEER_RUNS) {
    console.log(`\n== terraform ${shape} ${n} -parallelism=${par}`);
    await run('bash', [join(peerDir, 'run.sh'), shape, String(n), String(par), 'bench', jsonl], { STEP_LIMIT_S: full ? '900' : '300' });
  }
  terraform.steps = existsSync(jsonl) ? parsePeerSteps(readFileSync(jsonl, 'utf8')) : [];
  rmSync(jsonl, { force: true });
}

const report = buildReport({
  date,
  machine: { cpus: cpus().length, memory_gb: Math.round(totalmem() / 2 ** 30), node: process.version },
  mode: full ? 'full' : 'default',
  runs,
  terraform,
});
writeFileSync(join(resultsDir, `${date}.json`), `${JSON.stringify(report, null, 2)}\n`);
writeFileSync(join(resultsDir, `${date}.md`), renderMarkdown(report));
for (const [name, svg] of renderCharts(report)) writeFileSync(join(resultsDir, `${date}-${name}.svg`), `${svg}\n`);
console.log(`\nreport: ${join(resultsDir, `${date}.md`)} (${report.figures.length} figures)`);
process.exit(runs.every((r) => r.ok) ? 0 : 1);
