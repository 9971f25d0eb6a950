import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { decode, encode } from '@kiln/core';
import { NatsServer } from '@kiln/natsd';
import { Engine } from '@kiln/engine';
import { ApiService, EngineBackend, apiSubject, type ApiReply } from '@kiln/api';

/** Repo root from test/dist/src/fuzz/x.js. */
export const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
export const corpusDir = join(repoRoot, '..', 'shared', 'conformance', 'hot');

/**
 * Fixed seed and bounded runs so `npm test` is repeatable and short; KILN_FUZZ_SEED replays a
 * failure, KILN_FUZZ_RUNS runs longer.
 */
export function fuzzParams(defaultRuns: number): { seed: number; numRuns: number } {
  const seed = process.env.KILN_FUZZ_SEED ? Number(process.env.KILN_FUZZ_SEED) : 20261128;
  const numRuns = process.env.KILN_FUZZ_RUNS ? Number(process.env.KILN_FUZZ_RUNS) : defaultRuns;
  return { seed, numRuns };
}

/** Runs a fast-check property; a failure names the seed (and fast-check's shrunk counterexample). */
export async function checkProperty<T>(name: string, arb: fc.Arbitrary<T>, predicate: (v: T) => Promise<void>, defaultRuns: number): Promise<void> {
  const { seed, numRuns } = fuzzParams(defaultRuns);
  try {
    // Shrinking replays against a live system whose state moved on; the first counterexample is what matters.
    await fc.assert(fc.asyncProperty(arb, predicate), { seed, numRuns, endOnFailure: true });
  } catch (e) {
    const cause = (e as { cause?: unknown }).cause;
    console.error(`[fuzz] ${name} failed: replay with KILN_FUZZ_SEED=${seed} KILN_FUZZ_RUNS=${numRuns}${cause ? `\n${cause instanceof Error ? cause.message : String(cause)}` : ''}`);
    throw e;
  }
}

const PASSWORDS = {
  KILN_ENGINE_PASSWORD: 'engine-secret',
  KILN_GATEWAY_PASSWORD: 'gateway-secret',
  KILN_ADMIN_PASSWORD: 'admin-secret',
  KILN_TENANT_A_PASSWORD: 'a-secret',
  KILN_TENANT_B_PASSWORD: 'b-secret',
};

export const TENANT = 'tenant-a';

/** A real nats-server with the shipped tenants config, one in-process engine and the API service. */
export interface ApiBed {
  server: NatsServer;
  engine: Engine;
  kiln: NatsConnection;
  client: NatsConnection;
  api: ApiService;
  jsm: JetStreamManager;
  stop(): Promise<void>;
}

export async function startApiBed(): Promise<ApiBed> {
  Object.assign(process.env, PASSWORDS);
  const server = await NatsServer.start({ extraConfig: readFileSync(join(repoRoot, 'deploy', 'tenants', 'tenants.conf'), 'utf8') });
  const engine = await Engine.start({ servers: server.url, user: 'kiln', pass: PASSWORDS.KILN_ENGINE_PASSWORD, partitions: 8, nodeId: 'fuzz' });
  const kiln = await connect({ servers: server.url, user: 'kiln', pass: PASSWORDS.KILN_ENGINE_PASSWORD });
  const api = await ApiService.start({ nc: kiln, backend: await EngineBackend.open({ engine }) });
  const client = await connect({ servers: server.url, user: TENANT, pass: PASSWORDS.KILN_TENANT_A_PASSWORD, inboxPrefix: `_INBOX_${TENANT}` });
  const jsm = await jetstreamManager(kiln);
  return {
    server, engine, kiln, client, api, jsm,
    async stop() {
      await api.stop();
      await client.close();
      await kiln.close();
      await engine.stop();
      await server.stop();
    },
  };
}

export type Reply = ApiReply;

/** Sends raw bytes (or a JSON/msgpack-encoded body) to an operation and decodes the envelope. */
export async function call(nc: NatsConnection, op: string, body: unknown, o: { raw?: Uint8Array; contentType?: string | null; msgpack?: boolean } = {}): Promise<Reply> {
  const h = headers();
  const ct = o.contentType === undefined ? (o.msgpack ? 'application/msgpack' : 'application/json') : o.contentType;
  if (ct !== null) h.set('Content-Type', ct);
  const data = o.raw ?? (o.msgpack ? encode(body) : new TextEncoder().encode(JSON.stringify(body)));
  const m = await nc.request(apiSubject(TENANT, op), data, { timeout: 10_000, headers: h });
  return (m.headers?.get('Content-Type') === 'application/msgpack' ? decode(m.data) : JSON.parse(m.string())) as Reply;
}

/** Why an error reply is not typed, or undefined when it is. */
export function untypedError(r: Reply): string | undefined {
  if (r.ok) return undefined;
  const e = r.error as unknown as Record<string, unknown> | undefined;
  if (!e || typeof e !== 'object') return 'no error object';
  if (typeof e.code !== 'string' || !/^[A-Z][A-Z0-9_]+$/.test(e.code)) return `bad code ${JSON.stringify(e.code)}`;
  if (typeof e.status !== 'number' || e.status < 400 || e.status > 599) return `bad status ${JSON.stringify(e.status)}`;
  if (typeof e.message !== 'string' || e.message.length === 0) return 'no message';
  if (e.code === 'INTERNAL' || e.status >= 500 && e.code !== 'UNAVAILABLE') return `internal error: ${e.message}`;
  return undefined;
}

/**
 * Every write the engine makes for desired state lands in the stack registry or the spec store
 * (KV streams): their last sequences change iff something was written.
 */
export async function writeMark(jsm: JetStreamManager): Promise<string> {
  const seqs = await Promise.all(['KV_kiln_stacks', 'KV_kiln_specs'].map(async (s) => (await jsm.streams.info(s)).state.last_seq));
  return seqs.join('/');
}

