import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { decode, encode } from '@kiln/core';
import { NatsServer } from '@kiln/natsd';
import { apiSubject, EVENTS_STREAM, EVENTS_PREFIX } from '../src/subjects.js';
import type { ApiReply } from '../src/service.js';

/** Repo root from packages/api/dist/test/harness.js. */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

export const PASSWORDS = {
  KILN_ENGINE_PASSWORD: 'engine-secret',
  KILN_GATEWAY_PASSWORD: 'gateway-secret',
  KILN_ADMIN_PASSWORD: 'admin-secret',
  KILN_TENANT_A_PASSWORD: 'a-secret',
  KILN_TENANT_B_PASSWORD: 'b-secret',
};

/** A real nats-server with deploy/tenants/tenants.conf (users, permissions) as shipped. */
export async function startTenantServer(opts: { maxPayload?: number } = {}): Promise<NatsServer> {
  Object.assign(process.env, PASSWORDS);
  return NatsServer.start({ extraConfig: readFileSync(join(repoRoot, 'deploy', 'tenants', 'tenants.conf'), 'utf8'), ...opts });
}

export type Who = 'kiln' | 'gateway' | 'admin' | 'tenant-a' | 'tenant-b';

const passwordOf: Record<Who, string> = {
  kiln: PASSWORDS.KILN_ENGINE_PASSWORD,
  gateway: PASSWORDS.KILN_GATEWAY_PASSWORD,
  admin: PASSWORDS.KILN_ADMIN_PASSWORD,
  'tenant-a': PASSWORDS.KILN_TENANT_A_PASSWORD,
  'tenant-b': PASSWORDS.KILN_TENANT_B_PASSWORD,
};

export function connectAs(server: NatsServer, who: Who): Promise<NatsConnection> {
  const tenant = who.startsWith('tenant-');
  return connect({ servers: server.url, user: who, pass: passwordOf[who], ...(tenant ? { inboxPrefix: `_INBOX_${who}` } : {}) });
}

/** The events stream as the engine creates it (the API and gateway only read it). */
export async function createEventsStream(nc: NatsConnection): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: EVENTS_STREAM, subjects: [`${EVENTS_PREFIX}.>`], retention: RetentionPolicy.Limits, storage: StorageType.File });
}

/** Calls `kiln.api.v1.<tenant>.<op>` and returns the decoded reply envelope. */
export async function call(
  nc: NatsConnection,
  tenant: string,
  op: string,
  body: unknown = {},
  o: { encoding?: 'json' | 'msgpack'; raw?: Uint8Array; contentType?: string; timeout?: number } = {},
): Promise<ApiReply & { headers: { code?: string | undefined; contentType?: string | undefined } }> {
  const enc = o.encoding ?? 'json';
  const h = headers();
  h.set('Content-Type', o.contentType ?? (enc === 'json' ? 'application/json' : 'application/msgpack'));
  const data = o.raw ?? (enc === 'json' ? new TextEncoder().encode(JSON.stringify(body)) : encode(body));
  const m = await nc.request(apiSubject(tenant, op), data, { timeout: o.timeout ?? 5_000, headers: h });
  const ct = m.headers?.get('Content-Type');
  const reply = (ct === 'application/msgpack' ? decode(m.data) : JSON.parse(m.string())) as ApiReply;
  return { ...reply, headers: { code: m.headers?.get('Nats-Service-Error-Code') || undefined, contentType: ct } };
}

/** The result of a successful call; fails the test with the error otherwise. */
export async function ok<T = Record<string, unknown>>(nc: NatsConnection, tenant: string, op: string, body: unknown = {}): Promise<T> {
  const r = await call(nc, tenant, op, body);
  if (!r.ok) throw new Error(`${op} failed: ${JSON.stringify(r.error)}`);
  return r.result as T;
}

/** The error of a call that must fail. */
export async function err(nc: NatsConnection, tenant: string, op: string, body: unknown = {}, o: Parameters<typeof call>[4] = {}) {
  const r = await call(nc, tenant, op, body, o);
  if (r.ok) throw new Error(`${op} unexpectedly succeeded: ${JSON.stringify(r.result)}`);
  return r.error;
}

export const TEMPLATE = {
  heat_template_version: '2021-04-16',
  description: 'two servers',
  parameters: { flavor: { type: 'string', default: 'm1.small' } },
  resources: {
    web: { type: 'OS::Nova::Server' },
    db: { type: 'OS::Nova::Server' },
    workers: { type: 'OS::Heat::ResourceGroup' },
  },
  outputs: { url: { value: 'x' } },
};

