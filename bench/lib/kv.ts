import { performance } from 'node:perf_hooks';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';

/**
 * The throughput baseline of every bench: raw JetStream KV puts/s from one client, 500 in
 * flight, ~200-byte values — the ceiling of anything that stores one record per resource.
 */
export async function kvBaseline(url: string, n: number): Promise<number> {
  const nc = await connect({ servers: url });
  const kv = await new Kvm(jetstream(nc)).create('bench_baseline', { history: 1 });
  const payload = new Uint8Array(200).fill(7);
  const pending = new Set<Promise<unknown>>();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const p: Promise<unknown> = kv.put(`k${i % 5000}`, payload).finally(() => pending.delete(p));
    pending.add(p);
    if (pending.size >= 500) await Promise.race(pending);
  }
  await Promise.all(pending);
  const rate = n / ((performance.now() - t0) / 1000);
  await kv.destroy();
  await nc.drain();
  return rate;
}
