/**
 * Convergence engine benchmark. In one run against one nats-server (file storage):
 *  1. baseline: raw JetStream KV puts/s (500 in flight, ~200-byte values);
 *  2. create, update-all (a property of every resource changes, updated in place) and delete of
 *     OS::Heat::None stacks: 1K and 10K wide, a 1K-deep chain, ResourceGroups of 10K, 100K and
 *     1M members, with 1 and 2 engine processes (each its own process, spawned from
 *     packages/engine/dist/test/fixtures/worker.js);
 *  3. seconds, resources/s, ratio of resources/s to KV puts/s, peak RSS of engines and server.
 * `--quick`: 10K wide with one engine only. Last line:
 *   `engine wide10k_create_s=C update_s=U delete_s=D ratio=R`
 * Usage: node bench/dist/engine.js [--quick] [--json <file>] [--only <scenario,...>] [--engines <n,...>] [--partitions <n>] [--create-only]
 * `KILN_ENGINE_NODE_ARGS` (space-separated) is passed to the engine processes (e.g. `--cpu-prof`);
 * `KILN_LEASE_MS` (default 10000) and `KILN_MAX_IN_FLIGHT` reach them through the environment.
 * After each create it prints the server operations it cost per resource: mailbox stream
 * messages, actor-state writes, pending-index writes and events (stream sequences before/after).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { NatsServer } from '@kiln/natsd';
import { Engine } from '@kiln/engine';
import { kvBaseline } from './lib/kv.js';
import { opCounts, type OpCounts } from './lib/ops.js';
import { peakRssMiB, say } from './lib/procs.js';

const quick = process.argv.includes('--quick');
const arg = (name: string) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const jsonOut = arg('--json');
const only = arg('--only')?.split(',');
const engineCountsArg = arg('--engines')?.split(',').map(Number);
const createOnly = process.argv.includes('--create-only');
/** The engine's default partition count; `--partitions 32` is the runtime's recommendation (fewer filtered consumers). */
const PARTITIONS = Number(arg('--partitions') ?? 64);
const workerScript = fileURLToPath(new URL('../../packages/engine/dist/test/fixtures/worker.js', import.meta.url));

function startWorker(url: string, nodeId: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--max-old-space-size=4096', ...(process.env.KILN_ENGINE_NODE_ARGS?.split(' ').filter(Boolean) ?? []), workerScript, url, nodeId, String(PARTITIONS)], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { KILN_LEASE_MS: '10000', ...process.env, KILN_LOG_LEVEL: 'warn' },
    });
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve(child));
    child.once('exit', (c) => reject(new Error(`engine ${nodeId} exited (${c})`)));
  });
}

type Shape = { name: string; resources: number; template: (v: number) => Record<string, unknown> };

const none = (v: number) => ({ type: 'OS::Heat::None', properties: { v } });
const shapes: Shape[] = [
  { name: 'wide1k', resources: 1000, template: (v) => ({ heat_template_version: '2016-10-14', resources: Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`r${i}`, none(v)])) }) },
  { name: 'wide10k', resources: 10_000, template: (v) => ({ heat_template_version: '2016-10-14', resources: Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`r${i}`, none(v)])) }) },
  {
    name: 'chain1k',
    resources: 1000,
    template: (v) => ({
      heat_template_version: '2016-10-14',
      resources: Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`r${i}`, { ...none(v), ...(i > 0 ? { depends_on: [`r${i - 1}`] } : {}) }])),
    }),
  },
  ...[10_000, 100_000, 1_000_000].map((n) => ({
    name: `group${n >= 1_000_000 ? '1m' : `${n / 1000}k`}`,
    resources: n,
    template: (v: number) => ({
      heat_template_version: '2016-10-14',
      resources: { g: { type: 'OS::Heat::ResourceGroup', properties: { count: n, resource_def: { type: 'OS::Heat::None', properties: { v } } } } },
    }),
  })),
];

async function waitSettled(engine: Engine, id: string, gen: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await engine.getStack(id);
    if (s.generation >= gen && s.status !== 'CONVERGING') {
      if (s.status === 'FAILED') throw new Error(`stack failed: ${s.reason}`);
      return;
    }
    if (Date.now() > deadline) throw new Error(`stack ${id} did not settle at gen ${gen} in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Row {
  shape: string;
  engines: number;
  resources: number;
  createS: number;
  updateS: number;
  deleteS: number;
  createPerS: number;
  ratio: number;
  engineRssMiB: number;
  serverRssMiB: number;
}

async function main(): Promise<void> {
  // Wide templates and their fan-out messages exceed NATS's default 1 MiB payload.
  const nats = await NatsServer.start({ maxPayload: 8 * 1024 * 1024 });
  const rows: Row[] = [];
  let kvRate = 0;
  try {
    kvRate = await kvBaseline(nats.url, quick ? 10_000 : 50_000);
    say(`kv baseline: ${kvRate.toFixed(0)} puts/s`);
    const engineCounts = quick ? [1] : (engineCountsArg ?? [1, 2]);
    const opsNc = await connect({ servers: nats.url });
    const chosen = quick ? shapes.filter((s) => s.name === 'wide10k') : shapes.filter((s) => !only || only.includes(s.name));
    const client = await Engine.start({ servers: nats.url, partitions: PARTITIONS, worker: false });
    let stackNo = 0;
    for (const engines of engineCounts) {
      const workers: ChildProcess[] = [];
      for (let i = 0; i < engines; i++) workers.push(await startWorker(nats.url, `bench-${engines}-${i}`));
      try {
        for (const shape of chosen) {
          const timeout = Math.max(120_000, shape.resources * 5);
          const ops0 = await opCounts(opsNc);
          const t0 = performance.now();
          const ref = await client.createStack({ name: `b${stackNo++}`, template: shape.template(1) });
          await waitSettled(client, ref.id, 1, timeout);
          const createS = (performance.now() - t0) / 1000;
          const ops1 = await opCounts(opsNc);
          const perRes = (k: keyof OpCounts) => ((ops1[k] - ops0[k]) / shape.resources).toFixed(3);
          say(
            `${shape.name} engines=${engines}: create ${createS.toFixed(2)} s (${(shape.resources / createS).toFixed(0)} res/s); per resource: ` +
              `mailbox stream msgs ${perRes('mbox')}, state writes ${perRes('state')}, pending-index writes ${perRes('pending')}, events ${perRes('events')}`,
          );
          if (createOnly) continue;
          const t1 = performance.now();
          await client.updateStack(ref.id, { template: shape.template(2) });
          await waitSettled(client, ref.id, 2, timeout);
          const updateS = (performance.now() - t1) / 1000;
          const t2 = performance.now();
          await client.deleteStack(ref.id);
          await waitSettled(client, ref.id, 3, timeout);
          const deleteS = (performance.now() - t2) / 1000;
          const row: Row = {
            shape: shape.name,
            engines,
            resources: shape.resources,
            createS,
            updateS,
            deleteS,
            createPerS: shape.resources / createS,
            ratio: shape.resources / createS / kvRate,
            engineRssMiB: Math.max(...workers.map((w) => peakRssMiB(w.pid))),
            serverRssMiB: peakRssMiB(nats.pid),
          };
          rows.push(row);
          say(
            `${shape.name} engines=${engines}: create ${createS.toFixed(2)} s (${row.createPerS.toFixed(0)} res/s, ratio ${row.ratio.toFixed(3)}), ` +
              `update ${updateS.toFixed(2)} s, delete ${deleteS.toFixed(2)} s, engine peak RSS ${row.engineRssMiB} MiB, server ${row.serverRssMiB} MiB`,
          );
        }
      } finally {
        for (const w of workers) {
          w.kill('SIGTERM');
          await new Promise((r) => w.once('exit', r));
        }
      }
    }
    await client.stop();
    await opsNc.close();
  } finally {
    await nats.stop();
  }
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ kvPutsPerSec: kvRate, rows }, null, 2));
  const w = rows.find((r) => r.shape === 'wide10k' && r.engines === 1);
  if (w) say(`engine wide10k_create_s=${w.createS.toFixed(2)} update_s=${w.updateS.toFixed(2)} delete_s=${w.deleteS.toFixed(2)} ratio=${w.ratio.toFixed(3)}`);
}

await main();
