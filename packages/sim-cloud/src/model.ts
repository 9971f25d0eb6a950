import type { Logger } from '@kiln/core';
import { DEFAULT_LATENCY, KINDS, NO_FAULTS, type Faults, type Kind, type LatencyConfig, type LatencyKey, type Quota, type QuotaConfig, type RateLimitConfig } from './config.js';
import { FLAVORS, IMAGES, KEY_METADATA, KEY_TAG_PREFIX, KIND_API, LB_KINDS, type Flavor } from './kinds.js';
import { Rng } from './rng.js';
import { Wal, type FsyncPolicy } from './wal.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Doc = Record<string, any>;

/** One object of the simulated cloud as stored (the OpenStack document plus bookkeeping). */
export interface SimObject {
  kind: Kind;
  id: string;
  tenant: string;
  /** The idempotency key it was created with, if any. */
  key?: string;
  /** Creation order, for stable listing and id generation. */
  ord: number;
  /** Which random stream this object draws from (stable per key, so a seed replays a run whatever the call order). */
  identity: string;
  /** How many draws this object has made from its stream. */
  draws: number;
  /** The OpenStack-shaped document (status fields included). */
  doc: Doc;
  /** A transition in flight: at epoch ms `at` the object moves to `to` (kind-specific). */
  pending?: { at: number; to: string };
  /** The fault decided for it at creation, if any (`stuck`, `boot-error`, `unreachable`, `create-error`). */
  fault?: string;
  /** Created by the cloud for another object (a server's port on a network, a router interface port). */
  implicit?: boolean;
  /** Next host number for a subnet's address allocation. */
  nextHost?: number;
  /** Next rule number of a security group. */
  nextRule?: number;
}

export interface Settings {
  seed: string;
  faults: Faults;
  latency: LatencyConfig;
  quotas: QuotaConfig;
  rateLimits: RateLimitConfig;
}

export interface ChangeEvent {
  seq: number;
  at: string;
  type: 'created' | 'updated' | 'deleted' | 'reset';
  kind?: Kind;
  id?: string;
  tenant?: string;
  status?: string;
  operating_status?: string;
  previous_status?: string;
  key?: string;
  /** The object as the API shows it (absent for deletes and resets). */
  object?: Doc;
}

/** A change as the feed keeps it: serialised once, whatever the number of followers. */
export interface FeedEvent {
  seq: number;
  type: ChangeEvent['type'];
  kind?: Kind;
  tenant?: string;
  /** The `ChangeEvent` as JSON. */
  json: string;
}

export interface InventoryItem {
  kind: Kind;
  id: string;
  tenant: string;
  name: string;
  status: string;
  operating_status?: string;
  key?: string;
  tags: string[];
  implicit?: boolean;
  parent?: string;
  /** A transition in flight: the state it is heading for and when it gets there. */
  transition?: { to: string; at: string };
}

type WalRecord =
  | { seq: number; at: number; op: 'put'; obj: SimObject }
  | { seq: number; at: number; op: 'del'; id: string }
  | { seq: number; at: number; op: 'settings'; settings: Settings }
  | { seq: number; at: number; op: 'reset' };

type WalBody = WalRecord extends infer R ? (R extends unknown ? Omit<R, 'seq' | 'at'> : never) : never;

interface PersistedState {
  nextOrd: number;
  settings: Settings;
  keyAttempts: Record<string, number>;
  objects: SimObject[];
}

/** A refusal by the cloud API; the HTTP layer renders it in the service's own error shape. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

const notFound = (kind: Kind, id: string) => new ApiError(404, `${cap(kind)}NotFound`, `${cap(kind)} ${id} could not be found.`);
const badRequest = (message: string) => new ApiError(400, 'BadRequest', message);
const conflict = (type: string, message: string) => new ApiError(409, type, message);
function cap(kind: Kind): string {
  return kind === 'floatingip' ? 'FloatingIP' : kind === 'security_group' ? 'SecurityGroup' : kind === 'healthmonitor' ? 'HealthMonitor' : kind === 'loadbalancer' ? 'LoadBalancer' : kind[0]!.toUpperCase() + kind.slice(1);
}

/** Kinds whose PUT accepts only these fields (as their APIs do). */
const UPDATABLE: Partial<Record<Kind, string[]>> = {
  server: ['name', 'accessIPv4', 'accessIPv6', 'description', 'hostname'],
  volume: ['name', 'description', 'metadata'],
};
/** Fields fixed at creation for the other kinds. */
const IMMUTABLE: Partial<Record<Kind, string[]>> = {
  subnet: ['network_id', 'cidr', 'ip_version'],
  port: ['network_id'],
  floatingip: ['floating_network_id', 'floating_ip_address'],
  listener: ['loadbalancer_id', 'protocol', 'protocol_port'],
  pool: ['loadbalancer_id', 'listener_id', 'protocol'],
  member: ['pool_id', 'address', 'protocol_port', 'subnet_id'],
  healthmonitor: ['pool_id', 'type'],
  loadbalancer: ['vip_subnet_id', 'vip_network_id', 'vip_port_id', 'vip_address'],
  security_group: ['security_group_rules'],
};

const PROTECTED = new Set(['id', 'status', 'provisioning_status', 'operating_status', 'tenant_id', 'project_id', 'created', 'updated', 'created_at', 'updated_at']);

export interface ModelOptions {
  stateDir: string;
  fsync?: FsyncPolicy;
  seed?: string | number;
  faults?: Partial<Faults>;
  latency?: LatencyConfig;
  quotas?: QuotaConfig;
  rateLimits?: RateLimitConfig;
  eventBuffer?: number;
  logger: Logger;
}

/**
 * The simulated cloud's state and behaviour, without HTTP: objects, their asynchronous
 * transitions on a timer heap, faults, quotas, idempotency keys, the change feed and the log.
 */
export class CloudModel {
  settings: Settings;
  private readonly objects = new Map<string, SimObject>();
  private readonly byKey = new Map<string, string>();
  /** Reverse references: id -> ids of objects whose document points at it. */
  private readonly referrers = new Map<string, Map<Kind, Set<string>>>();
  /** Live objects per kind, so lists do not walk the whole cloud. */
  private readonly byKind = new Map<Kind, Map<string, SimObject>>(KINDS.map((k) => [k, new Map()]));
  private readonly indexedRefs = new Map<string, string[]>();
  private readonly usage = new Map<string, Map<string, number>>();
  /** Later faults scheduled for healthy objects. Not persisted: they are memoryless, so a restart redraws them. */
  private readonly dooms = new Map<string, { at: number; what: string }>();
  private keyAttempts = new Map<string, number>();
  private seq = 0;
  private nextOrd = 1;
  private readonly heap: { at: number; id: string; what: 'pending' | 'doom' }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private readonly events: FeedEvent[] = [];
  private readonly eventBuffer: number;
  /** Changes up to this sequence number are no longer in `events` (trimmed, or from before a restart). */
  private droppedUpTo = 0;
  /** Events recorded since the last flush: followers get them once the log holds them. */
  private unflushed: FeedEvent[] = [];
  private flushQueued = false;
  private readonly listeners = new Set<(batch: FeedEvent[]) => void>();
  readonly stats = { calls: {} as Record<string, number>, responses: {} as Record<string, number>, injected: { errors: 0, errorsAfterCreate: 0, throttled: 0, slow: 0, struck: {} as Record<string, number> }, rateLimited: 0, quotaRefused: 0 };
  private apiRng: Rng;
  private readonly buckets = new Map<string, { tokens: number; last: number }>();
  private readonly wal: Wal<PersistedState, WalRecord>;
  private readonly log: Logger;
  private closed = false;

  constructor(opts: ModelOptions) {
    this.log = opts.logger;
    this.eventBuffer = opts.eventBuffer ?? 20_000;
    this.wal = new Wal<PersistedState, WalRecord>(opts.stateDir, opts.fsync ?? 'interval');
    let loaded: ReturnType<typeof this.wal.load>;
    try {
      loaded = this.wal.load();
    } catch (e) {
      this.wal.close();
      throw e;
    }
    const { snapshot, records } = loaded;
    this.settings = { seed: '1', faults: { ...NO_FAULTS }, latency: { ...DEFAULT_LATENCY }, quotas: {}, rateLimits: {} };
    if (snapshot) {
      this.seq = snapshot.seq;
      this.nextOrd = snapshot.state.nextOrd;
      this.settings = snapshot.state.settings;
      this.keyAttempts = new Map(Object.entries(snapshot.state.keyAttempts));
      for (const o of snapshot.state.objects) this.insert(o);
    }
    for (const r of records) this.replay(r);
    this.droppedUpTo = this.seq;
    this.restoreAllocations();
    const overrides: Partial<Settings> = {};
    if (opts.seed !== undefined) overrides.seed = String(opts.seed);
    if (opts.faults) overrides.faults = { ...NO_FAULTS, ...opts.faults };
    if (opts.latency) overrides.latency = { ...DEFAULT_LATENCY, ...opts.latency };
    if (opts.quotas) overrides.quotas = opts.quotas;
    if (opts.rateLimits) overrides.rateLimits = opts.rateLimits;
    if (Object.keys(overrides).length > 0) this.setSettings(overrides);
    this.apiRng = new Rng(this.settings.seed, 'api');
    const now = Date.now();
    for (const o of this.objects.values()) {
      if (o.pending) this.schedule(o.pending.at, o.id, 'pending');
      this.scheduleDoom(o, now);
    }
    this.log.info({ objects: this.objects.size, seq: this.seq, replayed: records.length }, 'sim-cloud state loaded');
  }

  /** Subnet address counters are not logged on every port: they restart past the highest address in use. */
  private restoreAllocations(): void {
    const inUse = (subnetId: unknown, address: unknown) => {
      const subnet = typeof subnetId === 'string' ? this.objects.get(subnetId) : undefined;
      const base = subnet ? parseCidr(subnet.doc.cidr) : undefined;
      const ip = typeof address === 'string' ? parseCidr(`${address}/32`) : undefined;
      if (subnet && base && ip) subnet.nextHost = Math.max(subnet.nextHost ?? 2, ip.net - base.net + 1);
    };
    for (const p of this.byKind.get('port')!.values()) for (const f of p.doc.fixed_ips ?? []) inUse(f.subnet_id, f.ip_address);
    for (const lb of this.byKind.get('loadbalancer')!.values()) inUse(lb.doc.vip_subnet_id, lb.doc.vip_address);
  }

  close(): void {
    this.flush();
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.wal.close();
    for (const l of this.listeners) this.listeners.delete(l);
  }

  // ---- persistence and change feed -------------------------------------------------------

  private replay(r: WalRecord): void {
    this.seq = r.seq;
    switch (r.op) {
      case 'put': {
        const old = this.objects.get(r.obj.id);
        if (old) this.remove(old);
        this.insert(r.obj);
        this.nextOrd = Math.max(this.nextOrd, r.obj.ord + 1);
        if (r.obj.key) {
          const ak = this.attemptKey(r.obj.tenant, r.obj.kind, r.obj.key);
          const n = Number(r.obj.identity.slice(r.obj.identity.lastIndexOf('#') + 1));
          if (Number.isFinite(n)) this.keyAttempts.set(ak, Math.max(this.keyAttempts.get(ak) ?? 0, n + 1));
        }
        break;
      }
      case 'del': {
        const old = this.objects.get(r.id);
        if (old) this.remove(old);
        break;
      }
      case 'settings':
        this.settings = r.settings;
        break;
      case 'reset':
        this.clearObjects();
        break;
    }
  }

  /** `objectJson`: the event's `object`, already serialised (it is added last). */
  private record(rec: WalBody, ev: Omit<ChangeEvent, 'seq' | 'at'> | undefined, objectJson?: string): void {
    if (this.closed) return;
    const at = Date.now();
    this.seq++;
    this.wal.append({ ...rec, seq: this.seq, at } as WalRecord);
    if (ev) {
      let json = JSON.stringify({ seq: this.seq, at: isoAt(at), ...ev });
      if (objectJson !== undefined) json = `${json.slice(0, -1)},"object":${objectJson}}`;
      const e: FeedEvent = { seq: this.seq, type: ev.type, json };
      if (ev.kind !== undefined) e.kind = ev.kind;
      if (ev.tenant !== undefined) e.tenant = ev.tenant;
      this.events.push(e);
      if (this.events.length > 2 * this.eventBuffer) {
        // Trim in chunks: one splice per eventBuffer events keeps appends O(1) amortised.
        const drop = this.events.length - this.eventBuffer;
        this.droppedUpTo = this.events[drop - 1]!.seq;
        this.events.splice(0, drop);
      }
      this.unflushed.push(e);
    }
    if (this.wal.records > Math.max(5000, 2 * this.objects.size)) {
      this.wal.compact(this.seq, {
        nextOrd: this.nextOrd,
        settings: this.settings,
        keyAttempts: Object.fromEntries(this.keyAttempts),
        objects: [...this.objects.values()],
      });
    }
    if (!this.flushQueued) {
      this.flushQueued = true;
      setImmediate(() => this.flush());
    }
  }

  /**
   * Writes the log records not yet written (one write(2)), then hands their events to the
   * followers. Queued once per turn in which something changed; the HTTP layer also calls it
   * before it sends a turn's answers, so an acknowledged change is written and a follower hears
   * of a change no later than the caller.
   */
  flush(): void {
    this.flushQueued = false;
    if (this.closed) return;
    this.wal.flush();
    if (this.unflushed.length === 0) return;
    const batch = this.unflushed;
    this.unflushed = [];
    for (const l of this.listeners) l(batch);
  }

  /**
   * Stores a changed object and publishes the change; returns the object as the API shows it
   * now, serialised (the event carries the same text, so a create answers without serialising
   * it again).
   */
  private commit(o: SimObject, type: 'created' | 'updated', previous?: string): string {
    o.doc.updated_at = isoAt(Date.now());
    if (o.kind === 'server') o.doc.updated = o.doc.updated_at;
    this.reindex(o);
    const json = JSON.stringify(this.render(o));
    this.record({ op: 'put', obj: o }, this.eventOf(o, type, previous), json);
    return json;
  }

  /** The event of a change, without its `object` (`commit` adds it). */
  private eventOf(o: SimObject, type: ChangeEvent['type'], previous?: string): Omit<ChangeEvent, 'seq' | 'at'> {
    const e: Omit<ChangeEvent, 'seq' | 'at'> = { type, kind: o.kind, id: o.id, tenant: o.tenant, status: statusOf(o) };
    if (LB_KINDS.has(o.kind)) e.operating_status = o.doc.operating_status;
    if (previous !== undefined) e.previous_status = previous;
    if (o.key !== undefined) e.key = o.key;
    return e;
  }

  /** Changes since `since`, or `gap` when some were dropped from the buffer (the client should relist). */
  eventsSince(since: number): { events: FeedEvent[]; gap: boolean; seq: number } {
    const gap = since > this.seq || since < this.droppedUpTo;
    let lo = 0;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.events[mid]!.seq <= since) lo = mid + 1;
      else hi = mid;
    }
    return { events: this.events.slice(lo), gap, seq: this.seq };
  }

  /** `fn` gets the events of each flush, in order. */
  subscribe(fn: (batch: FeedEvent[]) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  get lastSeq(): number {
    return this.seq;
  }

  setSettings(patch: Partial<Settings>): void {
    const seedChanged = patch.seed !== undefined && patch.seed !== this.settings.seed;
    this.settings = { ...this.settings, ...patch };
    this.record({ op: 'settings', settings: this.settings }, undefined);
    if (seedChanged) this.apiRng = new Rng(this.settings.seed, 'api');
    if (patch.faults) {
      // Rates changed: redraw every healthy object's next fault (memoryless, so this is fair).
      const now = Date.now();
      for (const o of this.objects.values()) this.scheduleDoom(o, now);
    }
  }

  // ---- indexes ----------------------------------------------------------------------------

  private insert(o: SimObject): void {
    this.objects.set(o.id, o);
    this.byKind.get(o.kind)!.set(o.id, o);
    if (o.key) this.byKey.set(this.keyOf(o.tenant, o.kind, o.key), o.id);
    this.reindex(o);
    this.addUsage(o, 1);
  }

  private remove(o: SimObject): void {
    this.objects.delete(o.id);
    if (o.key && this.byKey.get(this.keyOf(o.tenant, o.kind, o.key)) === o.id) this.byKey.delete(this.keyOf(o.tenant, o.kind, o.key));
    this.byKind.get(o.kind)!.delete(o.id);
    for (const r of this.indexedRefs.get(o.id) ?? []) this.referrers.get(r)?.get(o.kind)?.delete(o.id);
    this.indexedRefs.delete(o.id);
    this.dooms.delete(o.id);
    this.addUsage(o, -1);
  }

  private clearObjects(): void {
    this.objects.clear();
    this.byKey.clear();
    this.referrers.clear();
    for (const m of this.byKind.values()) m.clear();
    this.indexedRefs.clear();
    this.usage.clear();
    this.dooms.clear();
    this.heap.length = 0;
  }

  private keyOf(tenant: string, kind: Kind, key: string): string {
    return `${tenant}\u0000${kind}\u0000${key}`;
  }

  private attemptKey(tenant: string, kind: Kind, key: string): string {
    return `${tenant}/${kind}/${key}`;
  }

  private reindex(o: SimObject): void {
    const refs = refsOf(o);
    const old = this.indexedRefs.get(o.id) ?? [];
    if (old.length === refs.length && old.every((r, i) => r === refs[i])) return;
    for (const r of old) this.referrers.get(r)?.get(o.kind)?.delete(o.id);
    for (const r of refs) {
      let byKind = this.referrers.get(r);
      if (!byKind) this.referrers.set(r, (byKind = new Map()));
      let s = byKind.get(o.kind);
      if (!s) byKind.set(o.kind, (s = new Set()));
      s.add(o.id);
    }
    this.indexedRefs.set(o.id, refs);
  }

  private referring(id: string, kind?: Kind): SimObject[] {
    const out: SimObject[] = [];
    const byKind = this.referrers.get(id);
    if (!byKind) return out;
    for (const [k, ids] of byKind) {
      if (kind !== undefined && k !== kind) continue;
      for (const rid of ids) {
        const o = this.objects.get(rid);
        if (o) out.push(o);
      }
    }
    return out.length > 1 ? out.sort((a, b) => a.ord - b.ord) : out;
  }

  private addUsage(o: SimObject, sign: 1 | -1): void {
    let u = this.usage.get(o.tenant);
    if (!u) this.usage.set(o.tenant, (u = new Map()));
    const add = (k: string, n: number) => u.set(k, (u.get(k) ?? 0) + sign * n);
    add(KIND_API[o.kind].quota, 1);
    if (o.kind === 'server') {
      add('cores', Number(o.doc.flavor?.vcpus ?? 0));
      add('ram', Number(o.doc.flavor?.ram ?? 0));
    }
    if (o.kind === 'volume') add('gigabytes', Number(o.doc.size ?? 0));
  }

  // ---- timers -----------------------------------------------------------------------------

  private schedule(at: number, id: string, what: 'pending' | 'doom'): void {
    if (this.heap.length > 4 * this.objects.size + 1000) this.rebuildHeap();
    const h = this.heap;
    h.push({ at, id, what });
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.at <= h[i]!.at) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
    this.arm();
  }

  /** Drops stale entries (superseded transitions and redrawn faults), which are otherwise only skipped when due. */
  private rebuildHeap(): void {
    const live: { at: number; id: string; what: 'pending' | 'doom' }[] = [];
    for (const o of this.objects.values()) if (o.pending) live.push({ at: o.pending.at, id: o.id, what: 'pending' });
    for (const [id, d] of this.dooms) live.push({ at: d.at, id, what: 'doom' });
    live.sort((x, y) => x.at - y.at);
    this.heap.length = 0;
    for (const e of live) this.heap.push(e);
  }

  private pop(): { at: number; id: string; what: 'pending' | 'doom' } | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]!.at < h[m]!.at) m = l;
        if (r < h.length && h[r]!.at < h[m]!.at) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }

  private arm(): void {
    if (this.closed) return;
    const next = this.heap[0]?.at ?? Infinity;
    if (next >= this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = next;
    // Timers beyond ~24 days overflow setTimeout; such dooms are re-armed when nearer ones fire.
    this.timer = setTimeout(() => this.fire(), Math.min(Math.max(0, next - Date.now()), 2 ** 31 - 1));
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = Date.now();
    while (this.heap.length > 0 && this.heap[0]!.at <= now && !this.closed) {
      const e = this.pop()!;
      const o = this.objects.get(e.id);
      if (!o) continue;
      try {
        if (e.what === 'pending' && o.pending?.at === e.at) {
          const to = o.pending.to;
          delete o.pending;
          this.complete(o, to);
        } else if (e.what === 'doom' && this.dooms.get(o.id)?.at === e.at) {
          const what = this.dooms.get(o.id)!.what;
          this.dooms.delete(o.id);
          this.strike(o, what);
        }
      } catch (err) {
        this.log.error({ err, id: o.id, kind: o.kind }, 'sim-cloud transition failed');
      }
    }
    this.arm();
  }

  private latency(o: SimObject, key: LatencyKey): number {
    const d = this.settings.latency[key] ?? this.settings.latency.default ?? DEFAULT_LATENCY.default!;
    return Math.max(0, Math.round(this.rngFor(o).sample(d)));
  }

  private rngFor(o: SimObject): Rng {
    return new Rng(this.settings.seed, o.identity, o.draws++);
  }

  private startTransition(o: SimObject, to: string, key: LatencyKey): void {
    const at = Date.now() + this.latency(o, key);
    o.pending = { at, to };
    this.schedule(at, o.id, 'pending');
  }

  // ---- faults over time ------------------------------------------------------------------

  private scheduleDoom(o: SimObject, now: number): void {
    this.dooms.delete(o.id);
    const f = this.settings.faults;
    const st = statusOf(o);
    const risks: [string, number][] = [];
    if (o.kind === 'server' && st === 'ACTIVE') risks.push(['error', f.serverErrorRate], ['vanish', f.serverVanishRate]);
    else if (o.kind === 'port' && !o.fault) risks.push(['unreachable', f.portUnreachableRate]);
    else if (o.kind === 'volume' && (st === 'available' || st === 'in-use')) risks.push(['offline', f.volumeOfflineRate]);
    else if (o.kind === 'member' && st === 'ACTIVE' && o.doc.operating_status !== 'ERROR') risks.push(['member-down', f.memberDownRate]);
    let best: { at: number; what: string } | undefined;
    for (const [what, rate] of risks) {
      if (rate <= 0) continue;
      const at = now + this.rngFor(o).exponentialMs(rate);
      if (!best || at < best.at) best = { at, what };
    }
    if (best && Number.isFinite(best.at)) {
      this.dooms.set(o.id, best);
      this.schedule(best.at, o.id, 'doom');
    }
  }

  /** Object faults that struck, by kind (`vanish`, `error`, `boot-error`, ...), for tests and benchmarks. */
  private countStrike(what: string): void {
    this.stats.injected.struck[what] = (this.stats.injected.struck[what] ?? 0) + 1;
  }

  private strike(o: SimObject, what: string): void {
    const prev = statusOf(o);
    this.log.info({ kind: o.kind, id: o.id, fault: what }, 'sim-cloud fault strikes');
    this.countStrike(what);
    switch (what) {
      case 'error':
        this.setServerError(o, 'Instance failed (injected fault)');
        this.commit(o, 'updated', prev);
        break;
      case 'vanish':
        this.destroy(o);
        break;
      case 'unreachable':
        o.fault = 'unreachable';
        o.doc.status = 'DOWN';
        o.doc['binding:vif_type'] = 'binding_failed';
        this.commit(o, 'updated', prev);
        break;
      case 'offline':
        o.doc.status = 'error';
        this.commit(o, 'updated', prev);
        break;
      case 'member-down':
        o.doc.operating_status = 'ERROR';
        this.commit(o, 'updated', prev);
        break;
    }
  }

  // ---- API-level faults and limits ---------------------------------------------------------

  /** Decides the fate of one cloud API call before it runs: extra delay, or a refusal. */
  admit(tenant: string, statKey: string): { delayMs: number; refuse?: ApiError } {
    this.stats.calls[statKey] = (this.stats.calls[statKey] ?? 0) + 1;
    const f = this.settings.faults;
    const limit = this.settings.rateLimits.tenants?.[tenant] ?? (this.settings.rateLimits.perSecond ? this.settings.rateLimits : undefined);
    if (limit?.perSecond && limit.perSecond > 0) {
      const burst = limit.burst ?? limit.perSecond;
      const now = Date.now();
      const b = this.buckets.get(tenant) ?? { tokens: burst, last: now };
      b.tokens = Math.min(burst, b.tokens + ((now - b.last) / 1000) * limit.perSecond);
      b.last = now;
      this.buckets.set(tenant, b);
      if (b.tokens < 1) {
        this.stats.rateLimited++;
        const wait = Math.max(1, Math.ceil((1 - b.tokens) / limit.perSecond));
        return { delayMs: 0, refuse: new ApiError(429, 'OverLimit', `Rate limit exceeded for project ${tenant}; retry after ${wait} s.`, wait) };
      }
      b.tokens -= 1;
    }
    const u = this.apiRng.next();
    if (u < f.apiThrottleShare) {
      this.stats.injected.throttled++;
      return { delayMs: 0, refuse: new ApiError(429, 'OverLimit', 'Too many requests (injected fault).', Math.max(1, Math.ceil(f.retryAfterSeconds))) };
    }
    if (u < f.apiThrottleShare + f.apiErrorShare) {
      this.stats.injected.errors++;
      return { delayMs: 0, refuse: new ApiError(this.apiRng.next() < 0.5 ? 500 : 503, 'ServiceUnavailable', 'The service is unavailable (injected fault).') };
    }
    let delayMs = 0;
    const api = this.settings.latency.api;
    if (api) delayMs += Math.round(this.apiRng.sample(api));
    if (f.slowCallShare > 0 && this.apiRng.next() < f.slowCallShare) {
      this.stats.injected.slow++;
      delayMs += f.slowCallMs;
    }
    return { delayMs };
  }

  /** After a create or an action (attach/detach, router interface change) succeeded: answer with a 5xx anyway (it happened; counted in `errorsAfterCreate`). */
  failAfter(what: 'create' | 'action'): ApiError | undefined {
    const share = what === 'action' ? this.settings.faults.apiErrorAfterActionShare : this.settings.faults.apiErrorAfterCreateShare;
    if (share > 0 && this.apiRng.next() < share) {
      this.stats.injected.errorsAfterCreate++;
      return new ApiError(500, 'InternalServerError', 'Unexpected error while handling the request (injected fault, the request may have been carried out).');
    }
    return undefined;
  }

  countResponse(status: number): void {
    this.stats.responses[status] = (this.stats.responses[status] ?? 0) + 1;
  }

  resetStats(): void {
    this.stats.calls = {};
    this.stats.responses = {};
    this.stats.injected = { errors: 0, errorsAfterCreate: 0, throttled: 0, slow: 0, struck: {} };
    this.stats.rateLimited = 0;
    this.stats.quotaRefused = 0;
  }

  private quotaLimit(tenant: string, name: string): number {
    const q = (this.settings.quotas.tenants?.[tenant] ?? {}) as Partial<Record<string, number>>;
    const d = (this.settings.quotas.default ?? {}) as Partial<Record<string, number>>;
    return q[name] ?? d[name] ?? -1;
  }

  private checkQuota(tenant: string, kind: Kind, wants: Record<string, number>): void {
    const u = this.usage.get(tenant);
    for (const [name, n] of Object.entries(wants)) {
      const limit = this.quotaLimit(tenant, name);
      if (limit < 0) continue;
      const used = u?.get(name) ?? 0;
      if (used + n > limit) {
        this.stats.quotaRefused++;
        const msg = `Quota exceeded for ${name}: Requested ${n}, but already used ${used} of ${limit} ${name}.`;
        const service = KIND_API[kind].service;
        if (service === 'network') throw new ApiError(409, 'OverQuota', `Quota exceeded for resources: ['${kind}'].`);
        if (service === 'volume') throw new ApiError(413, 'VolumeLimitExceeded', `VolumeLimitExceeded: ${msg}`);
        throw new ApiError(403, 'QuotaExceeded', msg);
      }
    }
  }

  quotaReport(tenant: string): Record<string, { limit: number; in_use: number }> {
    const out: Record<string, { limit: number; in_use: number }> = {};
    const names: (keyof Quota)[] = ['instances', 'cores', 'ram', 'volumes', 'gigabytes', 'networks', 'subnets', 'ports', 'routers', 'floatingips', 'security_groups', 'loadbalancers', 'listeners', 'pools', 'members', 'healthmonitors'];
    for (const n of names) out[n] = { limit: this.quotaLimit(tenant, n), in_use: this.usage.get(tenant)?.get(n) ?? 0 };
    return out;
  }

  // ---- reading ----------------------------------------------------------------------------

  find(kind: Kind, tenant: string, id: string): SimObject {
    const o = this.objects.get(id);
    if (!o || o.kind !== kind || o.tenant !== tenant) throw notFound(kind, id);
    return o;
  }

  byIdempotencyKey(kind: Kind, tenant: string, key: string): SimObject | undefined {
    const id = this.byKey.get(this.keyOf(tenant, kind, key));
    return id === undefined ? undefined : this.objects.get(id);
  }

  list(kind: Kind, tenant: string, query: URLSearchParams, parent?: string): Doc[] {
    const tags = query.get('tags')?.split(',').filter(Boolean) ?? [];
    const tagsAny = query.get('tags-any')?.split(',').filter(Boolean) ?? [];
    const key = query.get('idempotency_key') ?? undefined;
    const fieldFilters: [string, string][] = [];
    for (const [k, v] of query) if (!LIST_RESERVED.has(k)) fieldFilters.push([k, v]);
    let candidates: Iterable<SimObject>;
    if (key !== undefined) {
      const o = this.byIdempotencyKey(kind, tenant, key);
      candidates = o ? [o] : [];
    } else {
      // A filter on a reference field (`?device_id=`, `?network_id=`) reads the reverse index
      // instead of walking every object of the kind.
      const indexed = fieldFilters.find(([k]) => REF_FIELDS[kind]?.includes(k));
      candidates = indexed ? this.referring(indexed[1], kind) : this.byKind.get(kind)!.values();
    }
    // Pages run in creation order: the page after `marker` holds what was created after it.
    let after = -Infinity;
    const marker = query.get('marker');
    if (marker !== null) {
      const m = this.objects.get(marker);
      if (!m || m.kind !== kind || m.tenant !== tenant || (parent !== undefined && m.doc.pool_id !== parent)) return [];
      after = m.ord;
    }
    let out: SimObject[] = [];
    for (const o of candidates) {
      if (o.tenant !== tenant || o.ord <= after) continue;
      if (parent !== undefined && o.doc.pool_id !== parent) continue;
      const dt: string[] = o.doc.tags ?? [];
      if (!tags.every((t) => dt.includes(t))) continue;
      if (tagsAny.length > 0 && !tagsAny.some((t) => dt.includes(t))) continue;
      if (!fieldFilters.every(([k, v]) => scalarMatches(this.listField(o, k), v))) continue;
      out.push(o);
    }
    if (out.length > 1) out.sort((a, b) => a.ord - b.ord);
    const limit = Number(query.get('limit') ?? Infinity);
    if (out.length > limit) out = out.slice(0, Math.max(1, limit));
    return out.map((o) => this.render(o));
  }

  /** A field as a list filter sees it: stored, or derived by `render` for the few scalar derived fields. */
  private listField(o: SimObject, field: string): unknown {
    if (field === 'id') return o.id;
    if ((o.kind === 'pool' && field === 'healthmonitor_id') || (o.kind === 'listener' && field === 'default_pool_id')) return this.render(o)[field];
    return o.doc[field];
  }

  inventory(filter: { tenant?: string; kind?: string }): InventoryItem[] {
    const out: InventoryItem[] = [];
    const objs = [...this.objects.values()].sort((a, b) => a.ord - b.ord);
    for (const o of objs) {
      if (filter.tenant && o.tenant !== filter.tenant) continue;
      if (filter.kind && o.kind !== filter.kind) continue;
      const item: InventoryItem = { kind: o.kind, id: o.id, tenant: o.tenant, name: String(o.doc.name ?? ''), status: statusOf(o), tags: [...(o.doc.tags ?? [])] };
      if (LB_KINDS.has(o.kind)) item.operating_status = o.doc.operating_status;
      if (o.key !== undefined) item.key = o.key;
      if (o.implicit) item.implicit = true;
      if (o.kind === 'member') item.parent = o.doc.pool_id;
      if (o.pending) item.transition = { to: o.pending.to, at: new Date(o.pending.at).toISOString() };
      out.push(item);
    }
    return out;
  }

  /** The object as the API shows it: stored document plus fields derived from other objects. */
  render(o: SimObject): Doc {
    const d: Doc = { ...o.doc, id: o.id };
    switch (o.kind) {
      case 'server': {
        const addresses: Record<string, Doc[]> = {};
        for (const p of this.referring(o.id, 'port')) {
          const net = this.objects.get(p.doc.network_id);
          const name = String(net?.doc.name || p.doc.network_id);
          for (const ip of p.doc.fixed_ips ?? []) {
            (addresses[name] ??= []).push({ addr: ip.ip_address, version: 4, 'OS-EXT-IPS:type': 'fixed', 'OS-EXT-IPS-MAC:mac_addr': p.doc.mac_address });
          }
        }
        d.addresses = addresses;
        d['os-extended-volumes:volumes_attached'] = this.referring(o.id, 'volume').map((v) => ({ id: v.id, delete_on_termination: false }));
        break;
      }
      case 'network':
        d.subnets = this.referring(o.id, 'subnet').map((s) => s.id);
        break;
      case 'loadbalancer':
        d.listeners = this.referring(o.id, 'listener').map((x) => ({ id: x.id }));
        d.pools = this.referring(o.id, 'pool').map((x) => ({ id: x.id }));
        break;
      case 'pool':
        d.members = this.referring(o.id, 'member').map((x) => ({ id: x.id }));
        d.healthmonitor_id = this.referring(o.id, 'healthmonitor')[0]?.id ?? null;
        break;
      case 'listener':
        d.default_pool_id = d.default_pool_id ?? this.referring(o.id, 'pool')[0]?.id ?? null;
        break;
      default:
        break;
    }
    return d;
  }

  // ---- creating ---------------------------------------------------------------------------

  /**
   * Creates an object, or returns the live one created earlier with the same idempotency key
   * (header, `kiln:key=` tag, or `kiln:key` metadata) for this tenant and kind: as the API
   * shows it, serialised.
   */
  create(kind: Kind, tenant: string, body: Doc, headerKey?: string): { json: string; replay: boolean } {
    const key = headerKey || keyFromBody(body);
    if (key) {
      const existing = this.byIdempotencyKey(kind, tenant, key);
      if (existing) return { json: JSON.stringify(this.render(existing)), replay: true };
    }
    const ord = this.nextOrd++;
    let identity = `ord#${ord}`;
    if (key) {
      const ak = this.attemptKey(tenant, kind, key);
      const n = this.keyAttempts.get(ak) ?? 0;
      this.keyAttempts.set(ak, n + 1);
      identity = `${ak}#${n}`;
    }
    const now = isoAt(Date.now());
    const o: SimObject = {
      kind,
      id: new Rng(this.settings.seed, 'id', ord).uuid(),
      tenant,
      ord,
      identity,
      draws: 0,
      doc: { ...stripProtected(body), tenant_id: tenant, project_id: tenant, created_at: now, updated_at: now },
    };
    if (key) {
      o.key = key;
      const tags: string[] = Array.isArray(o.doc.tags) ? o.doc.tags.map(String) : [];
      if (!tags.includes(KEY_TAG_PREFIX + key)) tags.push(KEY_TAG_PREFIX + key);
      o.doc.tags = tags;
    } else if (!Array.isArray(o.doc.tags)) o.doc.tags = [];
    this.prepare(o);
    this.insert(o);
    const json = this.commit(o, 'created');
    this.scheduleDoom(o, Date.now());
    return { json, replay: false };
  }

  /** Validates references, checks quota, fills defaults and starts the build transition. */
  private prepare(o: SimObject): void {
    const d = o.doc;
    const t = o.tenant;
    const need = (...fields: string[]) => {
      for (const f of fields) if (d[f] === undefined || d[f] === null || d[f] === '') throw badRequest(`Invalid input for field/attribute ${f}. Value: None. A value is required.`);
    };
    const ref = (kind: Kind, id: unknown, field: string): SimObject => {
      const r = typeof id === 'string' ? this.objects.get(id) : undefined;
      if (!r || r.kind !== kind || r.tenant !== t) {
        throw new ApiError(KIND_API[o.kind].service === 'compute' ? 400 : 404, `${cap(kind)}NotFound`, `${cap(kind)} ${String(id)} could not be found (${field}).`);
      }
      return r;
    };
    switch (o.kind) {
      case 'server': {
        need('name', 'flavorRef');
        const flavor = FLAVORS.find((f) => f.id === String(d.flavorRef) || f.name === String(d.flavorRef));
        if (!flavor) throw badRequest(`Flavor ${String(d.flavorRef)} could not be found.`);
        const image = d.imageRef ? IMAGES.find((i) => i.id === String(d.imageRef) || i.name === String(d.imageRef)) : undefined;
        if (d.imageRef && !image) throw badRequest(`Image ${String(d.imageRef)} could not be found.`);
        if (!d.imageRef && !Array.isArray(d.block_device_mapping_v2)) throw badRequest('Missing imageRef attribute');
        const nets: Doc[] = Array.isArray(d.networks) ? d.networks : [];
        const ports = nets.map((n, i) => {
          if (n.port) {
            const p = ref('port', n.port, `networks[${i}].port`);
            if (p.doc.device_id) throw conflict('PortInUse', `Port ${p.id} is still in use.`);
            return p;
          }
          return ref('network', n.uuid, `networks[${i}].uuid`);
        });
        this.checkQuota(t, 'server', { instances: 1, cores: flavor.vcpus, ram: flavor.ram });
        const metadata: Record<string, string> = { ...(d.metadata ?? {}) };
        if (o.key) metadata[KEY_METADATA] = o.key;
        Object.assign(d, {
          status: 'BUILD',
          metadata,
          flavor: flavorDoc(flavor),
          image: image ? { id: image.id } : '',
          user_id: 'kiln',
          hostId: '',
          progress: 0,
          key_name: d.key_name ?? null,
          security_groups: Array.isArray(d.security_groups) ? d.security_groups : [{ name: 'default' }],
          'OS-EXT-STS:task_state': 'spawning',
          'OS-EXT-STS:vm_state': 'building',
          'OS-EXT-STS:power_state': 0,
          'OS-EXT-AZ:availability_zone': d.availability_zone ?? 'nova',
          'OS-EXT-SRV-ATTR:user_data': d.user_data ?? null,
          created: d.created_at,
          updated: d.created_at,
        });
        delete d.user_data;
        delete d.flavorRef;
        delete d.imageRef;
        delete d.networks;
        // Boot the ports now: a Nova server owns a port on each network it was given by uuid.
        for (const p of ports) {
          const port = p.kind === 'port' ? p : this.implicitPort(t, p, o.id, 'compute:nova');
          if (p.kind === 'port') {
            port.doc.device_id = o.id;
            port.doc.device_owner = 'compute:nova';
            this.commit(port, 'updated', statusOf(port));
          }
        }
        const r = this.rngFor(o).next();
        const f = this.settings.faults;
        if (r < f.serverBuildStuck) o.fault = 'stuck';
        else if (r < f.serverBuildStuck + f.serverBootError) o.fault = 'boot-error';
        if (o.fault) this.countStrike(o.fault);
        if (o.fault !== 'stuck') this.startTransition(o, o.fault === 'boot-error' ? 'ERROR' : 'ACTIVE', 'server');
        break;
      }
      case 'network':
        this.checkQuota(t, 'network', { networks: 1 });
        Object.assign(d, { status: 'BUILD', admin_state_up: d.admin_state_up ?? true, shared: d.shared ?? false, 'router:external': d['router:external'] ?? false, mtu: d.mtu ?? 1450, port_security_enabled: d.port_security_enabled ?? true, name: d.name ?? '' });
        this.startTransition(o, 'ACTIVE', 'network');
        break;
      case 'subnet': {
        need('network_id', 'cidr');
        ref('network', d.network_id, 'network_id');
        const base = parseCidr(d.cidr);
        if (!base || base.size < 4) throw badRequest(`Invalid input for cidr. Reason: '${String(d.cidr)}' is not a valid IPv4 CIDR.`);
        this.checkQuota(t, 'subnet', { subnets: 1 });
        Object.assign(d, {
          ip_version: 4,
          name: d.name ?? '',
          enable_dhcp: d.enable_dhcp ?? true,
          gateway_ip: d.gateway_ip === undefined ? intToIp(base.net + 1) : d.gateway_ip,
          allocation_pools: d.allocation_pools ?? [{ start: intToIp(base.net + 2), end: intToIp(base.net + base.size - 2) }],
          dns_nameservers: d.dns_nameservers ?? [],
          host_routes: d.host_routes ?? [],
        });
        o.nextHost = 2;
        break;
      }
      case 'port': {
        need('network_id');
        const net = ref('network', d.network_id, 'network_id');
        this.checkQuota(t, 'port', { ports: 1 });
        for (const sg of d.security_groups ?? []) ref('security_group', sg, 'security_groups');
        this.fillPort(o, net);
        if (this.rngFor(o).next() < this.settings.faults.portUnreachable) this.makeUnreachable(o);
        break;
      }
      case 'router':
        this.checkQuota(t, 'router', { routers: 1 });
        if (d.external_gateway_info?.network_id) ref('network', d.external_gateway_info.network_id, 'external_gateway_info.network_id');
        Object.assign(d, { status: 'BUILD', name: d.name ?? '', admin_state_up: d.admin_state_up ?? true, external_gateway_info: d.external_gateway_info ?? null, routes: d.routes ?? [] });
        this.startTransition(o, 'ACTIVE', 'router');
        break;
      case 'floatingip': {
        need('floating_network_id');
        ref('network', d.floating_network_id, 'floating_network_id');
        this.checkQuota(t, 'floatingip', { floatingips: 1 });
        const port = d.port_id ? ref('port', d.port_id, 'port_id') : undefined;
        Object.assign(d, {
          floating_ip_address: d.floating_ip_address ?? intToIp(0xac180400 + (o.ord % 65000) + 2),
          fixed_ip_address: port ? (port.doc.fixed_ips?.[0]?.ip_address ?? null) : null,
          port_id: port?.id ?? null,
          router_id: null,
          status: port ? 'ACTIVE' : 'DOWN',
          description: d.description ?? '',
        });
        break;
      }
      case 'security_group':
        this.checkQuota(t, 'security_group', { security_groups: 1 });
        Object.assign(d, { name: d.name ?? '', description: d.description ?? '' });
        d.security_group_rules = (Array.isArray(d.security_group_rules) ? d.security_group_rules : [
          { direction: 'egress', ethertype: 'IPv4' },
          { direction: 'egress', ethertype: 'IPv6' },
        ]).map((r: Doc, i: number) => ({ id: `${o.id}-r${i}`, security_group_id: o.id, protocol: null, port_range_min: null, port_range_max: null, remote_ip_prefix: null, remote_group_id: null, ...r }));
        break;
      case 'volume': {
        need('size');
        const size = Number(d.size);
        if (!Number.isInteger(size) || size < 1) throw badRequest(`Invalid input received: size ${String(d.size)} must be an integer greater than 0.`);
        this.checkQuota(t, 'volume', { volumes: 1, gigabytes: size });
        const metadata: Record<string, string> = { ...(d.metadata ?? {}) };
        if (o.key) metadata[KEY_METADATA] = o.key;
        Object.assign(d, { size, status: 'creating', name: d.name ?? null, description: d.description ?? null, metadata, attachments: [], bootable: d.imageRef ? 'true' : 'false', multiattach: false, volume_type: d.volume_type ?? '__DEFAULT__', availability_zone: d.availability_zone ?? 'nova', 'os-vol-tenant-attr:tenant_id': t });
        if (this.rngFor(o).next() < this.settings.faults.volumeCreateError) o.fault = 'create-error';
        if (o.fault) this.countStrike(o.fault);
        this.startTransition(o, o.fault ? 'error' : 'available', 'volume');
        break;
      }
      case 'loadbalancer': {
        if (!d.vip_subnet_id && !d.vip_network_id && !d.vip_port_id) throw badRequest('Validation failure: VIP must contain one of: vip_port_id, vip_network_id, vip_subnet_id.');
        const subnet = d.vip_subnet_id ? ref('subnet', d.vip_subnet_id, 'vip_subnet_id') : undefined;
        if (d.vip_network_id) ref('network', d.vip_network_id, 'vip_network_id');
        this.checkQuota(t, 'loadbalancer', { loadbalancers: 1 });
        Object.assign(d, { name: d.name ?? '', admin_state_up: d.admin_state_up ?? true, provider: d.provider ?? 'amphora', vip_address: d.vip_address ?? (subnet ? this.allocateIp(subnet) : intToIp(0x0a640000 + (o.ord % 65000))), vip_network_id: d.vip_network_id ?? subnet?.doc.network_id ?? null });
        this.lbPending(o, 'loadbalancer');
        break;
      }
      case 'listener': {
        need('loadbalancer_id', 'protocol', 'protocol_port');
        ref('loadbalancer', d.loadbalancer_id, 'loadbalancer_id');
        this.checkQuota(t, 'listener', { listeners: 1 });
        Object.assign(d, { name: d.name ?? '', admin_state_up: d.admin_state_up ?? true, connection_limit: d.connection_limit ?? -1, loadbalancers: [{ id: d.loadbalancer_id }] });
        this.lbPending(o, 'listener');
        break;
      }
      case 'pool': {
        need('lb_algorithm', 'protocol');
        if (!d.loadbalancer_id && !d.listener_id) throw badRequest('Validation failure: either loadbalancer_id or listener_id must be specified.');
        if (d.listener_id) {
          const l = ref('listener', d.listener_id, 'listener_id');
          d.loadbalancer_id = d.loadbalancer_id ?? l.doc.loadbalancer_id;
        }
        ref('loadbalancer', d.loadbalancer_id, 'loadbalancer_id');
        this.checkQuota(t, 'pool', { pools: 1 });
        Object.assign(d, { name: d.name ?? '', admin_state_up: d.admin_state_up ?? true, session_persistence: d.session_persistence ?? null, listener_id: d.listener_id ?? null, loadbalancers: [{ id: d.loadbalancer_id }], listeners: d.listener_id ? [{ id: d.listener_id }] : [] });
        this.lbPending(o, 'pool');
        break;
      }
      case 'member': {
        need('pool_id', 'address', 'protocol_port');
        ref('pool', d.pool_id, 'pool_id');
        if (d.subnet_id) ref('subnet', d.subnet_id, 'subnet_id');
        this.checkQuota(t, 'member', { members: 1 });
        Object.assign(d, { name: d.name ?? '', admin_state_up: d.admin_state_up ?? true, weight: d.weight ?? 1, backup: d.backup ?? false, subnet_id: d.subnet_id ?? null });
        this.lbPending(o, 'member');
        break;
      }
      case 'healthmonitor': {
        need('pool_id', 'type', 'delay', 'timeout', 'max_retries');
        ref('pool', d.pool_id, 'pool_id');
        if (this.referring(d.pool_id, 'healthmonitor').length > 0) throw conflict('Duplicate', `Pool ${String(d.pool_id)} already has a health monitor.`);
        this.checkQuota(t, 'healthmonitor', { healthmonitors: 1 });
        Object.assign(d, { name: d.name ?? '', admin_state_up: d.admin_state_up ?? true, max_retries_down: d.max_retries_down ?? 3, pools: [{ id: d.pool_id }] });
        this.lbPending(o, 'healthmonitor');
        break;
      }
    }
  }

  private lbPending(o: SimObject, key: LatencyKey): void {
    o.doc.provisioning_status = 'PENDING_CREATE';
    o.doc.operating_status = 'OFFLINE';
    this.startTransition(o, 'ACTIVE', key);
  }

  private fillPort(o: SimObject, net: SimObject): void {
    const d = o.doc;
    const fixed: Doc[] = [];
    if (Array.isArray(d.fixed_ips) && d.fixed_ips.length > 0) {
      for (const [i, f] of (d.fixed_ips as Doc[]).entries()) {
        const subnet = f.subnet_id ? this.objects.get(f.subnet_id) : this.referring(net.id, 'subnet')[0];
        if (!subnet || subnet.kind !== 'subnet' || subnet.doc.network_id !== net.id) throw badRequest(`Invalid input for fixed_ips[${i}]: subnet ${String(f.subnet_id)} is not on network ${net.id}.`);
        fixed.push({ subnet_id: subnet.id, ip_address: f.ip_address ?? this.allocateIp(subnet) });
      }
    } else {
      const subnet = this.referring(net.id, 'subnet')[0];
      if (subnet) fixed.push({ subnet_id: subnet.id, ip_address: this.allocateIp(subnet) });
    }
    const mac = `fa:16:3e:${[16, 8, 0].map((s) => ((o.ord >> s) & 0xff).toString(16).padStart(2, '0')).join(':')}`;
    Object.assign(d, {
      name: d.name ?? '',
      fixed_ips: fixed,
      mac_address: d.mac_address ?? mac,
      device_id: d.device_id ?? '',
      device_owner: d.device_owner ?? '',
      status: 'DOWN',
      admin_state_up: d.admin_state_up ?? true,
      security_groups: d.security_groups ?? [],
      allowed_address_pairs: d.allowed_address_pairs ?? [],
      port_security_enabled: d.port_security_enabled ?? true,
      'binding:vif_type': 'unbound',
    });
  }

  private allocateIp(subnet: SimObject): string {
    const base = parseCidr(subnet.doc.cidr)!;
    // Not logged: a restart recomputes the counter from the ports (see restoreAllocations).
    const host = subnet.nextHost ?? 2;
    subnet.nextHost = host + 1;
    return intToIp(base.net + (host % Math.max(1, base.size - 2)));
  }

  private makeUnreachable(o: SimObject): void {
    this.countStrike('unreachable');
    o.fault = 'unreachable';
    o.doc.status = 'DOWN';
    o.doc['binding:vif_type'] = 'binding_failed';
  }

  /** A port the cloud creates on someone's behalf (server NIC on a network, router interface). */
  private implicitPort(tenant: string, net: SimObject, deviceId: string, owner: string, subnetId?: string): SimObject {
    const ord = this.nextOrd++;
    const now = isoAt(Date.now());
    const p: SimObject = {
      kind: 'port',
      id: new Rng(this.settings.seed, 'id', ord).uuid(),
      tenant,
      ord,
      identity: `ord#${ord}`,
      draws: 0,
      implicit: true,
      doc: { network_id: net.id, device_id: deviceId, device_owner: owner, tags: [], tenant_id: tenant, project_id: tenant, created_at: now, updated_at: now },
    };
    if (subnetId) p.doc.fixed_ips = [{ subnet_id: subnetId }];
    this.fillPort(p, net);
    if (this.rngFor(p).next() < this.settings.faults.portUnreachable) this.makeUnreachable(p);
    this.insert(p);
    this.commit(p, 'created');
    this.scheduleDoom(p, Date.now());
    return p;
  }

  // ---- transitions ------------------------------------------------------------------------

  private complete(o: SimObject, to: string): void {
    const prev = statusOf(o);
    if (to === 'deleted') {
      this.destroy(o);
      return;
    }
    switch (o.kind) {
      case 'server':
        if (to === 'ERROR') this.setServerError(o, 'No valid host was found. There are not enough hosts available.');
        else {
          Object.assign(o.doc, { status: 'ACTIVE', progress: 100, hostId: `host-${o.ord % 97}`, 'OS-EXT-STS:task_state': null, 'OS-EXT-STS:vm_state': 'active', 'OS-EXT-STS:power_state': 1 });
          if (!o.doc.launched_at) o.doc['OS-SRV-USG:launched_at'] = new Date().toISOString();
          for (const p of this.referring(o.id, 'port')) {
            if (p.fault === 'unreachable') continue;
            const pp = statusOf(p);
            p.doc.status = 'ACTIVE';
            p.doc['binding:vif_type'] = 'ovs';
            this.commit(p, 'updated', pp);
          }
        }
        break;
      case 'volume':
        if (to === 'detached') {
          o.doc.status = o.doc.status === 'error' ? 'error' : 'available';
          o.doc.attachments = [];
        } else o.doc.status = to;
        break;
      default:
        if (LB_KINDS.has(o.kind)) {
          o.doc.provisioning_status = to;
          o.doc.operating_status = 'ONLINE';
        } else o.doc.status = to;
    }
    this.commit(o, 'updated', prev);
    this.scheduleDoom(o, Date.now());
  }

  private setServerError(o: SimObject, message: string): void {
    Object.assign(o.doc, { status: 'ERROR', 'OS-EXT-STS:task_state': null, 'OS-EXT-STS:vm_state': 'error', 'OS-EXT-STS:power_state': 0, fault: { code: 500, message, created: new Date().toISOString() } });
  }

  /** Removes an object for good, with what goes with it, and publishes the deletes. */
  private destroy(o: SimObject): void {
    if (!this.objects.has(o.id)) return;
    switch (o.kind) {
      case 'server':
        for (const p of this.referring(o.id, 'port')) {
          if (p.implicit) this.destroy(p);
          else {
            const prev = statusOf(p);
            Object.assign(p.doc, { device_id: '', device_owner: '', status: p.fault === 'unreachable' ? 'DOWN' : 'DOWN', 'binding:vif_type': p.fault === 'unreachable' ? 'binding_failed' : 'unbound' });
            this.commit(p, 'updated', prev);
          }
        }
        for (const v of this.referring(o.id, 'volume')) {
          const prev = statusOf(v);
          v.doc.attachments = [];
          if (v.doc.status !== 'error') v.doc.status = 'available';
          delete v.pending;
          this.commit(v, 'updated', prev);
          this.scheduleDoom(v, Date.now());
        }
        break;
      case 'port':
        for (const f of this.referring(o.id, 'floatingip')) {
          const prev = statusOf(f);
          Object.assign(f.doc, { port_id: null, fixed_ip_address: null, status: 'DOWN' });
          this.commit(f, 'updated', prev);
        }
        break;
      case 'network':
        for (const s of this.referring(o.id, 'subnet')) this.destroy(s);
        break;
      case 'loadbalancer':
        for (const c of [...this.referring(o.id, 'listener'), ...this.referring(o.id, 'pool')]) this.destroy(c);
        break;
      case 'pool':
        for (const c of [...this.referring(o.id, 'member'), ...this.referring(o.id, 'healthmonitor')]) this.destroy(c);
        break;
      default:
        break;
    }
    this.remove(o);
    this.record({ op: 'del', id: o.id }, this.eventOf(o, 'deleted', statusOf(o)));
  }

  // ---- changing and deleting --------------------------------------------------------------

  update(kind: Kind, tenant: string, id: string, patch: Doc): Doc {
    const o = this.find(kind, tenant, id);
    if (LB_KINDS.has(kind) && String(o.doc.provisioning_status).startsWith('PENDING_')) {
      throw conflict('ImmutableObject', `${cap(kind)} ${id} is immutable and cannot be updated while ${String(o.doc.provisioning_status)}.`);
    }
    const prev = statusOf(o);
    const clean = stripProtected(patch);
    const allowed = UPDATABLE[kind];
    if (allowed) {
      for (const k of Object.keys(clean)) if (!allowed.includes(k)) throw badRequest(`Additional properties are not allowed ('${k}' was unexpected)`);
    }
    for (const k of IMMUTABLE[kind] ?? []) {
      if (k in clean && JSON.stringify(clean[k]) !== JSON.stringify(o.doc[k])) throw badRequest(`Cannot update read-only attribute ${k}`);
    }
    if (kind === 'floatingip' && 'port_id' in clean) {
      const port = clean.port_id ? this.find('port', tenant, String(clean.port_id)) : undefined;
      Object.assign(clean, { port_id: port?.id ?? null, fixed_ip_address: port?.doc.fixed_ips?.[0]?.ip_address ?? null });
      o.doc.status = port ? 'ACTIVE' : 'DOWN';
    }
    if (o.key && Array.isArray(clean.tags) && !clean.tags.includes(KEY_TAG_PREFIX + o.key)) clean.tags = [...clean.tags, KEY_TAG_PREFIX + o.key];
    Object.assign(o.doc, clean);
    this.commit(o, 'updated', prev);
    return this.render(o);
  }

  setMetadata(kind: 'server' | 'volume', tenant: string, id: string, metadata: Record<string, string>, replace: boolean): Record<string, string> {
    const o = this.find(kind, tenant, id);
    const next = replace ? { ...metadata } : { ...o.doc.metadata, ...metadata };
    if (o.key) next[KEY_METADATA] = o.key;
    o.doc.metadata = next;
    this.commit(o, 'updated', statusOf(o));
    return next;
  }

  deleteMetadataKey(kind: 'server' | 'volume', tenant: string, id: string, key: string): void {
    const o = this.find(kind, tenant, id);
    if (!(key in (o.doc.metadata ?? {}))) throw new ApiError(404, 'MetadataNotFound', `Metadata item was not found: ${key}`);
    delete o.doc.metadata[key];
    this.commit(o, 'updated', statusOf(o));
  }

  setTags(kind: Kind, tenant: string, id: string, tags: string[]): string[] {
    const o = this.find(kind, tenant, id);
    const next = [...new Set(tags.map(String))];
    if (o.key && !next.includes(KEY_TAG_PREFIX + o.key)) next.push(KEY_TAG_PREFIX + o.key);
    o.doc.tags = next;
    this.commit(o, 'updated', statusOf(o));
    return next;
  }

  delete(kind: Kind, tenant: string, id: string, opts: { cascade?: boolean } = {}): void {
    const o = this.find(kind, tenant, id);
    const inUse = (type: string, what: string) => conflict(type, `${cap(kind)} ${id} ${what}`);
    switch (kind) {
      case 'network':
        if (this.referring(id, 'port').length > 0) throw inUse('NetworkInUse', 'is in use: there are one or more ports still in use on the network.');
        break;
      case 'subnet':
        if (this.referring(id, 'port').length > 0) throw inUse('SubnetInUse', 'is in use: one or more ports have an IP allocation from this subnet.');
        break;
      case 'router':
        if (this.referring(id, 'port').length > 0) throw inUse('RouterInUse', 'still has ports.');
        break;
      case 'security_group':
        if (this.referring(id, 'port').length > 0) throw inUse('SecurityGroupInUse', 'is in use.');
        break;
      case 'port':
        if (o.doc.device_owner === 'network:router_interface') throw inUse('PortInUse', 'is a router interface: remove it from the router instead.');
        break;
      case 'volume':
        if (!['available', 'error', 'creating'].includes(o.doc.status) || (o.doc.attachments ?? []).length > 0) {
          throw new ApiError(400, 'InvalidVolume', `Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots or be disassociated from snapshots after volume transfer.`);
        }
        break;
      case 'loadbalancer':
        if (!opts.cascade && this.referring(id).some((c) => c.kind === 'listener' || c.kind === 'pool')) throw new ApiError(400, 'ValidationException', `Cannot delete Load Balancer ${id} - it has children`);
        break;
      default:
        break;
    }
    if (LB_KINDS.has(kind) && String(o.doc.provisioning_status) === 'PENDING_DELETE') return;
    if (kind === 'server' && o.doc['OS-EXT-STS:task_state'] === 'deleting') return;
    if (kind === 'volume' && o.doc.status === 'deleting') return;
    const async = kind === 'server' || kind === 'volume' || LB_KINDS.has(kind);
    if (!async) {
      this.destroy(o);
      return;
    }
    const prev = statusOf(o);
    if (kind === 'server') o.doc['OS-EXT-STS:task_state'] = 'deleting';
    else if (kind === 'volume') o.doc.status = 'deleting';
    else o.doc.provisioning_status = 'PENDING_DELETE';
    this.dooms.delete(o.id);
    this.startTransition(o, 'deleted', 'delete');
    this.commit(o, 'updated', prev);
  }

  attachVolume(tenant: string, serverId: string, volumeId: string, device?: string): Doc {
    const s = this.find('server', tenant, serverId);
    const v = this.find('volume', tenant, volumeId);
    if (v.doc.status !== 'available') throw badRequest(`Invalid volume: volume ${volumeId} status must be 'available', not '${String(v.doc.status)}'.`);
    if (!['ACTIVE', 'SHUTOFF'].includes(s.doc.status)) throw conflict('InstanceInvalidState', `Cannot 'attach_volume' instance ${serverId} while it is in vm_state ${String(s.doc['OS-EXT-STS:vm_state'])}`);
    const prev = statusOf(v);
    const n = this.referring(serverId, 'volume').length;
    const att = { id: volumeId, attachment_id: `${volumeId.slice(0, 8)}-${serverId.slice(0, 8)}`, server_id: serverId, volume_id: volumeId, device: device ?? `/dev/vd${String.fromCharCode(98 + n)}`, attached_at: new Date().toISOString() };
    v.doc.attachments = [att];
    v.doc.status = 'attaching';
    this.dooms.delete(v.id);
    this.startTransition(v, 'in-use', 'attach');
    this.commit(v, 'updated', prev);
    return { id: volumeId, volumeId, serverId, device: att.device };
  }

  detachVolume(tenant: string, serverId: string, volumeId: string): void {
    this.find('server', tenant, serverId);
    const v = this.find('volume', tenant, volumeId);
    const att = (v.doc.attachments ?? []).find((a: Doc) => a.server_id === serverId);
    if (!att) throw new ApiError(404, 'VolumeAttachmentNotFound', `Volume ${volumeId} is not attached to server ${serverId}.`);
    if (v.doc.status === 'detaching') return;
    const prev = statusOf(v);
    if (v.doc.status !== 'error') v.doc.status = 'detaching';
    this.dooms.delete(v.id);
    this.startTransition(v, 'detached', 'detach');
    this.commit(v, 'updated', prev);
  }

  attachments(tenant: string, serverId: string): Doc[] {
    this.find('server', tenant, serverId);
    return this.referring(serverId, 'volume').map((v) => {
      const a = (v.doc.attachments as Doc[]).find((x) => x.server_id === serverId)!;
      return { id: v.id, volumeId: v.id, serverId, device: a.device };
    });
  }

  addRouterInterface(tenant: string, routerId: string, body: Doc): Doc {
    this.find('router', tenant, routerId);
    let port: SimObject;
    if (body.port_id) {
      port = this.find('port', tenant, String(body.port_id));
      if (port.doc.device_id) throw conflict('PortInUse', `Port ${port.id} is still in use.`);
      const prev = statusOf(port);
      Object.assign(port.doc, { device_id: routerId, device_owner: 'network:router_interface', status: port.fault ? 'DOWN' : 'ACTIVE' });
      this.commit(port, 'updated', prev);
    } else if (body.subnet_id) {
      const subnet = this.find('subnet', tenant, String(body.subnet_id));
      if (this.referring(routerId, 'port').some((p) => p.doc.fixed_ips?.some((f: Doc) => f.subnet_id === subnet.id))) {
        throw badRequest(`Bad router request: Router already has a port on subnet ${subnet.id}.`);
      }
      const net = this.objects.get(subnet.doc.network_id);
      if (!net) throw notFound('network', String(subnet.doc.network_id));
      port = this.implicitPort(tenant, net, routerId, 'network:router_interface', subnet.id);
      port.doc.fixed_ips = [{ subnet_id: subnet.id, ip_address: subnet.doc.gateway_ip ?? port.doc.fixed_ips[0]?.ip_address }];
      port.doc.status = port.fault ? 'DOWN' : 'ACTIVE';
      this.commit(port, 'updated', 'DOWN');
    } else throw badRequest('Bad router request: Either subnet_id or port_id must be specified.');
    return { id: routerId, tenant_id: tenant, project_id: tenant, port_id: port.id, subnet_id: port.doc.fixed_ips?.[0]?.subnet_id ?? null, subnet_ids: (port.doc.fixed_ips ?? []).map((f: Doc) => f.subnet_id) };
  }

  removeRouterInterface(tenant: string, routerId: string, body: Doc): Doc {
    this.find('router', tenant, routerId);
    const ports = this.referring(routerId, 'port');
    const port = body.port_id ? ports.find((p) => p.id === body.port_id) : ports.find((p) => p.doc.fixed_ips?.some((f: Doc) => f.subnet_id === body.subnet_id));
    if (!port) throw new ApiError(404, 'RouterInterfaceNotFound', `Router ${routerId} does not have an interface with ${body.port_id ? `id ${String(body.port_id)}` : `subnet ${String(body.subnet_id)}`}.`);
    const out = { id: routerId, tenant_id: tenant, port_id: port.id, subnet_id: port.doc.fixed_ips?.[0]?.subnet_id ?? null };
    if (port.implicit) this.destroy(port);
    else {
      const prev = statusOf(port);
      Object.assign(port.doc, { device_id: '', device_owner: '', status: 'DOWN' });
      this.commit(port, 'updated', prev);
    }
    return out;
  }

  /** Nova os-interface: plugs a port (or a new port on a network) into a server. */
  attachInterface(tenant: string, serverId: string, body: Doc): Doc {
    const s = this.find('server', tenant, serverId);
    if (!['ACTIVE', 'SHUTOFF'].includes(s.doc.status)) throw conflict('InstanceInvalidState', `Cannot 'attach_interface' instance ${serverId} while it is ${String(s.doc.status)}`);
    let port: SimObject;
    if (body.port_id) {
      port = this.find('port', tenant, String(body.port_id));
      if (port.doc.device_id) throw conflict('PortInUse', `Port ${port.id} is still in use.`);
      Object.assign(port.doc, { device_id: serverId, device_owner: 'compute:nova' });
    } else if (body.net_id) {
      const net = this.objects.get(String(body.net_id));
      if (!net || net.kind !== 'network' || net.tenant !== tenant) throw new ApiError(404, 'NetworkNotFound', `Network ${String(body.net_id)} could not be found.`);
      port = this.implicitPort(tenant, net, serverId, 'compute:nova');
    } else throw badRequest('Either port_id or net_id must be given.');
    const prev = statusOf(port);
    if (!port.fault) Object.assign(port.doc, { status: 'ACTIVE', 'binding:vif_type': 'ovs' });
    this.commit(port, 'updated', prev);
    return interfaceDoc(port);
  }

  detachInterface(tenant: string, serverId: string, portId: string): void {
    this.find('server', tenant, serverId);
    const port = this.referring(serverId, 'port').find((p) => p.id === portId);
    if (!port) throw new ApiError(404, 'PortNotFound', `Port ${portId} is not attached to server ${serverId}.`);
    if (port.implicit) {
      this.destroy(port);
      return;
    }
    const prev = statusOf(port);
    Object.assign(port.doc, { device_id: '', device_owner: '', status: 'DOWN', 'binding:vif_type': port.fault ? 'binding_failed' : 'unbound' });
    this.commit(port, 'updated', prev);
  }

  interfaces(tenant: string, serverId: string): Doc[] {
    this.find('server', tenant, serverId);
    return this.referring(serverId, 'port').map(interfaceDoc);
  }

  /** Cinder os-extend: grows an available volume (quota on gigabytes applies). */
  extendVolume(tenant: string, id: string, newSize: unknown): void {
    const v = this.find('volume', tenant, id);
    const size = Number(newSize);
    if (!Number.isInteger(size) || size <= Number(v.doc.size)) throw badRequest(`Invalid input received: New size for extend must be greater than current size. (current: ${String(v.doc.size)}, extended: ${String(newSize)}).`);
    if (v.doc.status !== 'available') throw badRequest(`Invalid volume: Volume ${id} status must be available to extend, but current status is: ${String(v.doc.status)}.`);
    this.checkQuota(tenant, 'volume', { gigabytes: size - Number(v.doc.size) });
    this.addUsage(v, -1);
    v.doc.size = size;
    this.addUsage(v, 1);
    this.commit(v, 'updated', statusOf(v));
  }

  serverAction(tenant: string, id: string, body: Doc): void {
    const o = this.find('server', tenant, id);
    const prev = statusOf(o);
    if (body.reboot) {
      const hard = String(body.reboot.type ?? 'SOFT').toUpperCase() === 'HARD';
      if (o.doc.status === 'BUILD' || (o.doc.status === 'ERROR' && !hard)) throw conflict('InstanceInvalidState', `Cannot 'reboot' instance ${id} while it is in vm_state ${String(o.doc['OS-EXT-STS:vm_state'])}`);
      o.doc.status = hard ? 'HARD_REBOOT' : 'REBOOT';
      delete o.doc.fault;
      this.dooms.delete(o.id);
      this.startTransition(o, 'ACTIVE', 'reboot');
    } else if (body['os-stop'] !== undefined) {
      if (o.doc.status !== 'ACTIVE') throw conflict('InstanceInvalidState', `Cannot 'stop' instance ${id} while it is ${String(o.doc.status)}`);
      Object.assign(o.doc, { status: 'SHUTOFF', 'OS-EXT-STS:vm_state': 'stopped', 'OS-EXT-STS:power_state': 4 });
      this.dooms.delete(o.id);
    } else if (body['os-start'] !== undefined) {
      if (o.doc.status !== 'SHUTOFF') throw conflict('InstanceInvalidState', `Cannot 'start' instance ${id} while it is ${String(o.doc.status)}`);
      Object.assign(o.doc, { status: 'ACTIVE', 'OS-EXT-STS:vm_state': 'active', 'OS-EXT-STS:power_state': 1 });
      this.scheduleDoom(o, Date.now());
    } else throw badRequest(`Unsupported server action: ${Object.keys(body).join(', ') || '(none)'} (supported: reboot, os-stop, os-start).`);
    this.commit(o, 'updated', prev);
  }

  addSecurityGroupRule(tenant: string, body: Doc): Doc {
    const sg = this.find('security_group', tenant, String(body.security_group_id));
    const n = sg.nextRule ?? sg.doc.security_group_rules.length;
    sg.nextRule = n + 1;
    const rule = { id: `${sg.id}-r${n}`, direction: 'ingress', ethertype: 'IPv4', protocol: null, port_range_min: null, port_range_max: null, remote_ip_prefix: null, remote_group_id: null, ...stripProtected(body), security_group_id: sg.id, tenant_id: tenant, project_id: tenant };
    sg.doc.security_group_rules = [...sg.doc.security_group_rules, rule];
    this.commit(sg, 'updated', statusOf(sg));
    return rule;
  }

  deleteSecurityGroupRule(tenant: string, ruleId: string): void {
    const sgId = ruleId.slice(0, ruleId.lastIndexOf('-r'));
    const sg = this.objects.get(sgId);
    const rules: Doc[] = sg?.kind === 'security_group' && sg.tenant === tenant ? sg.doc.security_group_rules : [];
    if (!sg || !rules.some((r) => r.id === ruleId)) throw new ApiError(404, 'SecurityGroupRuleNotFound', `Security group rule ${ruleId} could not be found.`);
    sg.doc.security_group_rules = rules.filter((r) => r.id !== ruleId);
    this.commit(sg, 'updated', statusOf(sg));
  }

  // ---- out-of-band (control API) ---------------------------------------------------------

  /** Removes an object as if deleted by hand behind the API's back (no cascade checks). */
  vanish(id: string): boolean {
    const o = this.objects.get(id);
    if (!o) return false;
    this.destroy(o);
    return true;
  }

  /** Forces a status (and/or operating_status), cancelling any transition in flight. */
  force(id: string, patch: { status?: string; operating_status?: string }): Doc | undefined {
    const o = this.objects.get(id);
    if (!o) return undefined;
    const prev = statusOf(o);
    delete o.pending;
    if (patch.status !== undefined) {
      if (o.kind === 'server' && patch.status === 'ERROR') this.setServerError(o, 'Instance forced to ERROR');
      else if (LB_KINDS.has(o.kind)) o.doc.provisioning_status = patch.status;
      else o.doc.status = patch.status;
      if (o.kind === 'server' && patch.status === 'ACTIVE') Object.assign(o.doc, { 'OS-EXT-STS:task_state': null, 'OS-EXT-STS:vm_state': 'active', 'OS-EXT-STS:power_state': 1 });
    }
    if (patch.operating_status !== undefined) o.doc.operating_status = patch.operating_status;
    this.commit(o, 'updated', prev);
    this.scheduleDoom(o, Date.now());
    return this.render(o);
  }

  reset(): void {
    this.clearObjects();
    this.keyAttempts.clear();
    this.buckets.clear();
    this.resetStats();
    this.record({ op: 'reset' }, { type: 'reset' });
  }

  flavors(): Flavor[] {
    return [...FLAVORS];
  }

  counts(): Record<string, number> {
    const out: Record<string, number> = Object.fromEntries(KINDS.map((k) => [k, 0]));
    for (const [k, m] of this.byKind) out[k] = m.size;
    return out;
  }
}

export function statusOf(o: SimObject): string {
  if (LB_KINDS.has(o.kind)) return String(o.doc.provisioning_status);
  return String(o.doc.status ?? 'ACTIVE');
}

let isoMs = -1;
let isoText = '';
/** `new Date(ms).toISOString()`, once per millisecond however many changes share it. */
function isoAt(ms: number): string {
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(ms).toISOString();
  }
  return isoText;
}

/** Query parameters of a list that are not field filters. */
const LIST_RESERVED = new Set(['tags', 'tags-any', 'idempotency_key', 'limit', 'marker', 'sort_key', 'sort_dir', 'fields', 'all_tenants']);

/** Single-valued fields that `refsOf` indexes: every object whose field equals `v` refers to `v`. */
const REF_FIELDS: Partial<Record<Kind, string[]>> = {
  subnet: ['network_id'],
  port: ['network_id', 'device_id'],
  floatingip: ['port_id', 'floating_network_id'],
  listener: ['loadbalancer_id'],
  pool: ['loadbalancer_id', 'listener_id'],
  member: ['pool_id'],
  healthmonitor: ['pool_id'],
};

function scalarMatches(value: unknown, wanted: string): boolean {
  return value !== undefined && value !== null && typeof value !== 'object' && String(value) === wanted;
}

function refsOf(o: SimObject): string[] {
  const d = o.doc;
  const out: string[] = [];
  const add = (v: unknown) => {
    if (typeof v === 'string' && v !== '') out.push(v);
  };
  switch (o.kind) {
    case 'subnet':
      add(d.network_id);
      break;
    case 'port':
      add(d.network_id);
      add(d.device_id);
      for (const f of d.fixed_ips ?? []) add(f.subnet_id);
      for (const sg of d.security_groups ?? []) add(sg);
      break;
    case 'floatingip':
      add(d.port_id);
      add(d.floating_network_id);
      break;
    case 'volume':
      for (const a of d.attachments ?? []) add(a.server_id);
      break;
    case 'listener':
      add(d.loadbalancer_id);
      break;
    case 'pool':
      add(d.loadbalancer_id);
      add(d.listener_id);
      break;
    case 'member':
      add(d.pool_id);
      break;
    case 'healthmonitor':
      add(d.pool_id);
      break;
    default:
      break;
  }
  return [...new Set(out)].sort();
}

function keyFromBody(body: Doc): string | undefined {
  for (const t of Array.isArray(body.tags) ? body.tags : []) if (typeof t === 'string' && t.startsWith(KEY_TAG_PREFIX)) return t.slice(KEY_TAG_PREFIX.length);
  const m = body.metadata?.[KEY_METADATA];
  return typeof m === 'string' && m !== '' ? m : undefined;
}

function stripProtected(body: Doc): Doc {
  const out: Doc = {};
  for (const [k, v] of Object.entries(body)) if (!PROTECTED.has(k)) out[k] = v;
  return out;
}

function interfaceDoc(p: SimObject): Doc {
  return { port_id: p.id, net_id: p.doc.network_id, mac_addr: p.doc.mac_address, port_state: p.doc.status, fixed_ips: p.doc.fixed_ips };
}

function flavorDoc(f: Flavor): Doc {
  return { id: f.id, original_name: f.name, vcpus: f.vcpus, ram: f.ram, disk: f.disk, ephemeral: 0, swap: 0, extra_specs: {} };
}

function parseCidr(cidr: unknown): { net: number; size: number } | undefined {
  const m = typeof cidr === 'string' ? /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr) : null;
  if (!m) return undefined;
  const parts = m.slice(1, 5).map(Number);
  const bits = Number(m[5]);
  if (parts.some((p) => p > 255) || bits < 8 || bits > 32) return undefined;
  const ip = ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
  const size = 2 ** (32 - bits);
  return { net: ip - (ip % size), size };
}

function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join('.');
}
