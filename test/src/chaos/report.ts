import type { ScenarioResult } from './scenario.js';

/** The p-th percentile (0–100), nearest rank; NaN when empty. */
function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export interface ChaosSummary {
  seed: number;
  scenarios: number;
  writes: number;
  faults: Record<string, { count: number; notConverged: number; reconvergeMedianMs: number; reconvergeP99Ms: number; afterHealMedianMs: number; afterHealP99Ms: number }>;
  faultsTotal: number;
  /** Faults after which the stacks did not converge within the bound (a violation each). */
  notConverged: number;
  reconvergeMedianMs: number;
  reconvergeP99Ms: number;
  afterHealMedianMs: number;
  afterHealP99Ms: number;
  violations: Array<{ seed: number; violation: string }>;
  wallMs: number;
  scenarioResults: ScenarioResult[];
}

export function summarize(seed: number, results: ScenarioResult[], wallMs: number): ChaosSummary {
  const injected = results.flatMap((r) => r.faults);
  const all = injected.filter((f) => f.converged);
  const faults: ChaosSummary['faults'] = {};
  for (const kind of [...new Set(injected.map((f) => f.kind))].sort()) {
    const ofKind = injected.filter((f) => f.kind === kind);
    const of = ofKind.filter((f) => f.converged);
    faults[kind] = {
      count: ofKind.length,
      notConverged: ofKind.length - of.length,
      reconvergeMedianMs: percentile(of.map((f) => f.reconvergeMs), 50),
      reconvergeP99Ms: percentile(of.map((f) => f.reconvergeMs), 99),
      afterHealMedianMs: percentile(of.map((f) => f.afterHealMs), 50),
      afterHealP99Ms: percentile(of.map((f) => f.afterHealMs), 99),
    };
  }
  return {
    seed,
    scenarios: results.length,
    writes: results.reduce((n, r) => n + r.writes, 0),
    faults,
    faultsTotal: injected.length,
    notConverged: injected.length - all.length,
    reconvergeMedianMs: percentile(all.map((f) => f.reconvergeMs), 50),
    reconvergeP99Ms: percentile(all.map((f) => f.reconvergeMs), 99),
    afterHealMedianMs: percentile(all.map((f) => f.afterHealMs), 50),
    afterHealP99Ms: percentile(all.map((f) => f.afterHealMs), 99),
    violations: results.flatMap((r) => r.violations.map((violation) => ({ seed: r.seed, violation }))),
    wallMs,
    scenarioResults: results,
  };
}

const s = (ms: number) => (Number.isNaN(ms) ? '-' : (ms / 1000).toFixed(1));

/** The summary as a plain-text table. */
export function table(sum: ChaosSummary): string {
  const rows: string[][] = [['fault', 'injected', 'not converged', 're-converge median s', 'p99 s', 'after heal median s', 'p99 s']];
  for (const [kind, f] of Object.entries(sum.faults)) rows.push([kind, String(f.count), String(f.notConverged), s(f.reconvergeMedianMs), s(f.reconvergeP99Ms), s(f.afterHealMedianMs), s(f.afterHealP99Ms)]);
  rows.push(['all', String(sum.faultsTotal), String(sum.notConverged), s(sum.reconvergeMedianMs), s(sum.reconvergeP99Ms), s(sum.afterHealMedianMs), s(sum.afterHealP99Ms)]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [
    `chaos: seed ${sum.seed}, ${sum.scenarios} scenarios, ${sum.writes} acknowledged writes, ${sum.faultsTotal} faults, ${sum.violations.length} violations, ${s(sum.wallMs)} s`,
    line(rows[0]!),
    ...rows.slice(1).map(line),
    ...sum.violations.map((v) => `VIOLATION (replay: --seed ${v.seed} --scenarios 1): ${v.violation}`),
  ].join('\n');
}
