import { performance } from 'node:perf_hooks';
import type { Engine, StackInfo } from '@kiln/engine';

/**
 * Polls until the stack has left CONVERGING at generation `gen` or later (FAILED included). A read
 * that fails (a NATS timeout on a saturated machine) is tried again at the next poll, not a failed run.
 */
export async function waitSettled(client: Engine, id: string, gen: number, timeoutMs: number, pollMs = 200): Promise<StackInfo> {
  const deadline = performance.now() + timeoutMs;
  let last: StackInfo | Error | undefined;
  for (;;) {
    const s = await client.getStack(id).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
    if (!(s instanceof Error) && s.generation >= gen && s.status !== 'CONVERGING') return s;
    if (!(s instanceof Error) || last === undefined) last = s;
    if (performance.now() > deadline) {
      const seen = last instanceof Error ? `last read failed: ${last.message}` : JSON.stringify(last.resources);
      throw new Error(`stack ${id} not settled at generation ${gen} after ${timeoutMs / 1000} s (${seen})`);
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/**
 * Resources (paths, nested ones included) that reached `<action>_COMPLETE`, read from the
 * stack's events, with the type and physical id of each one's last completion; `pump` reads what
 * is new since the last call.
 */
export class CompletedResources {
  readonly completed = new Set<string>();
  readonly physical = new Map<string, { type: string; id: string | null | undefined }>();
  private seq = 1;

  constructor(
    private readonly client: Engine,
    private readonly stackId: string,
    private readonly action: string,
  ) {}

  async pump(): Promise<number> {
    for (;;) {
      const batch = await this.client.events(this.stackId, this.seq, 10_000);
      for (const { seq, event } of batch) {
        this.seq = seq + 1;
        if (!event.resource || event.action !== this.action || event.status !== 'COMPLETE') continue;
        this.completed.add(event.resource);
        if (event.type) this.physical.set(event.resource, { type: event.type, id: event.physicalId });
      }
      if (batch.length < 10_000) return this.completed.size;
    }
  }
}

export interface Point {
  t: number;
  converged: number;
}

/**
 * Samples `count()` every `intervalMs` from now on (t in seconds from `t0`, a performance.now()
 * value) until `stop()`, which returns the points. A failed read is a gap, not a failed run.
 */
export function sampleSeries(t0: number, count: () => Promise<number>, intervalMs = 250): { stop(): Promise<Point[]> } {
  const points: Point[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const c = await count().catch(() => undefined);
      if (c !== undefined) points.push({ t: Math.round(performance.now() - t0) / 1000, converged: c });
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return points;
    },
  };
}
