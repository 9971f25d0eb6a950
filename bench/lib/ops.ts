import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';

/** Streams whose message counts are the server operations of a run (default engine prefix `kiln`). */
const OP_STREAMS = { mbox: 'kiln_mbox', state: 'KV_kiln_state', pending: 'KV_kiln_pending', events: 'kiln_events' } as const;
export type OpCounts = Record<keyof typeof OP_STREAMS, number>;

/** Messages ever stored in each of the engine's streams (their last sequence). */
export async function opCounts(nc: NatsConnection): Promise<OpCounts> {
  const jsm = await jetstreamManager(nc);
  const out = {} as OpCounts;
  for (const [k, stream] of Object.entries(OP_STREAMS) as Array<[keyof OpCounts, string]>) {
    out[k] = await jsm.streams.info(stream).then((i) => i.state.last_seq, () => 0);
  }
  return out;
}

/** Operations per unit between two counts, e.g. per resource. */
export function opsPer(from: OpCounts, to: OpCounts, units: number): OpCounts {
  return Object.fromEntries(Object.keys(to).map((k) => [k, Math.round(((to[k as keyof OpCounts] - from[k as keyof OpCounts]) / units) * 1000) / 1000])) as OpCounts;
}
