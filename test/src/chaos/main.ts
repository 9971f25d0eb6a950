/**
 * `npm run chaos -- [--seed S] [--scenarios N] [--steps K] [--stacks M] [--json FILE]`: N randomized
 * scenarios (scenario i uses seed S+i, printed with any violation so that
 * `--seed <that> --scenarios 1` replays it), then a table of faults, re-convergence times and
 * violations. Exits 1 on any violation.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { summarize, table } from './report.js';
import { FAULT_KINDS, runScenario, type FaultKind, type ScenarioResult } from './scenario.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    scenarios: { type: 'string', default: '5' },
    steps: { type: 'string', default: '5' },
    stacks: { type: 'string', default: '3' },
    faults: { type: 'string' },
    'no-overlap': { type: 'boolean' },
    'settle-ms': { type: 'string', default: '120000' },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write(
    'usage: npm run chaos -- [--seed S] [--scenarios N] [--steps K] [--stacks M] [--faults k1,k2,...] [--no-overlap] [--settle-ms MS] [--json FILE]\n' +
      `  faults (one per step, in order; default drawn from the seed): ${FAULT_KINDS.join(', ')}, none\n` +
      '  --no-overlap: at most one write per stack per step\n',
  );
  process.exit(0);
}
const int = (name: string, v: string | undefined): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    process.stderr.write(`--${name} takes a whole number, got ${v}\n`);
    process.exit(2);
  }
  return n;
};
const seed = values.seed === undefined ? Date.now() % 1_000_000 : int('seed', values.seed);
const faults = values.faults?.split(',').map((k) => {
  if (k !== 'none' && !(FAULT_KINDS as readonly string[]).includes(k)) {
    process.stderr.write(`unknown fault ${k} (known: ${FAULT_KINDS.join(', ')})\n`);
    process.exit(2);
  }
  return k as FaultKind;
});
const scenarios = int('scenarios', values.scenarios);
const started = Date.now();
const results: ScenarioResult[] = [];
const say = (line: string) => process.stdout.write(`${line}\n`);

say(`chaos: seed ${seed}, ${scenarios} scenarios`);
for (let i = 0; i < scenarios; i++) {
  const s = seed + i;
  say(`scenario seed ${s}`);
  const r = await runScenario({
    seed: s,
    steps: int('steps', values.steps),
    stacks: int('stacks', values.stacks),
    ...(faults ? { faults } : {}),
    overlap: !values['no-overlap'],
    settleMs: int('settle-ms', values['settle-ms']),
    log: (line) => say(`  [${((Date.now() - started) / 1000).toFixed(1)} s] ${line}`),
  }).catch((e: unknown): ScenarioResult => ({ seed: s, faults: [], writes: 0, violations: [`the test bed failed: ${e instanceof Error ? e.message : String(e)}`], wallMs: 0 }));
  results.push(r);
  say(`scenario seed ${s}: ${r.faults.length} faults, ${r.writes} writes, ${r.violations.length} violations, ${(r.wallMs / 1000).toFixed(1)} s`);
  for (const v of r.violations) say(`  VIOLATION (replay: --seed ${s} --scenarios 1): ${v}`);
}
const sum = summarize(seed, results, Date.now() - started);
say(table(sum));
if (values.json) {
  mkdirSync(dirname(values.json), { recursive: true });
  writeFileSync(values.json, JSON.stringify(sum, null, 2) + '\n');
  say(`wrote ${values.json}`);
}
process.exit(sum.violations.length === 0 ? 0 : 1);
