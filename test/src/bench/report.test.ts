import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

/** The benchmark report (bench/lib/report.ts) on canned scenario output: no benchmark runs here. */
type ReportModule = typeof import('../../../bench/lib/report.js');
const root = fileURLToPath(new URL('../../../../', import.meta.url));
const R = (await import(pathToFileURL(join(root, 'bench', 'dist', 'lib', 'report.js')).href)) as ReportModule;

const test = suite('bench report');

const template = { quick: false, rows: [{ resources: 10_000, parse_ms: 200, build_ms: 300, resolve_ms: 500 }], group: { members: 1_000_000, all_members_ms: 2000 } };
const runtime = { quick: true, kvPutsPerSec: 16_000, actorMsgsPerSec1: 8_000, actorMsgsPerSec2: 12_000, takeoverS: 2.4, leaseMs: 2000 };
const engine = {
  kvPutsPerSec: 20_000,
  rows: [
    { shape: 'wide1k', engines: 1, resources: 1000, createS: 0.5, updateS: 1, deleteS: 0.25, createPerS: 2000, ratio: 0.1, engineRssMiB: 100, serverRssMiB: 50 },
    { shape: 'group10k', engines: 2, resources: 10_000, createS: 2, updateS: 4, deleteS: 1, createPerS: 5000, ratio: 0.25, engineRssMiB: 200, serverRssMiB: 80 },
  ],
};
const peerJsonl = [
  '{"shape":"wide","n":1000,"parallelism":10,"run":"bench","step":"init","rc":0,"wall_s":1.0,"tf":"1.11.4"}',
  '{"shape":"wide","n":1000,"parallelism":10,"run":"bench","step":"create","rc":0,"wall_s":10.0,"tf":"1.11.4"}',
  '{"shape":"wide","n":1000,"parallelism":10,"run":"bench","step":"update","rc":0,"wall_s":20.0,"tf":"1.11.4"}',
  '{"shape":"wide","n":1000,"parallelism":10,"run":"bench","step":"destroy","rc":124,"wall_s":300.0,"tf":"1.11.4"}',
  '{"shape":"wide","n":1000,"parall',
].join('\n');

const input = (over: Partial<Parameters<ReportModule['buildReport']>[0]> = {}) => ({
  date: '2026-11-28',
  machine: { cpus: 2, memory_gb: 8, node: 'v20.0.0' },
  mode: 'default' as const,
  runs: [
    { scenario: 'engine', args: ['--only', 'wide1k'], ok: true, seconds: 60, result: engine },
    { scenario: 'runtime', args: ['--quick'], ok: true, seconds: 90, result: runtime },
    { scenario: 'template', args: [], ok: true, seconds: 30, result: template },
  ],
  terraform: { steps: R.parsePeerSteps(peerJsonl) },
  ...over,
});

const fig = (r: ReturnType<ReportModule['buildReport']>, scenario: string, name: string) => {
  const f = r.figures.find((x) => x.scenario === scenario && x.name === name);
  assert.ok(f, `no figure ${scenario}/${name} in ${r.figures.map((x) => `${x.scenario}/${x.name}`).join(', ')}`);
  return f!;
};

test('BENCH_JSON: the last such line of stdout wins; none or garbage is undefined', () => {
  assert.equal(R.benchJsonOf('noise\nBENCH_JSON {"a":1}\nmore\nBENCH_JSON {"a":2}\n'), { a: 2 });
  assert.is(R.benchJsonOf('no json here\n'), undefined);
  assert.is(R.benchJsonOf('BENCH_JSON {broken\n'), undefined);
});

test('peer lines: a partial last line is skipped', () => {
  assert.is(R.parsePeerSteps(peerJsonl).length, 4);
});

test('every throughput figure carries the KV baseline of its run and the ratio', () => {
  const r = R.buildReport(input());
  const one = fig(r, 'runtime', 'actor messages, 1 engine');
  assert.equal([one.value, one.baseline, one.ratio], [8000, 16_000, 0.5]);
  const take = fig(r, 'runtime', 'takeover after SIGKILL (median)');
  assert.equal([take.value, take.unit, take.baseline, take.ratio], [2.4, 's', 2, 1.2]);
  // The engine measured its own baseline (20K), used for its figures.
  const create = fig(r, 'engine', 'wide1k create, 1 engine');
  assert.equal([create.value, create.baseline, create.ratio], [2000, 20_000, 0.1]);
  assert.is(fig(r, 'engine', 'group10k delete, 2 engines').value, 10_000);
  // The template bench measures no KV rate: it borrows the first one of the run.
  const t = fig(r, 'template', 'parse+build+resolve 10000');
  assert.equal([t.value, t.baseline], [10_000, 20_000]);
  assert.is(fig(r, 'template', 'group members streamed 1000000').value, 500_000);
  assert.ok(r.figures.every((f) => f.unit !== 'resources/s' && f.unit !== 'msgs/s' || (f.baseline !== undefined && f.ratio !== undefined)));
});

test('terraform figures sit beside the same shape; failed steps are not used', () => {
  const r = R.buildReport(input());
  assert.equal(fig(r, 'engine', 'wide1k create, 1 engine').peer, { name: 'terraform', value: 100 });
  assert.equal(fig(r, 'engine', 'wide1k update, 1 engine').peer, { name: 'terraform', value: 50 });
  assert.is(fig(r, 'engine', 'wide1k delete, 1 engine').peer, undefined); // destroy timed out (rc 124)
  const md = R.renderMarkdown(r);
  assert.match(md, '| engine | wide1k create, 1 engine | 2,000 | resources/s | 20,000 KV puts/s | 0.10 | 100 (Kiln ×20.0) |');
  assert.match(md, 'Terraform peer 1.11.4');
  assert.match(md, '| wide | 1000 | 10 | destroy | timed out (> 300) | – |');
  assert.not.match(md, '| init |');
});

test('an absent peer and a failed scenario are stated, not hidden', () => {
  const r = R.buildReport(input({ terraform: { absent: 'terraform not on PATH', steps: [] }, runs: [{ scenario: 'runtime', args: ['--quick'], ok: false, seconds: 3 }] }));
  assert.equal(r.figures, []);
  assert.is(r.raw.runtime, null);
  const md = R.renderMarkdown(r);
  assert.match(md, 'Terraform peer: absent (terraform not on PATH).');
  assert.match(md, '| runtime | **failed** `--quick` | 3.00 |');
});

test('unknown scenarios: top-level numbers, per-second ones against the run baseline', () => {
  const r = R.buildReport(input({ runs: [...input().runs, { scenario: 'cloud', args: ['--quick'], ok: true, seconds: 5, result: { serversPerSec: 4000, p99_ms: 12, label: 'x' } }] }));
  const rate = fig(r, 'cloud', 'serversPerSec');
  assert.equal([rate.baseline, rate.ratio], [20_000, 0.2]);
  assert.is(fig(r, 'cloud', 'p99_ms').baseline, undefined);
  assert.not.ok(r.figures.some((f) => f.name === 'label'));
});

test('cloud, failover, overlap and fanout: each figure against its same-run baseline', () => {
  const run = (scenario: string, result: unknown) => ({ scenario, args: ['--quick'], ok: true, seconds: 60, load: [1.5, 2.25] as [number, number], result });
  const r = R.buildReport(
    input({
      runs: [
        run('cloud', { ready_s: 50, critical_path_s: 40, ratio: 1.25, api_calls_per_resource: 1.5, delete_s: 9, engine_peak_rss_mib: 160, detail: { servers: 200 } }),
        run('failover', { ready_s: 20, ready_kill_s: 30, extra_s: 10, ratio: 1.5, ready: 1, inventory_ok: 1, detail: { servers: 100, lease_ms: 10_000 } }),
        run('overlap', { kvPutsPerSec: 10_000, last_update_to_ready_s: 6, direct_create_s: 2, ratio: 3, equal: 1, api_p50_ms: 30, api_p99_ms: 300, api_idle_p50_ms: 10, api_idle_p99_ms: 100 }),
        run('fanout', { kvPutsPerSec: 8000, events_per_s: 40_000, per_client_per_s: 400, per_client_per_s_1: 800, lag_p50_ms: 50, lag_p99_ms: 500, lag_p50_ms_1: 10, lag_p99_ms_1: 100, complete: 1, detail: { clients: 100 } }),
      ],
    }),
  );
  const triple = (scenario: string, name: string) => {
    const f = fig(r, scenario, name);
    return [f.value, f.baseline, f.ratio];
  };
  assert.equal(triple('cloud', 'time to READY, 200 servers'), [50, 40, 1.25]);
  assert.is(fig(r, 'cloud', 'time to READY, 200 servers').baselineName, 'critical path s');
  assert.equal(triple('failover', 'time to READY, engine SIGKILL (100 servers)'), [30, 20, 1.5]);
  assert.equal(triple('failover', 'extra seconds to READY'), [10, 10, 1]);
  assert.equal(triple('overlap', 'last update to READY'), [6, 2, 3]);
  assert.equal(triple('overlap', 'API latency p50 under updates'), [30, 10, 3]);
  assert.equal(triple('overlap', 'API latency p99 under updates'), [300, 100, 3]);
  assert.equal(triple('fanout', 'events delivered/s, 100 clients'), [40_000, 8000, 5]);
  assert.equal(triple('fanout', 'events/s per client, 100 clients'), [400, 800, 0.5]);
  assert.equal(triple('fanout', 'lag p99, 100 clients'), [500, 100, 5]);
  // Baselines and ratios are not figures of their own; flags and counts stay as plain figures.
  const names = r.figures.map((f) => `${f.scenario}/${f.name}`);
  for (const gone of ['cloud/ratio', 'cloud/critical_path_s', 'failover/ready_s', 'failover/ratio', 'overlap/direct_create_s', 'overlap/api_idle_p50_ms', 'fanout/per_client_per_s_1', 'fanout/lag_p50_ms_1']) assert.not.ok(names.includes(gone), gone);
  for (const kept of ['cloud/api_calls_per_resource', 'failover/ready', 'failover/inventory_ok', 'overlap/equal', 'fanout/complete']) assert.ok(names.includes(kept), kept);
  // Units of plain figures come from their names' suffix.
  assert.equal(['delete_s', 'engine_peak_rss_mib', 'api_calls_per_resource'].map((n) => fig(r, 'cloud', n).unit), ['s', 'MiB', '']);
  assert.match(R.renderMarkdown(r), '| failover | ok `--quick` | 60.0 | 1.50 → 2.25 |');
});

test('a failover that never got READY reports that, with no time figure', () => {
  const r = R.buildReport(input({ runs: [{ scenario: 'failover', args: ['--quick'], ok: false, seconds: 200, result: { ready: 0, inventory_ok: 1, detail: { lease_ms: 10_000 } } }] }));
  assert.equal(r.figures.map((f) => [f.name, f.value]), [['ready', 0], ['inventory_ok', 1]]);
  assert.match(R.renderMarkdown(r), '| failover | **failed** `--quick` | 200 | – |');
});

test('charts: one SVG of bars per scenario, a line with fault markers per time series', () => {
  const series = { points: [{ t: 0, converged: 0 }, { t: 5, converged: 500 }, { t: 10, converged: 1000 }], faults: [{ t: 4, kind: 'SIGKILL engine-2' }], name: 'servers 10k' };
  const r = R.buildReport(input({ runs: [...input().runs, { scenario: 'failover', args: [], ok: true, seconds: 12, result: { series, extraSeconds: 3.5 } }] }));
  const charts = R.renderCharts(r);
  assert.equal([...charts.keys()].sort(), ['engine', 'failover', 'failover-servers-10k', 'runtime', 'template']);
  for (const svg of charts.values()) assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"[\s\S]*<\/svg>$/);
  const line = charts.get('failover-servers-10k')!;
  assert.match(line, 'SIGKILL engine-2');
  assert.match(line, 'stroke-dasharray');
  assert.match(line, /<path d="M70\.0,310\.0 L[\d.]+,[\d.]+ L880\.0,40\.0"/);
  // Bars: Kiln, baseline and terraform for the engine's wide1k create.
  assert.match(charts.get('engine')!, '100 terraform');
  assert.match(R.renderMarkdown(r), '[failover-servers-10k](2026-11-28-failover-servers-10k.svg)');
  // Text is escaped.
  const esc = R.renderCharts(R.buildReport(input({ runs: [{ scenario: 'x<y', args: [], ok: true, seconds: 1, result: { 'a&b': 1 } }] })));
  assert.match(esc.get('x<y')!, 'x&lt;y');
  assert.match(esc.get('x<y')!, 'a&amp;b');
});

test('several series of one scenario are also drawn together, each in its colour with its faults', () => {
  const base = { name: 'no fault', points: [{ t: 0, converged: 0 }, { t: 10, converged: 500 }], faults: [] };
  const killed = { name: 'engine killed', points: [{ t: 0, converged: 0 }, { t: 20, converged: 500 }], faults: [{ t: 3, kind: 'SIGKILL engine' }] };
  const r = R.buildReport(input({ runs: [{ scenario: 'failover', args: [], ok: true, seconds: 40, result: { ready_s: 10, ready_kill_s: 20, series: [base, killed] } }] }));
  const charts = R.renderCharts(r);
  assert.equal([...charts.keys()].sort(), ['failover', 'failover-compared', 'failover-engine-killed', 'failover-no-fault']);
  const both = charts.get('failover-compared')!;
  assert.is(both.match(/<path /g)?.length, 2);
  assert.match(both, '>no fault</text>');
  assert.match(both, '>engine killed</text>');
  // The kill marker is in the killed run's colour, at t = 3 of a 20 s axis.
  assert.match(both, /<line x1="(\d+\.\d)" y1="\d+" x2="\1" y2="310" stroke="#4263eb" stroke-dasharray="4 3"\/>/);
  assert.match(R.renderMarkdown(r), '[failover-compared](2026-11-28-failover-compared.svg)');
  // One series alone: no legend, the marker in red.
  assert.match(charts.get('failover-engine-killed')!, 'stroke="#c92a2a" stroke-dasharray');
});

test.run();
