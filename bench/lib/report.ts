/**
 * The benchmark report: turns what each scenario of `bench/` produced (its `--json` file or a
 * final `BENCH_JSON {...}` line on stdout) and the peers' timings into figures, each with its
 * baseline from the same run and the ratio, then renders them as JSON, a markdown table and one
 * SVG chart per scenario. Pure functions of their input, so `bench/run.mjs` does the IO and the
 * unit test feeds canned output.
 */

/** One scenario's run, as `bench/run.mjs` saw it. */
export interface ScenarioRun {
  scenario: string;
  args: string[];
  ok: boolean;
  seconds: number;
  /** 1-minute load average at the scenario's start and end (the machine is shared). */
  load?: [number, number];
  /** The scenario's own JSON result (undefined when it failed before writing one). */
  result?: unknown;
}

/** One step of a Terraform peer run (a line of the peers' results.jsonl). */
export interface PeerStep {
  shape: string;
  n: number;
  parallelism: number;
  step: string;
  rc: number | null;
  wall_s?: number;
  maxrss_kb?: number | null;
  skipped?: boolean;
  tf?: string;
}

export interface PeerStatus {
  /** Why the peer did not run (e.g. `terraform not on PATH`); absent when it ran. */
  absent?: string;
  steps: PeerStep[];
}

/**
 * A measured figure. `baseline` is the raw KV put rate (puts/s) for throughputs, or another
 * stated bound (e.g. the lease for a takeover time); `ratio` = value / baseline.
 */
export interface Figure {
  scenario: string;
  name: string;
  value: number;
  unit: string;
  baseline?: number;
  baselineName?: string;
  ratio?: number;
  /** The same shape of work done by a peer (e.g. Terraform), in the same unit. */
  peer?: { name: string; value: number };
}

/** Resources converged over time, when a scenario reports it (`series` + optional `faults`). */
export interface Series {
  scenario: string;
  name: string;
  points: Array<{ t: number; converged: number }>;
  faults: Array<{ t: number; kind: string }>;
}

export interface Report {
  date: string;
  machine: { cpus: number; memory_gb: number; node: string };
  mode: 'default' | 'full';
  runs: Array<Omit<ScenarioRun, 'result'>>;
  figures: Figure[];
  series: Series[];
  peers: { terraform: PeerStatus };
  raw: Record<string, unknown>;
}

const BENCH_JSON = 'BENCH_JSON ';

/** The last `BENCH_JSON {...}` line of a scenario's stdout, if any. */
export function benchJsonOf(stdout: string): unknown {
  const line = stdout
    .split('\n')
    .reverse()
    .find((l) => l.startsWith(BENCH_JSON));
  if (!line) return undefined;
  try {
    return JSON.parse(line.slice(BENCH_JSON.length));
  } catch {
    return undefined;
  }
}

/** The steps of a peers' results.jsonl (unparseable lines ignored). */
export function parsePeerSteps(jsonl: string): PeerStep[] {
  const out: PeerStep[] = [];
  for (const l of jsonl.split('\n')) {
    if (!l.trim()) continue;
    try {
      out.push(JSON.parse(l) as PeerStep);
    } catch {
      // a step killed mid-write leaves a partial line
    }
  }
  return out;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

function withBaseline(f: Omit<Figure, 'ratio'>): Figure {
  return f.baseline !== undefined && f.baseline > 0 ? { ...f, ratio: f.value / f.baseline } : f;
}

/** Kiln's engine shapes and the Terraform shape of the same work. */
const PEER_SHAPE: Record<string, { shape: string; n: number }> = {
  wide1k: { shape: 'wide', n: 1000 },
  wide10k: { shape: 'wide', n: 10_000 },
  chain1k: { shape: 'chain', n: 1000 },
  group10k: { shape: 'group', n: 10_000 },
  group100k: { shape: 'group', n: 100_000 },
  group1m: { shape: 'group', n: 1_000_000 },
};
const PEER_STEP: Record<string, string> = { create: 'create', update: 'update', delete: 'destroy' };

/** Resources/s of a Terraform step (best over parallelism settings), if it ran to completion. */
function peerRate(peers: PeerStatus, shape: string, n: number, step: string): number | undefined {
  let best: number | undefined;
  for (const s of peers.steps) {
    if (s.shape !== shape || s.n !== n || s.step !== step || s.rc !== 0 || !s.wall_s) continue;
    const rate = n / s.wall_s;
    if (best === undefined || rate > best) best = rate;
  }
  return best;
}

/** The KV put rate measured by any scenario of the run (for scenarios that measure none). */
function runBaseline(runs: ScenarioRun[]): number | undefined {
  for (const r of runs) {
    const kv = isObj(r.result) ? num(r.result.kvPutsPerSec) : undefined;
    if (kv) return kv;
  }
  return undefined;
}

function templateFigures(res: Obj, kv: number | undefined): Figure[] {
  const out: Figure[] = [];
  const base = { scenario: 'template', unit: 'resources/s', ...(kv ? { baseline: kv, baselineName: 'KV puts/s' } : {}) };
  for (const row of Array.isArray(res.rows) ? res.rows : []) {
    if (!isObj(row)) continue;
    const n = num(row.resources);
    const ms = (num(row.parse_ms) ?? 0) + (num(row.build_ms) ?? 0) + (num(row.resolve_ms) ?? 0);
    if (n && ms > 0) out.push(withBaseline({ ...base, name: `parse+build+resolve ${n}`, value: n / (ms / 1000) }));
  }
  if (isObj(res.group)) {
    const members = num(res.group.members);
    const ms = num(res.group.all_members_ms);
    if (members && ms) out.push(withBaseline({ ...base, name: `group members streamed ${members}`, value: members / (ms / 1000) }));
  }
  return out;
}

function runtimeFigures(res: Obj): Figure[] {
  const kv = num(res.kvPutsPerSec);
  const base = { scenario: 'runtime', unit: 'msgs/s', ...(kv ? { baseline: kv, baselineName: 'KV puts/s' } : {}) };
  const out: Figure[] = [];
  const one = num(res.actorMsgsPerSec1);
  const two = num(res.actorMsgsPerSec2);
  if (one) out.push(withBaseline({ ...base, name: 'actor messages, 1 engine', value: one }));
  if (two) out.push(withBaseline({ ...base, name: 'actor messages, 2 engines', value: two }));
  const take = num(res.takeoverS);
  const lease = num(res.leaseMs);
  if (take !== undefined) out.push(withBaseline({ scenario: 'runtime', name: 'takeover after SIGKILL (median)', value: take, unit: 's', ...(lease ? { baseline: lease / 1000, baselineName: 'lease s' } : {}) }));
  const rss = num(res.rssMbAfterMillion);
  if (rss !== undefined) out.push({ scenario: 'runtime', name: 'engine RSS after 1M actors', value: rss, unit: 'MB' });
  return out;
}

function engineFigures(res: Obj, peers: PeerStatus): Figure[] {
  const kv = num(res.kvPutsPerSec);
  const out: Figure[] = [];
  for (const row of Array.isArray(res.rows) ? res.rows : []) {
    if (!isObj(row)) continue;
    const n = num(row.resources);
    const shape = String(row.shape);
    if (!n) continue;
    for (const [step, key] of [['create', 'createS'], ['update', 'updateS'], ['delete', 'deleteS']] as const) {
      const s = num(row[key]);
      if (!s) continue;
      const peerShape = PEER_SHAPE[shape];
      const peer = peerShape ? peerRate(peers, peerShape.shape, peerShape.n, PEER_STEP[step]!) : undefined;
      out.push(
        withBaseline({
          scenario: 'engine',
          name: `${shape} ${step}, ${String(row.engines)} engine${row.engines === 1 ? '' : 's'}`,
          value: n / s,
          unit: 'resources/s',
          ...(kv ? { baseline: kv, baselineName: 'KV puts/s' } : {}),
          ...(peer !== undefined ? { peer: { name: 'terraform', value: peer } } : {}),
        }),
      );
    }
  }
  return out;
}

/** The unit a figure's name ends with (`delete_s`, `p99_ms`, `peak_rss_mib`), else none. */
function unitOf(name: string): string {
  const m = /_(s|ms|mib|mb)$/i.exec(name);
  return m ? ({ s: 's', ms: 'ms', mib: 'MiB', mb: 'MB' } as Record<string, string>)[m[1]!.toLowerCase()]! : '';
}

/** Any other scenario: its top-level numbers, with the run's KV rate for those named per second. */
function genericFigures(scenario: string, res: Obj, kv: number | undefined, skip: ReadonlySet<string> = new Set()): Figure[] {
  const out: Figure[] = [];
  const ownKv = num(res.kvPutsPerSec) ?? kv;
  for (const [k, v] of Object.entries(res)) {
    const value = num(v);
    if (value === undefined || k === 'kvPutsPerSec' || skip.has(k)) continue;
    const rate = /PerSec|per_s|PerS$/i.test(k);
    out.push(withBaseline({ scenario, name: k, value, unit: rate ? '/s' : unitOf(k), ...(rate && ownKv ? { baseline: ownKv, baselineName: 'KV puts/s' } : {}) }));
  }
  return out;
}

/** A figure against another number of the same result (e.g. time with a fault vs without). */
function against(scenario: string, res: Obj, key: string, name: string, unit: string, baseKey: string | number | undefined, baselineName: string): Figure[] {
  const value = num(res[key]);
  if (value === undefined) return [];
  const baseline = typeof baseKey === 'number' ? baseKey : baseKey !== undefined ? num(res[baseKey]) : undefined;
  return [withBaseline({ scenario, name, value, unit, ...(baseline !== undefined ? { baseline, baselineName } : {}) })];
}

/** bench/cloud.ts: time to READY against the critical path the cloud's latency implies. */
function cloudFigures(res: Obj, kv: number | undefined): Figure[] {
  const servers = isObj(res.detail) ? num(res.detail.servers) : undefined;
  return [
    ...against('cloud', res, 'ready_s', `time to READY${servers ? `, ${servers} servers` : ''}`, 's', 'critical_path_s', 'critical path s'),
    ...genericFigures('cloud', res, kv, new Set(['ready_s', 'critical_path_s', 'ratio'])),
  ];
}

/** bench/failover.ts: time to READY with an engine killed against the same stack without. */
function failoverFigures(res: Obj, kv: number | undefined): Figure[] {
  const d = isObj(res.detail) ? res.detail : {};
  const lease = num(d.lease_ms);
  return [
    ...against('failover', res, 'ready_kill_s', `time to READY, engine SIGKILL${num(d.servers) ? ` (${num(d.servers)} servers)` : ''}`, 's', 'ready_s', 'no-fault READY s'),
    ...against('failover', res, 'extra_s', 'extra seconds to READY', 's', lease !== undefined ? lease / 1000 : undefined, 'lease s'),
    ...genericFigures('failover', res, kv, new Set(['ready_kill_s', 'ready_s', 'extra_s', 'ratio'])),
  ];
}

/** bench/overlap.ts: last update to READY against a direct create; API latency under load against idle. */
function overlapFigures(res: Obj, kv: number | undefined): Figure[] {
  return [
    ...against('overlap', res, 'last_update_to_ready_s', 'last update to READY', 's', 'direct_create_s', 'direct create s'),
    ...against('overlap', res, 'api_p50_ms', 'API latency p50 under updates', 'ms', 'api_idle_p50_ms', 'idle p50 ms'),
    ...against('overlap', res, 'api_p99_ms', 'API latency p99 under updates', 'ms', 'api_idle_p99_ms', 'idle p99 ms'),
    ...genericFigures('overlap', res, kv, new Set(['last_update_to_ready_s', 'direct_create_s', 'ratio', 'api_p50_ms', 'api_p99_ms', 'api_idle_p50_ms', 'api_idle_p99_ms'])),
  ];
}

/** bench/fanout.ts: delivered events/s against the KV rate; per-client figures against one client alone. */
function fanoutFigures(res: Obj, kv: number | undefined): Figure[] {
  const clients = isObj(res.detail) ? num(res.detail.clients) : undefined;
  const c = clients !== undefined ? `${clients} clients` : 'all clients';
  return [
    ...against('fanout', res, 'events_per_s', `events delivered/s, ${c}`, 'events/s', num(res.kvPutsPerSec) ?? kv, 'KV puts/s'),
    ...against('fanout', res, 'per_client_per_s', `events/s per client, ${c}`, 'events/s', 'per_client_per_s_1', '1 client /s'),
    ...against('fanout', res, 'lag_p50_ms', `lag p50, ${c}`, 'ms', 'lag_p50_ms_1', '1 client ms'),
    ...against('fanout', res, 'lag_p99_ms', `lag p99, ${c}`, 'ms', 'lag_p99_ms_1', '1 client ms'),
    ...genericFigures('fanout', res, kv, new Set(['events_per_s', 'per_client_per_s', 'per_client_per_s_1', 'lag_p50_ms', 'lag_p99_ms', 'lag_p50_ms_1', 'lag_p99_ms_1'])),
  ];
}

const ADAPTERS: Record<string, (res: Obj, kv: number | undefined) => Figure[]> = {
  cloud: cloudFigures,
  failover: failoverFigures,
  overlap: overlapFigures,
  fanout: fanoutFigures,
};

function seriesOf(scenario: string, res: Obj): Series[] {
  const list = Array.isArray(res.series) ? res.series : res.series !== undefined ? [res.series] : [];
  const out: Series[] = [];
  for (const s of list) {
    if (!isObj(s) || !Array.isArray(s.points)) continue;
    const points = s.points.filter(isObj).map((p) => ({ t: num(p.t) ?? 0, converged: num(p.converged) ?? 0 }));
    const faults = (Array.isArray(s.faults) ? s.faults : []).filter(isObj).map((f) => ({ t: num(f.t) ?? 0, kind: String(f.kind ?? 'fault') }));
    out.push({ scenario, name: typeof s.name === 'string' ? s.name : scenario, points, faults });
  }
  return out;
}

export function buildReport(input: { date: string; machine: Report['machine']; mode: Report['mode']; runs: ScenarioRun[]; terraform: PeerStatus }): Report {
  const kv = runBaseline(input.runs);
  const figures: Figure[] = [];
  const series: Series[] = [];
  const raw: Record<string, unknown> = {};
  for (const r of input.runs) {
    raw[r.scenario] = r.result ?? null;
    if (!isObj(r.result)) continue;
    if (r.scenario === 'template') figures.push(...templateFigures(r.result, kv));
    else if (r.scenario === 'runtime') figures.push(...runtimeFigures(r.result));
    else if (r.scenario === 'engine') figures.push(...engineFigures(r.result, input.terraform));
    else figures.push(...(ADAPTERS[r.scenario] ?? ((res, k) => genericFigures(r.scenario, res, k)))(r.result, kv));
    series.push(...seriesOf(r.scenario, r.result));
  }
  return {
    date: input.date,
    machine: input.machine,
    mode: input.mode,
    runs: input.runs.map(({ result: _result, ...run }) => run),
    figures,
    series,
    peers: { terraform: input.terraform },
    raw,
  };
}

/** Three significant digits, thousands grouped. */
export function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString('en-US');
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(2);
}

export function renderMarkdown(r: Report): string {
  const lines = [
    `# Kiln benchmark report ${r.date}`,
    '',
    `Machine: ${r.machine.cpus} CPUs, ${r.machine.memory_gb} GB, Node ${r.machine.node}; mode: ${r.mode} (\`npm run bench${r.mode === 'full' ? ' -- --full' : ''}\`).`,
    'Baselines come from the same run: raw JetStream KV puts/s (500 in flight) for throughputs, the lease for takeover times, the latency-implied critical path for cloud runs, the fault-free run for runs with a fault, idle or single-client figures for figures under load. Ratio = figure / baseline.',
    '',
    '| scenario | run | seconds | load (1-min, start → end) |',
    '| --- | --- | ---: | --- |',
    ...r.runs.map((x) => `| ${x.scenario} | ${x.ok ? 'ok' : '**failed**'} ${x.args.length ? `\`${x.args.join(' ')}\`` : '(full size)'} | ${fmt(x.seconds)} | ${x.load ? `${fmt(x.load[0])} → ${fmt(x.load[1])}` : '–'} |`),
    '',
    '| scenario | figure | value | unit | baseline | ratio | terraform |',
    '| --- | --- | ---: | --- | ---: | ---: | ---: |',
  ];
  const tf = r.peers.terraform;
  for (const f of r.figures) {
    const peer = f.peer ? `${fmt(f.peer.value)} (Kiln ×${fmt(f.value / f.peer.value)})` : tf.absent && f.scenario === 'engine' ? 'absent' : '–';
    lines.push(
      `| ${f.scenario} | ${f.name} | ${fmt(f.value)} | ${f.unit} | ${f.baseline !== undefined ? `${fmt(f.baseline)} ${f.baselineName ?? ''}` : '–'} | ${f.ratio !== undefined ? fmt(f.ratio) : '–'} | ${peer} |`,
    );
  }
  lines.push('');
  if (tf.absent) lines.push(`Terraform peer: absent (${tf.absent}).`);
  else {
    const version = tf.steps.find((s) => s.tf)?.tf;
    lines.push(`Terraform peer${version ? ` ${version}` : ''} (terraform_data, /work/shared/peers/terraform/run.sh), wall seconds per step:`, '', '| shape | N | parallelism | step | seconds | resources/s |', '| --- | ---: | ---: | --- | ---: | ---: |');
    for (const s of tf.steps.filter((x) => x.step !== 'init')) {
      const wall = s.rc === 0 && s.wall_s ? s.wall_s : undefined;
      lines.push(`| ${s.shape} | ${s.n} | ${s.parallelism} | ${s.step} | ${wall !== undefined ? fmt(wall) : s.skipped ? 'skipped' : (s.rc === 124 || s.rc === 137) && s.wall_s ? `timed out (> ${fmt(s.wall_s)})` : `rc ${s.rc}`} | ${wall !== undefined ? fmt(s.n / wall) : '–'} |`);
    }
  }
  lines.push('', 'Charts: ' + chartNames(r).map((n) => `[${n}](${r.date}-${n}.svg)`).join(', '), '');
  return lines.join('\n');
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Horizontal bars per figure (log-free, each row scaled to its own max with the baseline beside it). */
function barChart(title: string, figures: Figure[]): string {
  const rowH = 38;
  const left = 300;
  const width = 900;
  const barW = width - left - 160;
  const height = 50 + figures.length * rowH + 30;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="22" font-size="16" font-weight="bold">${esc(title)}</text>`,
    `<rect x="${left}" y="32" width="10" height="10" fill="#d9480f"/><text x="${left + 14}" y="41">Kiln</text>`,
    `<rect x="${left + 60}" y="32" width="10" height="10" fill="#adb5bd"/><text x="${left + 74}" y="41">baseline</text>`,
    `<rect x="${left + 150}" y="32" width="10" height="10" fill="#4263eb"/><text x="${left + 164}" y="41">terraform</text>`,
  ];
  figures.forEach((f, i) => {
    const y = 52 + i * rowH;
    const max = Math.max(f.value, f.baseline ?? 0, f.peer?.value ?? 0) || 1;
    const w = (v: number) => Math.max(1, (v / max) * barW);
    parts.push(`<text x="${left - 8}" y="${y + 14}" text-anchor="end">${esc(f.name)}</text>`);
    parts.push(`<rect x="${left}" y="${y}" width="${w(f.value).toFixed(1)}" height="11" fill="#d9480f"/>`);
    parts.push(`<text x="${left + w(f.value) + 4}" y="${y + 10}">${esc(`${fmt(f.value)} ${f.unit}${f.ratio !== undefined ? ` (×${fmt(f.ratio)})` : ''}`)}</text>`);
    if (f.baseline !== undefined) {
      parts.push(`<rect x="${left}" y="${y + 12}" width="${w(f.baseline).toFixed(1)}" height="7" fill="#adb5bd"/>`);
      parts.push(`<text x="${left + w(f.baseline) + 4}" y="${y + 19}" font-size="10" fill="#666">${esc(`${fmt(f.baseline)} ${f.baselineName ?? ''}`)}</text>`);
    }
    if (f.peer) {
      parts.push(`<rect x="${left}" y="${y + 20}" width="${w(f.peer.value).toFixed(1)}" height="7" fill="#4263eb"/>`);
      parts.push(`<text x="${left + w(f.peer.value) + 4}" y="${y + 27}" font-size="10" fill="#4263eb">${esc(`${fmt(f.peer.value)} ${f.peer.name}`)}</text>`);
    }
  });
  parts.push('</svg>');
  return parts.join('\n');
}

const LINE_COLOURS = ['#d9480f', '#4263eb', '#2b8a3e', '#862e9c', '#e67700'];

/**
 * Resources converged over time, one line per series on shared axes (a legend when there are
 * several), with a dashed vertical marker per fault in its series' colour.
 */
function lineChart(title: string, list: Series[]): string {
  const width = 900;
  const height = 360;
  const [x0, y0, x1, y1] = [70, 40 + (list.length > 1 ? 16 * list.length : 0), width - 20, height - 50];
  const tMax = Math.max(1e-9, ...list.flatMap((s) => [...s.points.map((p) => p.t), ...s.faults.map((f) => f.t)]));
  const cMax = Math.max(1, ...list.flatMap((s) => s.points.map((p) => p.converged)));
  const X = (t: number) => x0 + (t / tMax) * (x1 - x0);
  const Y = (c: number) => y1 - (c / cMax) * (y1 - y0);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="22" font-size="16" font-weight="bold">${esc(title)}</text>`,
    `<line x1="${x0}" y1="${y1}" x2="${x1}" y2="${y1}" stroke="#333"/><line x1="${x0}" y1="${y0}" x2="${x0}" y2="${y1}" stroke="#333"/>`,
    `<text x="${x0 - 6}" y="${y0 + 4}" text-anchor="end">${esc(fmt(cMax))}</text><text x="${x0 - 6}" y="${y1}" text-anchor="end">0</text>`,
    `<text x="${x1}" y="${y1 + 18}" text-anchor="end">${esc(fmt(tMax))} s</text><text x="${x0}" y="${y1 + 18}">0 s</text>`,
  ];
  list.forEach((s, i) => {
    const colour = LINE_COLOURS[i % LINE_COLOURS.length]!;
    if (list.length > 1) parts.push(`<rect x="${x0}" y="${32 + 16 * i}" width="10" height="10" fill="${colour}"/><text x="${x0 + 14}" y="${41 + 16 * i}">${esc(s.name)}</text>`);
    for (const f of s.faults) {
      parts.push(`<line x1="${X(f.t).toFixed(1)}" y1="${y0}" x2="${X(f.t).toFixed(1)}" y2="${y1}" stroke="${list.length > 1 ? colour : '#c92a2a'}" stroke-dasharray="4 3"/>`);
      parts.push(`<text x="${(X(f.t) + 3).toFixed(1)}" y="${y0 + 12}" fill="${list.length > 1 ? colour : '#c92a2a'}">${esc(f.kind)}</text>`);
    }
    const path = s.points.map((p, j) => `${j ? 'L' : 'M'}${X(p.t).toFixed(1)},${Y(p.converged).toFixed(1)}`).join(' ');
    parts.push(`<path d="${path}" fill="none" stroke="${colour}" stroke-width="2"/>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** Scenarios with several series (e.g. with and without a fault) also get them on one chart. */
function comparedScenarios(r: Report): string[] {
  const counts = new Map<string, number>();
  for (const s of r.series) counts.set(s.scenario, (counts.get(s.scenario) ?? 0) + 1);
  return [...counts].filter(([, n]) => n > 1).map(([scenario]) => scenario);
}

function chartNames(r: Report): string[] {
  const names = [...new Set(r.figures.map((f) => f.scenario))];
  for (const s of r.series) names.push(`${s.scenario}-${slug(s.name)}`);
  for (const scenario of comparedScenarios(r)) names.push(`${scenario}-compared`);
  return names;
}

const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');

/** One SVG per scenario with figures (bars), one per reported time series (line + fault markers), one comparing a scenario's series. */
export function renderCharts(r: Report): Map<string, string> {
  const out = new Map<string, string>();
  for (const scenario of new Set(r.figures.map((f) => f.scenario))) {
    out.set(scenario, barChart(`${scenario} (${r.date})`, r.figures.filter((f) => f.scenario === scenario)));
  }
  for (const s of r.series) out.set(`${s.scenario}-${slug(s.name)}`, lineChart(`${s.scenario}: ${s.name} — resources converged over time`, [s]));
  for (const scenario of comparedScenarios(r)) {
    out.set(`${scenario}-compared`, lineChart(`${scenario}: resources converged over time`, r.series.filter((s) => s.scenario === scenario)));
  }
  return out;
}
