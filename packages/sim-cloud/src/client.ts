import { Agent, request as httpRequest } from 'node:http';
import { KilnError, type ErrorCode } from '@kiln/core';
import type { Faults, Kind, LatencyConfig, QuotaConfig, RateLimitConfig } from './config.js';
import { onAbort } from './abort.js';
import { KIND_API } from './kinds.js';
import type { ChangeEvent, InventoryItem } from './model.js';

/** Fields every OpenStack-shaped object has here; the rest are per kind. */
export interface CloudObject {
  id: string;
  name?: string | null;
  tags: string[];
  tenant_id: string;
  project_id: string;
  created_at: string;
  updated_at: string;
  [field: string]: unknown;
}

export type ServerStatus = 'BUILD' | 'ACTIVE' | 'ERROR' | 'REBOOT' | 'HARD_REBOOT' | 'SHUTOFF';
export type ProvisioningStatus = 'PENDING_CREATE' | 'PENDING_UPDATE' | 'PENDING_DELETE' | 'ACTIVE' | 'ERROR';
export type OperatingStatus = 'ONLINE' | 'OFFLINE' | 'DEGRADED' | 'ERROR' | 'NO_MONITOR' | 'DRAINING';

export interface Server extends CloudObject {
  name: string;
  status: ServerStatus;
  metadata: Record<string, string>;
  flavor: { id: string; original_name: string; vcpus: number; ram: number; disk: number };
  image: { id: string } | '';
  addresses: Record<string, { addr: string; version: number; 'OS-EXT-IPS:type': string; 'OS-EXT-IPS-MAC:mac_addr': string }[]>;
  'OS-EXT-STS:task_state': string | null;
  'os-extended-volumes:volumes_attached': { id: string }[];
  fault?: { code: number; message: string; created: string };
}
export interface Network extends CloudObject {
  status: 'BUILD' | 'ACTIVE' | 'DOWN';
  subnets: string[];
  admin_state_up: boolean;
  mtu: number;
}
export interface Subnet extends CloudObject {
  network_id: string;
  cidr: string;
  gateway_ip: string | null;
  ip_version: 4;
  allocation_pools: { start: string; end: string }[];
}
export interface Port extends CloudObject {
  network_id: string;
  /** DOWN until bound to an ACTIVE server or a router; an unreachable port stays DOWN with binding:vif_type binding_failed. */
  status: 'ACTIVE' | 'DOWN';
  fixed_ips: { subnet_id: string; ip_address: string }[];
  mac_address: string;
  device_id: string;
  device_owner: string;
  security_groups: string[];
  'binding:vif_type': string;
}
export interface Router extends CloudObject {
  status: 'BUILD' | 'ACTIVE';
  external_gateway_info: { network_id: string } | null;
}
export interface FloatingIp extends CloudObject {
  floating_network_id: string;
  floating_ip_address: string;
  port_id: string | null;
  fixed_ip_address: string | null;
  status: 'ACTIVE' | 'DOWN';
}
export interface SecurityGroup extends CloudObject {
  description: string;
  security_group_rules: SecurityGroupRule[];
}
export interface SecurityGroupRule {
  id: string;
  security_group_id: string;
  direction: 'ingress' | 'egress';
  ethertype: string;
  protocol: string | null;
  port_range_min: number | null;
  port_range_max: number | null;
  remote_ip_prefix: string | null;
  remote_group_id: string | null;
}
export interface Volume extends CloudObject {
  size: number;
  status: 'creating' | 'available' | 'attaching' | 'in-use' | 'detaching' | 'deleting' | 'error';
  metadata: Record<string, string>;
  attachments: { id: string; attachment_id: string; server_id: string; volume_id: string; device: string }[];
}
interface LbObject extends CloudObject {
  provisioning_status: ProvisioningStatus;
  operating_status: OperatingStatus;
}
export interface LoadBalancer extends LbObject {
  vip_address: string;
  vip_subnet_id?: string;
  listeners: { id: string }[];
  pools: { id: string }[];
}
export interface Listener extends LbObject {
  loadbalancer_id: string;
  protocol: string;
  protocol_port: number;
  default_pool_id: string | null;
}
export interface Pool extends LbObject {
  loadbalancer_id: string;
  listener_id: string | null;
  lb_algorithm: string;
  protocol: string;
  members: { id: string }[];
  healthmonitor_id: string | null;
}
export interface Member extends LbObject {
  pool_id: string;
  address: string;
  protocol_port: number;
  weight: number;
}
export interface HealthMonitor extends LbObject {
  pool_id: string;
  type: string;
  delay: number;
  timeout: number;
  max_retries: number;
}

export interface ObjectOf {
  server: Server;
  network: Network;
  subnet: Subnet;
  port: Port;
  router: Router;
  floatingip: FloatingIp;
  security_group: SecurityGroup;
  volume: Volume;
  loadbalancer: LoadBalancer;
  listener: Listener;
  pool: Pool;
  member: Member;
  healthmonitor: HealthMonitor;
}

/** A create body: the fields of the OpenStack request (e.g. `{ name, flavorRef, imageRef, networks }` for a server). Members carry `pool_id`. */
export type CreateBody = Record<string, unknown>;

export interface CallOptions {
  /** Idempotency key: a repeated create with the same key returns the first object. */
  key?: string;
  /** Tenant (X-Project-Id); defaults to the client's. */
  tenant?: string;
  /** The pool a member belongs to (members live under their pool). */
  pool?: string;
  /** Delete a load balancer with its children. */
  cascade?: boolean;
  signal?: AbortSignal;
}

export interface Flavor {
  id: string;
  name: string;
  vcpus: number;
  ram: number;
  disk: number;
}
export interface Image {
  id: string;
  name: string;
  status: string;
  min_disk: number;
  min_ram: number;
}

/**
 * What a provider needs from a cloud: OpenStack-shaped CRUD by kind plus the few actions that are
 * not CRUD. The sim's client implements it over HTTP; a real-cloud client can implement it over
 * Keystone-authenticated endpoints. Every method throws KilnError: RATE_LIMITED (detail.retryAfterMs),
 * QUOTA_EXCEEDED, RESOURCE_NOT_FOUND, CONFLICT, REQUEST_INVALID, UNAVAILABLE (5xx or unreachable).
 */
export interface CloudClient {
  create<K extends Kind>(kind: K, body: CreateBody, opts?: CallOptions): Promise<ObjectOf[K]>;
  /** undefined when the object does not exist (404). */
  get<K extends Kind>(kind: K, id: string, opts?: CallOptions): Promise<ObjectOf[K] | undefined>;
  list<K extends Kind>(kind: K, filter?: Record<string, string>, opts?: CallOptions): Promise<ObjectOf[K][]>;
  /** The live object created with this idempotency key, if any (to find a create that may have happened before a crash). */
  findByKey<K extends Kind>(kind: K, key: string, opts?: CallOptions): Promise<ObjectOf[K] | undefined>;
  update<K extends Kind>(kind: K, id: string, patch: Record<string, unknown>, opts?: CallOptions): Promise<ObjectOf[K]>;
  /** false when it was already gone (404), so deletes are idempotent. */
  delete(kind: Kind, id: string, opts?: CallOptions): Promise<boolean>;
  setMetadata(kind: 'server' | 'volume', id: string, metadata: Record<string, string>, opts?: CallOptions): Promise<Record<string, string>>;
  setTags(kind: Kind, id: string, tags: string[], opts?: CallOptions): Promise<string[]>;
  serverAction(id: string, action: 'reboot' | 'hard-reboot' | 'stop' | 'start', opts?: CallOptions): Promise<void>;
  attachVolume(serverId: string, volumeId: string, opts?: CallOptions & { device?: string }): Promise<{ id: string; volumeId: string; serverId: string; device: string }>;
  detachVolume(serverId: string, volumeId: string, opts?: CallOptions): Promise<boolean>;
  /** Plugs a port, or a new cloud-made port on a network, into a server (Nova os-interface). */
  attachInterface(serverId: string, target: { port_id: string } | { net_id: string }, opts?: CallOptions): Promise<{ port_id: string; net_id: string }>;
  detachInterface(serverId: string, portId: string, opts?: CallOptions): Promise<boolean>;
  /** Grows a volume (Cinder os-extend); the volume must be available. */
  extendVolume(id: string, newSize: number, opts?: CallOptions): Promise<void>;
  addRouterInterface(routerId: string, target: { subnet_id: string } | { port_id: string }, opts?: CallOptions): Promise<{ port_id: string; subnet_id: string | null }>;
  removeRouterInterface(routerId: string, target: { subnet_id: string } | { port_id: string }, opts?: CallOptions): Promise<boolean>;
  addSecurityGroupRule(rule: Record<string, unknown> & { security_group_id: string }, opts?: CallOptions): Promise<SecurityGroupRule>;
  deleteSecurityGroupRule(id: string, opts?: CallOptions): Promise<boolean>;
  listFlavors(opts?: CallOptions): Promise<Flavor[]>;
  listImages(opts?: CallOptions): Promise<Image[]>;
}

export interface SimStats {
  calls: Record<string, number>;
  responses: Record<string, number>;
  /** `struck`: object faults by kind (`vanish`, `error`, `boot-error`, `stuck`, `unreachable`, `offline`, `member-down`). */
  injected: { errors: number; errorsAfterCreate: number; throttled: number; slow: number; struck: Record<string, number> };
  rateLimited: number;
  quotaRefused: number;
  objects: Record<Kind, number>;
  seq: number;
}

export type { ChangeEvent, InventoryItem };

/** HTTP client for the simulated cloud: the CloudClient API plus the sim's control plane. */
export class SimCloudClient implements CloudClient {
  readonly url: string;
  readonly tenant: string;
  private readonly timeoutMs: number;
  private readonly agent: Agent;
  /** Where calls go (parsed once from `url`). */
  private readonly host: string;
  private readonly port: string;
  private readonly basePath: string;

  /** `maxSockets` bounds concurrent calls to the cloud (default 64); connections are kept alive. */
  constructor(url: string, opts: { tenant?: string; timeoutMs?: number; maxSockets?: number; agent?: Agent } = {}) {
    this.url = url.replace(/\/+$/, '');
    this.tenant = opts.tenant ?? 'demo';
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.agent = opts.agent ?? new Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 64 });
    const target = new URL(this.url);
    this.host = target.hostname.replace(/^\[|\]$/g, '');
    this.port = target.port;
    this.basePath = target.pathname.replace(/\/+$/, '');
  }

  /** A client for the same cloud acting as another tenant (sharing connections). */
  forTenant(tenant: string): SimCloudClient {
    return new SimCloudClient(this.url, { tenant, timeoutMs: this.timeoutMs, agent: this.agent });
  }

  /** Closes idle kept-alive connections (call when done with the client). */
  close(): void {
    this.agent.destroy();
  }

  async create<K extends Kind>(kind: K, body: CreateBody, opts: CallOptions = {}): Promise<ObjectOf[K]> {
    const api = KIND_API[kind];
    const { pool_id, ...rest } = body;
    const path = this.collectionPath(kind, kind === 'member' ? (opts.pool ?? (pool_id as string | undefined)) : undefined);
    const headers: Record<string, string> = opts.key ? { 'x-idempotency-key': opts.key } : {};
    const r = await this.call('POST', path, { [api.singular]: kind === 'member' ? rest : body }, opts, headers);
    return (r as Record<string, ObjectOf[K]>)[api.singular]!;
  }

  async get<K extends Kind>(kind: K, id: string, opts: CallOptions = {}): Promise<ObjectOf[K] | undefined> {
    try {
      const r = await this.call('GET', `${this.collectionPath(kind, opts.pool)}/${encodeURIComponent(id)}`, undefined, opts);
      return (r as Record<string, ObjectOf[K]>)[KIND_API[kind].singular];
    } catch (e) {
      if (e instanceof KilnError && e.code === 'RESOURCE_NOT_FOUND') return undefined;
      throw e;
    }
  }

  async list<K extends Kind>(kind: K, filter: Record<string, string> = {}, opts: CallOptions = {}): Promise<ObjectOf[K][]> {
    const qs = new URLSearchParams(filter).toString();
    const r = await this.call('GET', `${this.collectionPath(kind, opts.pool)}${qs ? `?${qs}` : ''}`, undefined, opts);
    return (r as Record<string, ObjectOf[K][]>)[KIND_API[kind].plural] ?? [];
  }

  async findByKey<K extends Kind>(kind: K, key: string, opts: CallOptions = {}): Promise<ObjectOf[K] | undefined> {
    if (kind === 'member' && !opts.pool) {
      // Members are listed per pool: without one, look in every pool of the tenant.
      for (const pool of await this.list('pool', {}, opts)) {
        const found = await this.list(kind, { idempotency_key: key }, { ...opts, pool: pool.id });
        if (found[0]) return found[0];
      }
      return undefined;
    }
    return (await this.list(kind, { idempotency_key: key }, opts))[0];
  }

  async update<K extends Kind>(kind: K, id: string, patch: Record<string, unknown>, opts: CallOptions = {}): Promise<ObjectOf[K]> {
    const api = KIND_API[kind];
    const r = await this.call('PUT', `${this.collectionPath(kind, opts.pool)}/${encodeURIComponent(id)}`, { [api.singular]: patch }, opts);
    return (r as Record<string, ObjectOf[K]>)[api.singular]!;
  }

  async delete(kind: Kind, id: string, opts: CallOptions = {}): Promise<boolean> {
    return this.absentIsFalse(() => this.call('DELETE', `${this.collectionPath(kind, opts.pool)}/${encodeURIComponent(id)}${opts.cascade ? '?cascade=true' : ''}`, undefined, opts));
  }

  async setMetadata(kind: 'server' | 'volume', id: string, metadata: Record<string, string>, opts: CallOptions = {}): Promise<Record<string, string>> {
    const r = (await this.call('PUT', `${KIND_API[kind].path}/${encodeURIComponent(id)}/metadata`, { metadata }, opts)) as { metadata: Record<string, string> };
    return r.metadata;
  }

  async setTags(kind: Kind, id: string, tags: string[], opts: CallOptions = {}): Promise<string[]> {
    const r = (await this.call('PUT', `${this.collectionPath(kind, opts.pool)}/${encodeURIComponent(id)}/tags`, { tags }, opts)) as { tags: string[] };
    return r.tags;
  }

  async serverAction(id: string, action: 'reboot' | 'hard-reboot' | 'stop' | 'start', opts: CallOptions = {}): Promise<void> {
    const body = action === 'reboot' ? { reboot: { type: 'SOFT' } } : action === 'hard-reboot' ? { reboot: { type: 'HARD' } } : action === 'stop' ? { 'os-stop': null } : { 'os-start': null };
    await this.call('POST', `${KIND_API.server.path}/${encodeURIComponent(id)}/action`, body, opts);
  }

  async attachVolume(serverId: string, volumeId: string, opts: CallOptions & { device?: string } = {}) {
    const r = (await this.call('POST', `${KIND_API.server.path}/${encodeURIComponent(serverId)}/os-volume_attachments`, { volumeAttachment: { volumeId, ...(opts.device ? { device: opts.device } : {}) } }, opts)) as {
      volumeAttachment: { id: string; volumeId: string; serverId: string; device: string };
    };
    return r.volumeAttachment;
  }

  async detachVolume(serverId: string, volumeId: string, opts: CallOptions = {}): Promise<boolean> {
    return this.absentIsFalse(() => this.call('DELETE', `${KIND_API.server.path}/${encodeURIComponent(serverId)}/os-volume_attachments/${encodeURIComponent(volumeId)}`, undefined, opts));
  }

  async attachInterface(serverId: string, target: { port_id: string } | { net_id: string }, opts: CallOptions = {}) {
    const r = (await this.call('POST', `${KIND_API.server.path}/${encodeURIComponent(serverId)}/os-interface`, { interfaceAttachment: target }, opts)) as { interfaceAttachment: { port_id: string; net_id: string } };
    return r.interfaceAttachment;
  }

  async detachInterface(serverId: string, portId: string, opts: CallOptions = {}): Promise<boolean> {
    return this.absentIsFalse(() => this.call('DELETE', `${KIND_API.server.path}/${encodeURIComponent(serverId)}/os-interface/${encodeURIComponent(portId)}`, undefined, opts));
  }

  async extendVolume(id: string, newSize: number, opts: CallOptions = {}): Promise<void> {
    await this.call('POST', `${KIND_API.volume.path}/${encodeURIComponent(id)}/action`, { 'os-extend': { new_size: newSize } }, opts);
  }

  async addRouterInterface(routerId: string, target: { subnet_id: string } | { port_id: string }, opts: CallOptions = {}) {
    return (await this.call('PUT', `${KIND_API.router.path}/${encodeURIComponent(routerId)}/add_router_interface`, target, opts)) as { port_id: string; subnet_id: string | null };
  }

  async removeRouterInterface(routerId: string, target: { subnet_id: string } | { port_id: string }, opts: CallOptions = {}): Promise<boolean> {
    return this.absentIsFalse(() => this.call('PUT', `${KIND_API.router.path}/${encodeURIComponent(routerId)}/remove_router_interface`, target, opts));
  }

  async addSecurityGroupRule(rule: Record<string, unknown> & { security_group_id: string }, opts: CallOptions = {}): Promise<SecurityGroupRule> {
    const r = (await this.call('POST', '/network/v2.0/security-group-rules', { security_group_rule: rule }, opts)) as { security_group_rule: SecurityGroupRule };
    return r.security_group_rule;
  }

  async deleteSecurityGroupRule(id: string, opts: CallOptions = {}): Promise<boolean> {
    return this.absentIsFalse(() => this.call('DELETE', `/network/v2.0/security-group-rules/${encodeURIComponent(id)}`, undefined, opts));
  }

  async listFlavors(opts: CallOptions = {}): Promise<Flavor[]> {
    return ((await this.call('GET', '/compute/v2.1/flavors/detail', undefined, opts)) as { flavors: Flavor[] }).flavors;
  }

  async listImages(opts: CallOptions = {}): Promise<Image[]> {
    return ((await this.call('GET', '/image/v2/images', undefined, opts)) as { images: Image[] }).images;
  }

  // ---- the sim's own endpoints ------------------------------------------------------------

  async inventory(filter: { tenant?: string; kind?: Kind } = {}): Promise<InventoryItem[]> {
    const qs = new URLSearchParams(filter as Record<string, string>).toString();
    return ((await this.call('GET', `/inventory${qs ? `?${qs}` : ''}`)) as { objects: InventoryItem[] }).objects;
  }

  async faults(): Promise<Faults> {
    return (await this.call('GET', '/control/faults')) as Faults;
  }

  /** Changes some fault knobs; the others keep their values. */
  async setFaults(patch: Partial<Faults>): Promise<Faults> {
    return (await this.call('PUT', '/control/faults', patch)) as Faults;
  }

  async setLatency(patch: LatencyConfig): Promise<LatencyConfig> {
    return (await this.call('PUT', '/control/latency', patch)) as LatencyConfig;
  }

  async setQuotas(quotas: QuotaConfig): Promise<QuotaConfig> {
    return (await this.call('PUT', '/control/quotas', quotas)) as QuotaConfig;
  }

  async quotaUsage(tenant = this.tenant): Promise<Record<string, { limit: number; in_use: number }>> {
    return ((await this.call('GET', `/control/quotas?tenant=${encodeURIComponent(tenant)}`)) as { quota: Record<string, { limit: number; in_use: number }> }).quota;
  }

  async setRateLimits(limits: RateLimitConfig): Promise<RateLimitConfig> {
    return (await this.call('PUT', '/control/rate-limits', limits)) as RateLimitConfig;
  }

  async stats(): Promise<SimStats> {
    return (await this.call('GET', '/control/stats')) as SimStats;
  }

  async reset(): Promise<void> {
    await this.call('POST', '/control/reset');
  }

  /** Deletes an object behind the API's back ("deleted by hand"). false if it did not exist. */
  async vanish(id: string): Promise<boolean> {
    return this.absentIsFalse(() => this.call('DELETE', `/control/objects/${encodeURIComponent(id)}`));
  }

  /** Forces a status and/or operating_status, cancelling any transition in flight. */
  async forceStatus(id: string, patch: { status?: string; operating_status?: string }): Promise<Record<string, unknown>> {
    return ((await this.call('PUT', `/control/objects/${encodeURIComponent(id)}`, patch)) as { object: Record<string, unknown> }).object;
  }

  /** One long poll of the change feed: events after `since` (waits up to waitMs for the first). */
  async poll(since: number, opts: { waitMs?: number; kinds?: Kind[]; signal?: AbortSignal } = {}): Promise<{ events: ChangeEvent[]; gap: boolean; seq: number }> {
    const qs = new URLSearchParams({ since: String(since), format: 'json', wait: String(opts.waitMs ?? 25_000) });
    if (opts.kinds) qs.set('kind', opts.kinds.join(','));
    return (await this.call('GET', `/events?${qs}`, undefined, { ...(opts.signal ? { signal: opts.signal } : {}) }, {}, (opts.waitMs ?? 25_000) + this.timeoutMs)) as { events: ChangeEvent[]; gap: boolean; seq: number };
  }

  /**
   * Follows the change feed as server-sent events from `since` (omit for "from now"), calling
   * `onEvent` for each change and `onGap` when events were lost (relist, then carry on), `onPing`
   * for each keep-alive (every 15 s: a follower can tell a quiet feed from a stalled one). Returns
   * when the signal aborts or the stream ends; it does not reconnect by itself.
   */
  async follow(opts: { since?: number; kinds?: Kind[]; signal?: AbortSignal; onEvent: (e: ChangeEvent) => void; onGap?: (seq: number) => void; onOpen?: () => void; onPing?: () => void }): Promise<void> {
    const qs = new URLSearchParams();
    if (opts.since !== undefined) qs.set('since', String(opts.since));
    if (opts.kinds) qs.set('kind', opts.kinds.join(','));
    if (opts.signal?.aborted) return;
    // Plain node:http, on a connection of its own (not one of the calls' `maxSockets`).
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (e?: KilnError) => {
        if (settled) return;
        settled = true;
        if (e && !opts.signal?.aborted) reject(e);
        else resolve();
      };
      const req = httpRequest({ host: this.host, port: this.port, path: `${this.basePath}/events?${qs}`, method: 'GET', agent: false, headers: { accept: 'text/event-stream' }, ...(opts.signal ? { signal: opts.signal } : {}) }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          settle(new KilnError('UNAVAILABLE', `sim-cloud event stream answered ${res.statusCode ?? 0}`));
          req.destroy();
          return;
        }
        opts.onOpen?.();
        res.setEncoding('utf8');
        let buf = '';
        res.on('data', (chunk: string) => {
          buf = buf === '' ? chunk : buf + chunk;
          let start = 0;
          let end: number;
          try {
            while ((end = buf.indexOf('\n\n', start)) >= 0) {
              const block = buf.slice(start, end);
              start = end + 2;
              readBlock(block, opts);
            }
          } catch (e) {
            settle(new KilnError('UNAVAILABLE', `sim-cloud event stream broke: ${(e as Error).message}`, { cause: e }));
            req.destroy();
            return;
          }
          if (start > 0) buf = buf.slice(start);
        });
        res.on('error', () => undefined);
        // The stream ended: cleanly (the sim stopped it) or cut (the sim died, the signal aborted).
        res.on('close', () => settle(res.complete ? undefined : new KilnError('UNAVAILABLE', 'sim-cloud event stream broke: connection closed')));
      });
      req.on('error', (e) => settle(new KilnError('UNAVAILABLE', `sim-cloud event stream unreachable at ${this.url}: ${e.message}`, { cause: e })));
      req.end();
    });
  }

  // ---- plumbing ---------------------------------------------------------------------------

  private collectionPath(kind: Kind, pool?: string): string {
    const path = KIND_API[kind].path;
    if (kind !== 'member') return path;
    if (!pool) throw new KilnError('REQUEST_INVALID', 'a member call needs its pool (opts.pool or body.pool_id)', { path: 'pool' });
    return path.replace('{pool_id}', encodeURIComponent(pool));
  }

  private async absentIsFalse(fn: () => Promise<unknown>): Promise<boolean> {
    try {
      await fn();
      return true;
    } catch (e) {
      if (e instanceof KilnError && e.code === 'RESOURCE_NOT_FOUND') return false;
      throw e;
    }
  }

  private call(method: string, path: string, body?: unknown, opts: CallOptions = {}, headers: Record<string, string> = {}, timeoutMs = this.timeoutMs): Promise<unknown> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const fail = (e: Error) => {
        const timedOut = e.name === 'TimeoutError';
        reject(new KilnError(timedOut ? 'TIMEOUT' : 'UNAVAILABLE', `${method} ${path}: ${timedOut ? `no answer within ${timeoutMs} ms` : `cloud unreachable at ${this.url}: ${e.message}`}`, { cause: e, detail: { method, path } }));
      };
      headers['x-project-id'] = opts.tenant ?? this.tenant;
      if (payload !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = String(Buffer.byteLength(payload));
      }
      const req = httpRequest({ host: this.host, port: this.port, path: this.basePath + path, method, agent: this.agent, headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('error', fail);
        res.on('end', () => {
          clearTimeout(timer);
          let json: unknown = undefined;
          if (text !== '') {
            try {
              json = JSON.parse(text);
            } catch {
              json = text;
            }
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) return resolve(json);
          const { message, type } = readError(json);
          const retryAfter = res.headers['retry-after'];
          const details: Record<string, unknown> = { status, type, method, path };
          if (retryAfter !== undefined) details.retryAfterMs = Math.round(Number(retryAfter) * 1000);
          reject(new KilnError(codeFor(status, type, message), `${method} ${path}: ${status} ${message}`, { detail: details }));
        });
      });
      // The clock starts when the request gets a connection: time queued behind `maxSockets`
      // other calls of this client is not the cloud being slow.
      let timer: NodeJS.Timeout | undefined;
      req.once('socket', () => {
        timer = setTimeout(() => {
          const e = new Error('timeout');
          e.name = 'TimeoutError';
          req.destroy(e);
        }, timeoutMs);
      });
      const dropAbort = onAbort(opts.signal, () => req.destroy(new Error('aborted')));
      req.on('error', (e) => {
        clearTimeout(timer);
        fail(e);
      });
      req.on('close', () => {
        clearTimeout(timer);
        dropAbort();
      });
      req.end(payload);
    });
  }
}

/** One server-sent-events block: an event, a gap, or a keep-alive comment. */
function readBlock(block: string, opts: { onEvent: (e: ChangeEvent) => void; onGap?: (seq: number) => void; onPing?: () => void }): void {
  let event = 'message';
  let data = '';
  for (const line of block.split('\n')) {
    if (line.startsWith('event: ')) event = line.slice(7);
    else if (line.startsWith('data: ')) data += line.slice(6);
  }
  if (data === '') {
    if (block.startsWith(':')) opts.onPing?.();
    return;
  }
  const parsed = JSON.parse(data) as ChangeEvent & { seq: number };
  if (event === 'gap') opts.onGap?.(parsed.seq);
  else opts.onEvent(parsed);
}

function readError(body: unknown): { message: string; type: string } {
  if (typeof body !== 'object' || body === null) return { message: String(body ?? ''), type: '' };
  const b = body as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  if (b.NeutronError) return { message: String(b.NeutronError.message), type: String(b.NeutronError.type) };
  if (b.faultstring !== undefined) return { message: String(b.faultstring), type: String(b.type ?? '') };
  if (b.error) return { message: String(b.error.message), type: String(b.error.code ?? '') };
  const inner = Object.values(b)[0] as Record<string, unknown> | undefined;
  return { message: String(inner?.message ?? JSON.stringify(b)), type: String(inner?.type ?? Object.keys(b)[0] ?? '') };
}

function codeFor(status: number, type: string, message: string): ErrorCode {
  if (status === 429) return 'RATE_LIMITED';
  if (/quota|OverQuota|LimitExceeded/i.test(type) || /quota exceeded/i.test(message)) return 'QUOTA_EXCEEDED';
  if (status === 404) return 'RESOURCE_NOT_FOUND';
  if (status === 409) return 'CONFLICT';
  if (status === 403) return 'FORBIDDEN';
  if (status === 413) return 'REQUEST_TOO_LARGE';
  if (status >= 500) return 'UNAVAILABLE';
  return 'REQUEST_INVALID';
}
