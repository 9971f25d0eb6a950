import { createHash } from 'node:crypto';
import { KilnError, decode, encode } from '@kiln/core';
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';

export const REQUESTS_BUCKET = 'KILN_API_REQUESTS';

type Entry = { state: 'pending'; fp: string; at: number } | { state: 'done'; fp: string; at: number; result: unknown };

/** JSON with sorted keys: the same body in JSON or msgpack, any key order, has one fingerprint. */
function canonical(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
    .join(',')}}`;
}

export function fingerprint(body: unknown): string {
  return createHash('sha256').update(canonical(body)).digest('base64url');
}

/**
 * Idempotency of desired-state writes: the first request with a `request_id` claims the key
 * (KV create, atomic across API instances), its successful result is stored, and a retry gets
 * that result instead of a second write. A failed attempt releases the key so a retry re-runs.
 * A claim older than `staleMs` (its API instance died mid-request) may be taken over; the engine
 * also receives the request id, so such a takeover cannot create a second stack either.
 */
export class RequestLog {
  private constructor(
    private readonly kv: KV,
    private readonly staleMs: number,
  ) {}

  static async open(nc: NatsConnection, opts: { bucket?: string; ttlMs?: number; staleMs?: number; replicas?: number } = {}): Promise<RequestLog> {
    const kvm = new Kvm(nc);
    const kv = await kvm.create(opts.bucket ?? REQUESTS_BUCKET, { history: 1, ttl: opts.ttlMs ?? 24 * 3600_000, replicas: opts.replicas ?? 1 });
    return new RequestLog(kv, opts.staleMs ?? 60_000);
  }

  async run(key: string, body: unknown, execute: () => Promise<unknown>, waitMs = 10_000): Promise<unknown> {
    const fp = fingerprint(body);
    const deadline = Date.now() + waitMs;
    for (;;) {
      const cur = await this.kv.get(key);
      const entry = cur && cur.operation === 'PUT' && cur.length > 0 ? decode<Entry>(cur.value) : undefined;
      if (entry && entry.fp !== fp) {
        throw new KilnError('CONFLICT', 'request_id was already used for a different request', { path: 'body.request_id' });
      }
      if (entry?.state === 'done') return entry.result;
      const claim = encode({ state: 'pending', fp, at: Date.now() } satisfies Entry);
      let revision: number | undefined;
      if (!entry) revision = await this.kv.create(key, claim).catch(() => undefined);
      else if (Date.now() - entry.at > this.staleMs) revision = await this.kv.update(key, claim, cur!.revision).catch(() => undefined);
      if (revision !== undefined) return await this.execute(key, fp, revision, execute);
      // Another instance is running the same request: wait for its result.
      if (Date.now() > deadline) throw new KilnError('CONFLICT', 'a request with this request_id is still in progress; retry later', { path: 'body.request_id' });
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private async execute(key: string, fp: string, revision: number, execute: () => Promise<unknown>): Promise<unknown> {
    let result: unknown;
    try {
      result = await execute();
    } catch (e) {
      await this.kv.delete(key, { previousSeq: revision }).catch(() => undefined);
      throw e;
    }
    await this.kv.update(key, encode({ state: 'done', fp, at: Date.now(), result } satisfies Entry), revision);
    return result;
  }
}
