import { SimCloud, SimCloudClient, type SimCloudOptions } from '../src/index.js';

/** Latencies small enough for tests, still asynchronous. */
export const FAST = {
  default: { dist: 'uniform', min: 5, max: 20 },
  server: { dist: 'uniform', min: 20, max: 60 },
  volume: { dist: 'uniform', min: 10, max: 30 },
  loadbalancer: { dist: 'uniform', min: 20, max: 50 },
  delete: { dist: 'fixed', ms: 10 },
} as const satisfies SimCloudOptions['latency'];

export async function startSim(opts: SimCloudOptions = {}): Promise<{ sim: SimCloud; client: SimCloudClient }> {
  const sim = await SimCloud.start({ seed: 42, latency: FAST, ...opts });
  return { sim, client: new SimCloudClient(sim.url) };
}

/** A raw HTTP call, for asserting status codes, headers and OpenStack error shapes. */
export async function raw(url: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await fetch(url + path, { method, headers: { 'content-type': 'application/json', ...headers }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
}

/**
 * The statuses an object went through after change `since`, read from the change feed until
 * `done` says enough (so short-lived states are seen however slow the machine is).
 */
export async function statusTrail(client: SimCloudClient, id: string, since: number, done: (trail: string[]) => boolean, timeoutMs = 10_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  const trail: string[] = [];
  let seq = since;
  while (!done(trail)) {
    if (Date.now() > deadline) throw new Error(`timed out; trail of ${id}: ${trail.join(' -> ')}`);
    const r = await client.poll(seq, { waitMs: 500 });
    for (const e of r.events) if (e.id === id) trail.push(e.type === 'deleted' ? 'deleted' : e.status!);
    seq = Math.max(seq, ...r.events.map((e) => e.seq));
  }
  return trail;
}
