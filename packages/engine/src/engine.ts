/**
 * The IO shell: an engine node (a runtime node running the stack, shard and resource behaviours
 * plus the provider task handler) and the small stack API used by tests and the NATS API.
 *
 * Every write is "set the desired state": the API bumps the stack's generation with one
 * compare-and-set on the stack registry (KV `<prefix>_stacks`), sends the supervisor one message
 * and returns the id and generation at once. Reads come from the actors' stored states and the
 * events stream.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { JetStreamApiError, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager, type StoredMsg } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { randomUUID } from 'node:crypto';
import { KilnError, createLogger, decode, encode, type Logger } from '@kiln/core';
import { MailboxClient, Runtime, SETUP_TIMEOUT_MS, actorKey, partitionOf, whileClusterForms, type Outgoing, type TaskContext, type TaskHandler } from '@kiln/runtime';
import { builtinTypes } from './builtins.js';
import { AUTOSCALING_GROUP, SCALING_POLICY, asgCapacity, autoscalingTypes, scaledCapacity } from './autoscaling.js';
import { TypeRegistry, taskErrorCode, type ActionRequest, type ObjectChange, type ResourceType, type TaskType } from './provider.js';
import { resourceOfKey } from './changes.js';
import { backoffMs } from './hash.js';
import { resourceAddress, resourceBehavior, type ResourceState } from './resource.js';
import { shardBehavior, DEFAULT_TREE, type TreeConfig } from './shard.js';
import { DEFAULT_RESEND, STACK_SPEC_TASK, stackAddress, stackBehavior, type FanoutHold, type ResendPeriods, type StackState } from './stack.js';
import { HotTemplateAdapter } from './template-adapter.js';
import { DEFAULT_HEAL, type HealConfig } from './heal.js';
import { deepEqual } from './provider.js';
import type { DepView, PlannedResource, TemplateAdapter } from './spec.js';
import { DEFAULT_TENANT, EVENTS_PREFIX, TENANT_PATTERN, encodeToken } from './subjects.js';
import type { AdoptedResource, EngineEvent, ResolveScope, ResourceMsg, StackMsg, StackOp, StackSpec } from './types.js';

export interface EngineOptions {
  servers?: string | string[];
  /** An existing connection to use (not closed by `stop`); `servers`/credentials are then ignored. */
  connection?: NatsConnection;
  /** Credentials (nats.js v3 ignores credentials written in server URLs). */
  user?: string;
  pass?: string;
  token?: string;
  /** Runtime name prefix (buckets, streams, subjects). Default 'kiln'. */
  prefix?: string;
  /** Must match across all engines sharing a prefix. Default 64. */
  partitions?: number;
  /** JetStream replicas of every bucket and stream (3 on a 3-node cluster). Same on all engines. Default 1. */
  replicas?: 1 | 3;
  leaseMs?: number;
  /**
   * The runtime's bound on unacknowledged mailbox stream messages. Default 1024 (the runtime's is
   * 4096): a pack carries up to 32 envelopes, and a group fan-out's packs of ~400-byte desires at
   * 4096 in flight are ~50 MB pushed at one client, which nats-server cut as a slow consumer
   * (seen with 32 partitions and a 100K group).
   */
  maxInFlight?: number;
  nodeId?: string;
  tree?: TreeConfig;
  /** Resource types besides the built-ins (cloud providers). */
  types?: readonly ResourceType[];
  /** Heal: observe intervals and the per-stack repair rate (defaults in DEFAULT_HEAL). Must match across engines. */
  heal?: Partial<HealConfig>;
  /**
   * How long a newer generation of a template stack waits for the shards to finish the one they
   * hold before it is fanned out anyway (DEFAULT_FANOUT_HOLD: 2 ms per resource, at most 30 s).
   * Should match across engines.
   */
  fanoutHold?: FanoutHold;
  /**
   * How supervisors repeat desires their shards have not answered (mail the stream may have
   * lost): first after `firstMs`, doubling to `maxMs`, at most `perSecond` repeats per node
   * (DEFAULT_RESEND: 30 s, 5 min, 20/s). Should match across engines.
   */
  resend?: ResendPeriods;
  /** Run a runtime node (work on actors). False: an API client only. Default true. */
  worker?: boolean;
  /** The registry audit of a worker engine (DEFAULT_REGISTRY_AUDIT); false: none. */
  registryAudit?: Partial<RegistryAudit> | false;
  logger?: Logger;
}

/**
 * A worker engine follows the stack registry and, every `periodMs`, looks at the generations
 * written there that the supervisor (hosted on this node) has not been seen to take: one older
 * than `afterMs` is sent to it again (nats-server 2.9 can lose an acknowledged mailbox message,
 * docs/chaos.md finding 6). The supervisor ignores a generation it has, so a message that was
 * only slow costs a duplicate. Repeats for the same generation back off, doubling up to
 * `maxBackoffMs`. The cost follows the registry's writes, not the number of stacks.
 */
export interface RegistryAudit {
  periodMs: number;
  afterMs: number;
  maxBackoffMs: number;
}

export const DEFAULT_REGISTRY_AUDIT: RegistryAudit = { periodMs: 30_000, afterMs: 30_000, maxBackoffMs: 300_000 };

/** Options of a desired-state write. */
export interface WriteOptions {
  /**
   * The caller's idempotency key (the API's `request_id`): a write repeated with it after its
   * answer was lost gets the first write's answer instead of a second generation or STACK_EXISTS.
   */
  readonly requestId?: string | undefined;
}

export interface StackRequest extends StackSpec {
  /** Owner; stack names are unique per tenant. Default `default`. */
  readonly tenant?: string;
  readonly name: string;
}

/** Heat's abandon data (plus each resource's attributes, so that adoption restores them). */
export interface AbandonData {
  readonly id: string;
  readonly name: string;
  readonly tenant: string;
  readonly action: string;
  readonly status: string;
  readonly template: unknown;
  readonly environment?: unknown;
  readonly parameters?: Record<string, unknown>;
  readonly files?: Record<string, string>;
  readonly resources: Record<string, AbandonedResource>;
}

export interface AbandonedResource {
  readonly name: string;
  readonly resource_id: string | null;
  readonly type: string;
  readonly action: string;
  readonly status: string;
  readonly metadata: Record<string, unknown>;
  readonly resource_data: Record<string, unknown>;
  readonly attributes?: Record<string, unknown>;
}

export interface AdoptRequest extends StackRequest {
  /** Abandon data (`resources.<name>.resource_id`, optional `attributes`). */
  readonly adoptData: { readonly resources?: Record<string, Partial<AbandonedResource>> } & Record<string, unknown>;
}

/** A stack: its id, or its name within a tenant (a bare string that is no id is a name of the default tenant). */
export type StackRef = string | { readonly tenant: string; readonly name: string };

export interface GenerationRef {
  readonly id: string;
  readonly name: string;
  readonly generation: number;
}

export interface StackInfo {
  readonly id: string;
  readonly tenant: string;
  readonly name: string;
  readonly generation: number;
  /** Derived: CONVERGING, READY, FAILED, DELETED. */
  readonly status: StackState['status'];
  /** Heat-compatible pair, e.g. CREATE_COMPLETE. */
  readonly stackStatus: string;
  readonly reason: string;
  readonly outputs: Record<string, unknown>;
  readonly resources: { readonly total: number; readonly settled: number; readonly failed: number; readonly deleted: number };
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface ListStacksOptions {
  readonly limit?: number;
  /** The `nextCursor` of the previous page. */
  readonly cursor?: string;
  /** Filters: exact name, Heat status pair (e.g. CREATE_COMPLETE). */
  readonly name?: string;
  readonly status?: string;
}

export interface ResourceInfo {
  readonly name: string;
  readonly type: string;
  readonly physicalId: string | null;
  readonly status: string;
  readonly reason: string;
  readonly generation: number;
  readonly attributes: Record<string, unknown>;
  /** Child stack of a nested resource (groups, OS::Heat::Stack, template resources). */
  readonly nestedStackId?: string;
}

interface RegistryEntry {
  tenant: string;
  name: string;
  gen: number;
  deleted?: boolean;
  /**
   * Key of the current desired spec in the spec store: `<gen>-<writer nonce>`, so two writers
   * racing for one generation never write (or, losing, purge) each other's spec.
   */
  spec: string;
  /** The desired spec before it (what `cancel` returns to). */
  prevSpec?: string;
  /** The current spec carries group capacity overrides (an update must read it to carry them). */
  overridden?: boolean;
  /** The request id of the write that made this generation, if it had one (WriteOptions). */
  request?: { id: string; gen: number };
  /**
   * The request ids of the writes before it, newest first (at most EARLIER_REQUESTS): a retry of
   * a write whose answer was lost finds its generation even after other writers wrote on top.
   */
  earlier?: Array<{ id: string; gen: number }>;
  /** The operation that made this generation (absent in entries written before it was kept). */
  op?: StackOp;
  /** The revision this entry's write expected (see `Engine.baseEntry`). */
  prev?: number;
}

/** A generation's desired state as kept in the spec store. */
interface SpecDoc {
  spec: StackSpec;
  /** group.capacity.set: `count` of a group, valid while the template's own count stays `base`. */
  overrides?: Record<string, { count: number; base: unknown }>;
  /** An adopt create's resources taken over (generation 1 only). */
  adopt?: Record<string, AdoptedResource>;
}

const DEFAULT_MAX_IN_FLIGHT = 1024;
/** Request ids a registry entry keeps besides its own (see RegistryEntry.earlier). */
const EARLIER_REQUESTS = 15;

/** The request ids of the write that made `e` and of the writes before it it keeps, newest first. */
function requestsOf(e: RegistryEntry): Array<{ id: string; gen: number }> {
  return [...(e.request ? [e.request] : []), ...(e.earlier ?? [])];
}

/** The generation the write with `requestId` made, if `e` (or one of the writes it keeps) is that write. */
function requestGeneration(e: RegistryEntry, requestId: string | undefined, lost?: ReadonlySet<number>): number | undefined {
  return requestId === undefined ? undefined : requestsOf(e).find((r) => r.id === requestId && !lost?.has(r.gen))?.gen;
}
const NAME_RE = /^[A-Za-z][A-Za-z0-9_.-]*$/;
/** Spec store chunk size: well below nats-server's default 1 MiB max_payload. */
const SPEC_CHUNK_BYTES = 256 * 1024;
/** Types whose size `setGroupCapacity` overrides. */
const GROUP_TYPES: ReadonlySet<string> = new Set(['OS::Heat::ResourceGroup', AUTOSCALING_GROUP]);

const NO_DEPS: DepView = { has: () => false, ref: () => undefined, attr: () => undefined, allAttrs: () => undefined };

export class Engine {
  private readonly log: Logger;
  private kv!: KV;
  private specs!: KV;
  private stateKv!: KV;
  private js!: JetStreamClient;
  private jsm: JetStreamManager | undefined;
  private runtime: Runtime | undefined;
  /** Mailboxes of an API-only client (no runtime node). */
  private mailbox: MailboxClient | undefined;
  readonly types: TypeRegistry;
  private readonly template: TemplateAdapter = new HotTemplateAdapter();
  private readonly prefix: string;
  private readonly partitions: number;
  /** Unsubscribes from the providers' change notifications. */
  private readonly unfollow: Array<() => void> = [];
  private auditHandle: NodeJS.Timeout | undefined;
  private auditing = false;
  private stopping = false;
  /** Stack id -> a registry generation its supervisor has not been seen to take (fed by a registry watch). */
  private readonly unconfirmed = new Map<string, number>();
  /** Generations the audit sent again, per stack: not again before `next`. */
  private readonly auditRepeats = new Map<string, { gen: number; next: number; period: number }>();
  /** Stack id -> the newest acknowledged generation whose message to the supervisor is being sent again (see tellSupervisor). */
  private readonly retelling = new Map<string, { gen: number }>();

  private constructor(
    private readonly nc: NatsConnection,
    private readonly ownsConnection: boolean,
    private readonly opts: EngineOptions,
  ) {
    this.log = opts.logger ?? createLogger('engine');
    this.prefix = opts.prefix ?? 'kiln';
    this.partitions = opts.partitions ?? 64;
    this.types = new TypeRegistry([...builtinTypes, ...autoscalingTypes, ...(opts.types ?? [])]);
  }

  static async start(opts: EngineOptions = {}): Promise<Engine> {
    const nc =
      opts.connection ??
      (await connect({
        servers: opts.servers ?? '127.0.0.1:4222',
        ...(opts.user !== undefined ? { user: opts.user } : {}),
        ...(opts.pass !== undefined ? { pass: opts.pass } : {}),
        ...(opts.token !== undefined ? { token: opts.token } : {}),
        name: `kiln-engine${opts.nodeId ? `-${opts.nodeId}` : ''}`,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
      }));
    const e = new Engine(nc, !opts.connection, opts);
    try {
      await e.init();
    } catch (err) {
      // Nothing it opened may keep the process alive.
      await e.stop().catch(() => undefined);
      throw err;
    }
    return e;
  }

  private get replicas(): 1 | 3 {
    return this.opts.replicas ?? 1;
  }

  private async init(): Promise<void> {
    const tree = this.opts.tree ?? DEFAULT_TREE;
    const template = this.template;
    const heal: HealConfig = { ...DEFAULT_HEAL, ...this.opts.heal };
    const resend = this.opts.resend ?? DEFAULT_RESEND;
    if (this.opts.worker !== false) {
      this.runtime = await Runtime.start({
        connection: this.nc,
        behaviors: [stackBehavior({ template, types: this.types, tree, heal, resend, ...(this.opts.fanoutHold ? { fanoutHold: this.opts.fanoutHold } : {}) }), shardBehavior(tree), resourceBehavior({ template, types: this.types, heal })],
        tasks: { provider: this.providerTask(), [STACK_SPEC_TASK]: (input) => this.storedSpec(input) },
        timerRates: { resend: resend.perSecond, ...(heal.observesPerSecond ? { observe: heal.observesPerSecond } : {}) },
        partitions: this.partitions,
        prefix: this.prefix,
        replicas: this.replicas,
        ...(this.opts.leaseMs ? { leaseMs: this.opts.leaseMs } : {}),
        maxInFlight: this.opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
        ...(this.opts.nodeId ? { nodeId: this.opts.nodeId } : {}),
        logger: this.log,
      });
    }
    if (this.runtime) this.followChanges();
    this.js = jetstream(this.nc, { timeout: 10_000 });
    const kvm = new Kvm(this.js);
    const replicas = this.replicas;
    // On a cluster every read goes to the stream leader: a direct get may be answered by a
    // follower that has not applied a write yet (a stack created through one node and updated
    // through another at once would not be found). As the runtime does for actor state.
    const allow_direct = replicas === 1;
    // A few revisions per key: the winner of a racing registry write stays findable (firstWriteAfter).
    // An API-only engine (no runtime that waited already) may start while its cluster forms.
    await whileClusterForms(
      async () => {
        this.kv = await kvm.create(`${this.prefix}_stacks`, { history: 5, replicas, allow_direct });
        this.specs = await kvm.create(`${this.prefix}_specs`, { history: 1, replicas, allow_direct });
        // The runtime's state bucket: read-only here (actor states for getStack/listResources).
        this.stateKv = await kvm.create(`${this.prefix}_state`, { history: 1, replicas, allow_direct });
      },
      SETUP_TIMEOUT_MS,
      this.log,
    );
    if (this.runtime && this.opts.registryAudit !== false) await this.startRegistryAudit({ ...DEFAULT_REGISTRY_AUDIT, ...this.opts.registryAudit });
  }

  /**
   * Follows every provider's change notifications (once per distinct hook): a resource whose
   * object is gone or broken observes at once instead of at its next poll.
   */
  private followChanges(): void {
    const hooks = new Set<NonNullable<TaskType['changes']>>();
    for (const n of this.types.names()) {
      const t = this.types.get(n);
      if (t?.kind === 'task' && t.changes) hooks.add(t.changes);
    }
    for (const h of hooks) this.unfollow.push(h((c) => this.onObjectChange(c)));
  }

  /**
   * Sends the resource behind a changed object a `check`. Every engine hears every change; only
   * the owner of the actor's partition forwards it, so a change costs one message whatever the
   * number of engines.
   */
  private onObjectChange(c: ObjectChange): void {
    const r = resourceOfKey(c.key);
    const rt = this.runtime;
    if (!r || !rt || !rt.ownedPartitions().includes(partitionOf(r.address, this.partitions))) return;
    rt.send(r.address, { kind: 'check', inc: r.inc } satisfies ResourceMsg).catch((e: unknown) =>
      this.log.warn({ resource: r.address, change: c.change, err: String(e) }, 'could not forward a change notification; the poll will find it'),
    );
  }

  /** Runs `task` provider actions; errors carry the provider's classification. */
  private providerTask(): TaskHandler {
    return async (input: unknown, ctx: TaskContext) => {
      const { type: typeName, action, request } = input as { type: string; action: 'create' | 'update' | 'delete' | 'observe'; request: ActionRequest };
      const type = this.types.get(typeName);
      if (!type || type.kind !== 'task') throw new KilnError('RESOURCE_TYPE_UNKNOWN', `The Resource Type (${typeName}) could not be found.`);
      try {
        if (action === 'delete') {
          await type.delete(request, ctx);
          return { physicalId: null, attrs: {} };
        }
        if (action === 'observe') return type.observe ? await type.observe(request, ctx) : { physicalId: request.physicalId ?? null, attrs: request.attrs ?? {} };
        return action === 'create' ? await type.create(request, ctx) : await type.update(request, ctx);
      } catch (e) {
        const c = type.classify(e);
        throw Object.assign(new Error(c.message), { code: taskErrorCode(c), ...(c.retryAfterMs !== undefined ? { retryAfterMs: c.retryAfterMs } : {}) });
      }
    };
  }

  /**
   * STACK_SPEC_TASK: a top-level stack's spec of a generation read back from the spec store, for a
   * supervisor that could not keep it; null when that generation is no longer the stored one.
   */
  private async storedSpec(input: unknown): Promise<StackSpec | null> {
    const { stackId, gen } = input as { stackId: string; gen: number };
    const e = await this.entry(stackId);
    if (!e || e.value.deleted || e.value.gen !== gen) return null;
    return (await this.getSpec(stackId, e.value.spec)).spec;
  }

  /** Puts a message in an actor's mailbox (the runtime's mailbox stream; works without a local node). */
  private async send(to: string, msg: unknown): Promise<void> {
    return this.sendMany([{ to, msg }]);
  }

  /** Several messages, packed per partition (one stream message per partition, up to 32 entries). */
  private async sendMany(items: readonly Outgoing[]): Promise<void> {
    if (this.runtime) return this.runtime.sendMany(items);
    this.mailbox ??= new MailboxClient(this.nc, { prefix: this.prefix, partitions: this.partitions });
    return this.mailbox.sendMany(items);
  }

  private async readState<T>(address: string): Promise<T | null> {
    if (this.runtime) return (await this.runtime.read(address)) as T | null;
    const e = await this.stateKv.get(actorKey(address));
    if (!e || e.operation !== 'PUT') return null;
    const rec = decode<{ s?: unknown; d?: boolean }>(e.value);
    return rec && !rec.d ? ((rec.s as T) ?? null) : null;
  }

  private async entry(id: string): Promise<{ value: RegistryEntry; revision: number; written: number } | null> {
    if (!/^[A-Za-z0-9_-]+$/.test(id)) return null;
    const e = await this.kv.get(`id.${id}`);
    if (!e || e.operation !== 'PUT') return null;
    return { value: decode<RegistryEntry>(e.value), revision: e.revision, written: e.created.getTime() };
  }

  /**
   * The entry a registry write builds on: the latest one, unless that is a write which lost its
   * race but was stored after the winner (nats-server#4320): then the winner's value (the first
   * write after the revision both expected), still at the latest revision for the compare-and-set.
   * Building on the loser's entry would lose the winner's change (a patch on a stale spec).
   */
  private async baseEntry(id: string): Promise<{ value: RegistryEntry; revision: number; written: number; latest?: RegistryEntry } | null> {
    const e = await this.entry(id);
    if (!e || this.replicas === 1 || e.value.prev === undefined) return e;
    const first = await this.successorOf(`id.${id}`, e.value.prev);
    if (!first || first.seq === e.revision || first.header?.get('KV-Operation')) return e;
    return { value: decode<RegistryEntry>(first.data), revision: e.revision, written: e.written, latest: e.value };
  }

  /**
   * The desired spec of a generation, stored once per generation in `<prefix>_specs` as chunks
   * (`<id>.<gen>.<i>`) plus a small head (`<id>.<gen>`), so neither the mailbox message history
   * nor the supervisor's record has to carry it and a template larger than a third of
   * max_payload still works.
   */
  private async putSpec(id: string, key: string, doc: SpecDoc | Uint8Array): Promise<void> {
    const bytes = doc instanceof Uint8Array ? doc : encode(doc);
    const n = Math.max(1, Math.ceil(bytes.length / SPEC_CHUNK_BYTES));
    await Promise.all(Array.from({ length: n }, (_, i) => this.specs.put(`${id}.${key}.${i}`, bytes.subarray(i * SPEC_CHUNK_BYTES, (i + 1) * SPEC_CHUNK_BYTES))));
    await this.specs.put(`${id}.${key}`, encode({ chunks: n, size: bytes.length }));
  }

  private async getSpec(id: string, key: string): Promise<SpecDoc> {
    const gen = key.split('-')[0];
    const head = await this.specs.get(`${id}.${key}`);
    if (!head || head.operation !== 'PUT') throw new KilnError('STACK_NOT_FOUND', `The desired state of stack ${id} generation ${gen} is not stored`);
    const { chunks, size } = decode<{ chunks: number; size: number }>(head.value);
    const parts = await Promise.all(Array.from({ length: chunks }, (_, i) => this.specs.get(`${id}.${key}.${i}`)));
    const bytes = new Uint8Array(size);
    let at = 0;
    for (const p of parts) {
      if (!p || p.operation !== 'PUT') throw new KilnError('STACK_NOT_FOUND', `The desired state of stack ${id} generation ${gen} is incomplete`);
      bytes.set(p.value, at);
      at += p.value.length;
    }
    return decode<SpecDoc>(bytes);
  }

  /** Removes a stored spec (best effort: a leftover costs storage, not correctness). */
  private async dropSpec(id: string, key: string): Promise<void> {
    try {
      const head = await this.specs.get(`${id}.${key}`);
      const chunks = head && head.operation === 'PUT' ? decode<{ chunks: number }>(head.value).chunks : 0;
      await Promise.all([this.specs.purge(`${id}.${key}`), ...Array.from({ length: chunks }, (_, i) => this.specs.purge(`${id}.${key}.${i}`))]);
    } catch (e) {
      this.log.warn({ stack: id, spec: key, err: String(e) }, 'spec cleanup failed');
    }
  }

  /**
   * Whether our compare-and-set write at `revision` of `key` (expecting `expected`) is the one
   * that followed `expected`. nats-server before 2.9.21 checks the expected revision outside
   * the Raft log on clustered streams (nats-server#4320), so two writes expecting the same
   * revision can both be stored; the first one stored after `expected` is the real successor.
   * The bucket keeps a few revisions per key, so the first one is still there to find.
   */
  private async firstWriteAfter(key: string, expected: number, revision: number): Promise<boolean> {
    if (this.replicas === 1) return true;
    return (await this.successorOf(key, expected))?.seq === revision;
  }

  /** The first registry write to `key` stored after `revision` (read from the stream leader). */
  private async successorOf(key: string, revision: number): Promise<StoredMsg | null> {
    this.jsm ??= await jetstreamManager(this.nc, { timeout: 10_000 });
    // next_by_subj (server 2.9+) is missing from nats.js's MsgRequest type for this call.
    return this.jsm.streams.getMessage(`KV_${this.prefix}_stacks`, { seq: revision + 1, next_by_subj: `$KV.${this.prefix}_stacks.${key}` } as unknown as { seq: number });
  }

  /** A stack id from an id, a default-tenant name or a (tenant, name). */
  async resolve(ref: StackRef): Promise<string> {
    if (typeof ref === 'string' && (await this.entry(ref))) return ref;
    const { tenant, name } = typeof ref === 'string' ? { tenant: DEFAULT_TENANT, name: ref } : ref;
    if (NAME_RE.test(name) && TENANT_PATTERN.test(tenant)) {
      const byName = await this.kv.get(`name.${tenant}.${name}`);
      if (byName && byName.operation === 'PUT') return byName.string();
    }
    throw new KilnError('STACK_NOT_FOUND', `The Stack (${typeof ref === 'string' ? ref : ref.name}) could not be found.`);
  }

  private checkIdentity(tenant: string, name: string): void {
    if (!TENANT_PATTERN.test(tenant)) throw new KilnError('REQUEST_INVALID', `Invalid tenant ${tenant}: must match ${TENANT_PATTERN.source}`, { path: 'tenant' });
    if (!NAME_RE.test(name)) throw new KilnError('REQUEST_INVALID', `Invalid stack name ${name}: must start with a letter and contain only letters, digits, '_', '-' and '.'`, { path: 'name' });
  }

  async createStack(req: StackRequest, opts: WriteOptions = {}): Promise<GenerationRef> {
    const { name, tenant = DEFAULT_TENANT, ...spec } = req;
    return this.begin(tenant, name, 'create', { spec }, opts.requestId);
  }

  /**
   * Creates a stack from abandon data: resources named there are taken over with their
   * physical ids (and attributes) instead of being created; nested resources (groups, nested
   * stacks) are created anew.
   */
  async adoptStack(req: AdoptRequest, opts: WriteOptions = {}): Promise<GenerationRef> {
    const { name, tenant = DEFAULT_TENANT, adoptData, ...spec } = req;
    const adopt: Record<string, AdoptedResource> = {};
    for (const [rname, r] of Object.entries(adoptData.resources ?? {})) {
      if (!r || typeof r !== 'object') continue;
      if (r.type !== undefined && this.types.get(r.type)?.kind === 'nested') continue;
      adopt[rname] = { physicalId: typeof r.resource_id === 'string' ? r.resource_id : null, attrs: r.attributes && typeof r.attributes === 'object' ? r.attributes : {} };
    }
    return this.begin(tenant, name, 'adopt', { spec, adopt }, opts.requestId);
  }

  private async begin(tenant: string, name: string, op: 'create' | 'adopt', doc: SpecDoc, requestId: string | undefined): Promise<GenerationRef> {
    this.checkIdentity(tenant, name);
    const id = randomUUID();
    const entry: RegistryEntry = { tenant, name, gen: 1, spec: '1', op, ...(requestId !== undefined ? { request: { id: requestId, gen: 1 } } : {}) };
    try {
      await this.kv.create(`name.${tenant}.${name}`, id);
    } catch {
      const held = await this.kv.get(`name.${tenant}.${name}`);
      const heldId = held?.operation === 'PUT' ? held.string() : undefined;
      const e = heldId ? await this.entry(heldId) : null;
      if (heldId && e && requestGeneration(e.value, requestId) === 1) {
        // A retry of the create that made this stack: the same answer. The first attempt may have
        // died before its message to the supervisor, which ignores a repeated generation 1.
        if (e.value.gen === 1) await this.tellSupervisor(heldId, op, entry, doc);
        return { id: heldId, name, generation: 1 };
      }
      throw new KilnError('STACK_EXISTS', `The Stack (${name}) already exists.`);
    }
    // A fresh id has one writer: no nonce needed.
    await this.putSpec(id, '1', doc);
    await this.kv.create(`id.${id}`, encode(entry));
    await this.tellSupervisor(id, op, entry, doc);
    return { id, name, generation: 1 };
  }

  /** A new desired spec; group capacity overrides survive while the group's own count is unchanged. */
  updateStack(ref: StackRef, spec: StackSpec, opts: WriteOptions = {}): Promise<GenerationRef> {
    return this.bump(ref, 'update', opts, async (load, e) => (e.value.overridden ? this.carryOverrides(await load(), spec) : { spec }));
  }

  /** Heat's PATCH: parameters merged into the stored ones; template/environment/files replaced only when given. */
  patchStack(ref: StackRef, patch: Partial<StackSpec>, opts: WriteOptions = {}): Promise<GenerationRef> {
    return this.bump(ref, 'patch', opts, async (load) => {
      const cur = await load();
      const given = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) as Partial<StackSpec>;
      const spec: StackSpec = { ...cur.spec, ...given, parameters: { ...(cur.spec.parameters ?? {}), ...(patch.parameters ?? {}) } };
      return this.carryOverrides(cur, spec);
    });
  }

  deleteStack(ref: StackRef, opts: WriteOptions = {}): Promise<GenerationRef> {
    return this.bump(ref, 'delete', opts, null);
  }

  /**
   * Re-targets the stack to the desired state before the current one, as a new generation
   * (newest wins: in-flight work re-targets). A stack with one desired state so far re-asserts it.
   */
  cancelUpdate(ref: StackRef, opts: WriteOptions = {}): Promise<GenerationRef> {
    return this.bump(ref, 'cancel', opts, async (_load, e) => this.getSpec(e.id, e.value.prevSpec ?? e.value.spec));
  }

  /**
   * Sets a ResourceGroup's desired member count as a new generation. The count is stored as an
   * override in the desired state: later updates keep it while they leave the template's own
   * count unchanged; one that changes it wins (newest wins).
   */
  setGroupCapacity(ref: StackRef, group: string, capacity: number, opts: WriteOptions = {}): Promise<GenerationRef> {
    if (!Number.isInteger(capacity) || capacity < 0) throw new KilnError('REQUEST_INVALID', `capacity must be a non-negative integer, got ${capacity}`, { path: 'capacity' });
    return this.bump(ref, 'update', opts, async (load, e) => {
      const cur = await load();
      const plan = this.template.plan(cur.spec, { stackId: e.id, stackName: e.value.name });
      const r = plan.resources.find((x) => x.name === group);
      if (!r || !GROUP_TYPES.has(this.types.get(r.type)?.name ?? r.type)) {
        throw new KilnError('RESOURCE_NOT_FOUND', `The ResourceGroup (${group}) could not be found in Stack ${e.value.name}.`, { path: 'group' });
      }
      return { ...cur, overrides: { ...(cur.overrides ?? {}), [group]: { count: capacity, base: this.groupCount(r, plan.scope) } } };
    });
  }

  /** The count a group's template gives it (the value when it resolves without resources, else the expression). */
  private groupCount(r: PlannedResource, scope: ResolveScope): unknown {
    const p = r.properties && typeof r.properties === 'object' ? (r.properties as Record<string, unknown>) : {};
    const expr = r.type === AUTOSCALING_GROUP ? (p.desired_capacity ?? p.min_size) : p.count;
    try {
      const v = this.template.resolve(expr ?? 1, scope, NO_DEPS);
      return 'value' in v ? v.value : expr;
    } catch {
      return expr;
    }
  }

  private carryOverrides(cur: SpecDoc, spec: StackSpec): SpecDoc {
    if (!cur.overrides) return { spec };
    let plan;
    try {
      plan = this.template.plan(spec, { stackId: 'overrides', stackName: 'overrides' });
    } catch {
      return { spec }; // an invalid spec fails in the supervisor with its own error
    }
    const overrides: NonNullable<SpecDoc['overrides']> = {};
    for (const [name, o] of Object.entries(cur.overrides)) {
      // A group in a nested stack (`app/asg`): kept while the nesting resource is.
      if (name.includes('/')) {
        if (plan.resources.some((x) => x.name === name.slice(0, name.indexOf('/')))) overrides[name] = o;
        continue;
      }
      const r = plan.resources.find((x) => x.name === name);
      if (r && deepEqual(this.groupCount(r, plan.scope), o.base)) overrides[name] = o;
    }
    return Object.keys(overrides).length ? { spec, overrides } : { spec };
  }

  private async bump(
    ref: StackRef,
    op: StackOp,
    { requestId }: WriteOptions,
    /** The new desired spec, given a loader of the current one; null for a delete. */
    next: ((load: () => Promise<SpecDoc>, e: { id: string; value: RegistryEntry }) => Promise<SpecDoc>) | null,
  ): Promise<GenerationRef> {
    const id = await this.resolve(ref);
    // A spec this call stored for a write that lost its race: the next attempt reuses it when it
    // writes the same spec (concurrent writers would otherwise store their spec once per lost race).
    let stored: { key: string; bytes: Uint8Array } | null = null;
    const referenced = (v: RegistryEntry | undefined, key: string) => v?.spec === key || v?.prevSpec === key;
    // Generations this call's writes lost after being stored out of order (nats-server#4320): the
    // entry may still carry this request's id, but another writer answered with that generation.
    const lost = new Set<number>();
    try {
      for (let attempt = 0; ; attempt++) {
        const e = await this.baseEntry(id);
        // A retry of a write whose answer was lost: the same answer, also when other writers
        // wrote on top of it since. If nothing newer was written, its message to the supervisor
        // is sent again (the first attempt may have died before sending it; the supervisor
        // ignores a generation it has).
        const mine = e ? requestGeneration(e.value, requestId, lost) : undefined;
        if (e && mine !== undefined) {
          if (mine === e.value.gen) await this.tellSupervisor(id, op, e.value, e.value.deleted ? null : await this.getSpec(id, e.value.spec));
          return { id, name: e.value.name, generation: mine };
        }
        if (!e || e.value.deleted) throw new KilnError('STACK_NOT_FOUND', `The Stack (${typeof ref === 'string' ? ref : ref.name}) could not be found.`);
        const gen = e.value.gen + 1;
        const doc = next ? await next(() => this.getSpec(id, e.value.spec), { id, value: e.value }) : null;
        const bytes = doc ? encode(doc) : null;
        const kept: { key: string; bytes: Uint8Array } | null = stored;
        // Not reused when the entry names it (a write stored out of order, see firstWriteAfter).
        const reuse: boolean = !!kept && !!bytes && !referenced(e.latest ?? e.value, kept.key) && Buffer.compare(kept.bytes, bytes) === 0;
        if (kept && !reuse && !referenced(e.latest ?? e.value, kept.key)) await this.dropSpec(id, kept.key);
        stored = null;
        // A reused key keeps the generation of its first attempt (the key only has to be unique).
        const specKey: string = reuse ? kept!.key : doc ? `${gen}-${randomUUID().slice(0, 8)}` : e.value.spec;
        const entry: RegistryEntry = {
          tenant: e.value.tenant,
          name: e.value.name,
          gen,
          ...(op === 'delete' ? { deleted: true } : {}),
          spec: specKey,
          ...(doc ? { prevSpec: e.value.spec } : e.value.prevSpec !== undefined ? { prevSpec: e.value.prevSpec } : {}),
          ...((doc ? doc.overrides : e.value.overridden) ? { overridden: true } : {}),
          ...(requestId !== undefined ? { request: { id: requestId, gen } } : {}),
          ...(requestsOf(e.value).length > 0 ? { earlier: requestsOf(e.value).slice(0, EARLIER_REQUESTS) } : {}),
          op,
          prev: e.revision,
        };
        if (bytes && !reuse) await this.putSpec(id, specKey, bytes);
        let won: boolean;
        try {
          won = await this.firstWriteAfter(`id.${id}`, e.revision, await this.kv.update(`id.${id}`, encode(entry), e.revision));
        } catch (err) {
          if (!(err instanceof JetStreamApiError && err.code === 10071)) {
            // Not a refusal: the write may be stored (a timeout, or the check after it failed
            // while the cluster elects a leader). Taking it for lost would skip its generation.
            // With a request id the next attempt finds it, if it was stored and won; without
            // one, only the caller can tell, so it gets the error.
            if (requestId === undefined || attempt >= 20) throw err;
            this.log.warn({ stack: id, generation: gen, attempt, err: String(err) }, 'registry write outcome unknown: reading the entry again');
            if (bytes) stored = { key: specKey, bytes };
            await new Promise((r) => setTimeout(r, Math.min(2_000, 200 * (attempt + 1))));
            continue;
          }
          won = false;
          if (attempt >= 20) {
            if (doc) await this.dropSpec(id, specKey);
            throw new KilnError('CONFLICT', `Stack ${e.value.name} is being changed concurrently`, { cause: err });
          }
        }
        if (!won) {
          this.log.info({ stack: id, generation: gen, attempt }, 'registry write lost a race: taking the next generation');
          // A concurrent writer took this generation: take the next. A refused write's spec is
          // ours alone (kept for the retry, dropped unless it writes the same); a write stored out
          // of order stays referenced as the entry's spec until the retry replaces it.
          if (bytes) stored = { key: specKey, bytes };
          lost.add(gen);
          continue;
        }
        // Only the current and the previous desired states are ever read again.
        if (doc && e.value.prevSpec !== undefined && e.value.prevSpec !== e.value.spec) await this.dropSpec(id, e.value.prevSpec);
        // The name is free again once a delete is accepted (Heat: after DELETE_COMPLETE), and no
        // desired spec of the stack will be read again.
        if (op === 'delete') {
          await this.kv.delete(`name.${e.value.tenant}.${e.value.name}`).catch(() => undefined);
          await Promise.all([e.value.spec, e.value.prevSpec].filter((k) => k !== undefined).map((k) => this.dropSpec(id, k)));
        }
        await this.tellSupervisor(id, op, entry, doc);
        return { id, name: e.value.name, generation: gen };
      }
    } finally {
      // Left after a lost race (a later attempt threw or answered a repeated request).
      if (stored) {
        const key = (stored as { key: string }).key;
        const cur = await this.entry(id).catch(() => null);
        if (!referenced(cur?.value, key)) await this.dropSpec(id, key);
      }
    }
  }

  /** The registry watch (every entry once, then each write) and the audit timer; see RegistryAudit. */
  private async startRegistryAudit(audit: RegistryAudit): Promise<void> {
    const watch = await this.kv.watch({ key: 'id.*' });
    this.unfollow.push(() => watch.stop());
    void (async () => {
      for await (const e of watch) {
        const id = e.key.slice(3);
        if (e.operation === 'PUT') this.unconfirmed.set(id, decode<RegistryEntry>(e.value).gen);
        else this.unconfirmed.delete(id);
      }
    })().catch((err: unknown) => this.log.error({ err: String(err) }, 'registry watch ended: lost stack generations are no longer re-sent'));
    this.auditHandle = setInterval(() => void this.auditRegistry(audit), audit.periodMs);
    this.auditHandle.unref();
  }

  /** One pass of the registry audit over the unconfirmed generations of stacks whose supervisor this node hosts. */
  private async auditRegistry(audit: RegistryAudit): Promise<void> {
    const rt = this.runtime;
    if (this.auditing || !rt) return;
    this.auditing = true;
    try {
      const owned = new Set(rt.ownedPartitions());
      for (const [id, gen] of [...this.unconfirmed]) {
        if (owned.has(partitionOf(stackAddress(id), this.partitions))) await this.repairLostDesire(id, gen, audit);
      }
    } catch (e) {
      this.log.warn({ err: String(e) }, 'registry audit failed; the next one tries again');
    } finally {
      this.auditing = false;
    }
  }

  /** `seen`: the generation the registry watch reported for the stack. */
  private async repairLostDesire(id: string, seen: number, audit: RegistryAudit): Promise<void> {
    const e = await this.baseEntry(id);
    const s = await this.readState<StackState>(stackAddress(id));
    const now = Date.now();
    if (!e || (s?.gen ?? 0) >= e.value.gen) {
      // Taken (or gone): done unless the watch has reported a newer generation meanwhile.
      if (this.unconfirmed.get(id) === seen) this.unconfirmed.delete(id);
      this.auditRepeats.delete(id);
      return;
    }
    if (now - e.written < audit.afterMs) return;
    const last = this.auditRepeats.get(id);
    if (last && last.gen === e.value.gen && now < last.next) return;
    const period = last && last.gen === e.value.gen ? Math.min(last.period * 2, audit.maxBackoffMs) : audit.afterMs;
    this.auditRepeats.set(id, { gen: e.value.gen, next: now + period, period });
    const op: StackOp = e.value.op ?? (e.value.deleted ? 'delete' : e.value.gen === 1 ? 'create' : 'update');
    this.log.warn({ stack: id, generation: e.value.gen, supervisorGeneration: s?.gen ?? 0, op }, 'the supervisor has not taken a stored generation: sending it again');
    await this.desire(id, op, e.value, e.value.deleted ? null : await this.getSpec(id, e.value.spec));
  }

  /**
   * After the registry write that acknowledges a generation: tells its supervisor. A failure
   * does not fail the acknowledged write (its caller would retry it, and two writers retrying
   * each other's generations away would take a new one each time). The message is sent again
   * in the background (after 0.5–1 s, doubling to 2.5–5 s, jittered, for a minute; only the
   * stack's newest such generation), as the mailbox stream is usually back within seconds; after
   * that, the registry audit sends a generation the supervisor has not taken.
   */
  private async tellSupervisor(id: string, op: StackOp, entry: RegistryEntry, doc: SpecDoc | null): Promise<void> {
    try {
      await this.desire(id, op, entry, doc);
      // Told: an older generation being sent again is superseded.
      if ((this.retelling.get(id)?.gen ?? Infinity) <= entry.gen) this.retelling.delete(id);
      return;
    } catch (err) {
      this.log.warn({ stack: id, generation: entry.gen, op, err: String(err) }, 'the supervisor was not told of a stored generation: sending it again');
    }
    void this.tellAgain(id, op, entry, doc);
  }

  private async tellAgain(id: string, op: StackOp, entry: RegistryEntry, doc: SpecDoc | null): Promise<void> {
    if ((this.retelling.get(id)?.gen ?? 0) > entry.gen) return;
    const token = { gen: entry.gen };
    this.retelling.set(id, token);
    const current = () => this.retelling.get(id) === token && !this.stopping;
    for (let attempt = 1, waited = 0; waited < 60_000; attempt++) {
      const delay = backoffMs(attempt, `tell:${id}:${entry.gen}`, 1_000, 5_000);
      waited += delay;
      await new Promise((r) => setTimeout(r, delay).unref());
      if (!current()) return;
      try {
        await this.desire(id, op, entry, doc);
        break;
      } catch {
        // Still no mailbox: the next attempt, or the audit.
      }
    }
    if (current()) this.retelling.delete(id);
  }

  /** Tells the supervisor the generation `entry` records (with its spec unless it removes the stack). */
  private async desire(id: string, op: StackOp, entry: RegistryEntry, doc: SpecDoc | null): Promise<void> {
    const overrides = doc?.overrides ? Object.fromEntries(Object.entries(doc.overrides).map(([k, o]) => [k, o.count])) : undefined;
    await this.send(stackAddress(id), {
      kind: 'setDesired',
      op,
      gen: entry.gen,
      name: entry.name,
      tenant: entry.tenant,
      ...(doc ? { spec: doc.spec } : {}),
      ...(overrides ? { overrides } : {}),
      ...(doc?.adopt && entry.gen === 1 ? { adopt: doc.adopt } : {}),
    } satisfies StackMsg);
  }

  async getStack(ref: StackRef): Promise<StackInfo> {
    const id = await this.resolveAny(ref);
    const reg = await this.entry(id);
    const s = await this.readState<StackState>(stackAddress(id));
    const gen = Math.max(reg?.value.gen ?? 0, s?.gen ?? 0);
    // The supervisor has not seen the newest generation yet: it is converging to it.
    const behind = !s || s.gen < gen;
    const counts = { total: 0, settled: 0, failed: 0, deleted: 0 };
    for (const sh of Object.values(s?.shards ?? {})) {
      counts.total += sh.total;
      counts.settled += sh.settled;
      counts.failed += sh.failed;
      counts.deleted += sh.gone;
    }
    // Shards report their totals as they go: until all did, the generation's size says it.
    if (s) counts.total = Math.max(counts.total, s.group ? s.group.shape.count : s.desiredNames.length);
    const action = behind ? (reg?.value.deleted ? 'DELETE' : gen === 1 ? 'CREATE' : 'UPDATE') : s.action;
    const heat = behind ? 'IN_PROGRESS' : s.heatStatus;
    return {
      id,
      tenant: reg?.value.tenant ?? s?.tenant ?? DEFAULT_TENANT,
      name: reg?.value.name ?? s?.name ?? '',
      generation: gen,
      status: behind ? 'CONVERGING' : s.status,
      stackStatus: `${action}_${heat}`,
      reason: behind ? '' : s.reason,
      outputs: (behind ? {} : (s.outputs as Record<string, unknown>)) ?? {},
      resources: counts,
      createdAt: s?.createdAt ?? 0,
      updatedAt: s?.updatedAt ?? 0,
    };
  }

  /** The desired spec of the stack's current generation (what `stack show` describes). */
  async desiredSpec(ref: StackRef): Promise<{ generation: number; spec: StackSpec }> {
    const id = await this.resolveAny(ref);
    const e = await this.entry(id);
    if (!e || e.value.deleted) throw new KilnError('STACK_NOT_FOUND', `The Stack (${typeof ref === 'string' ? ref : ref.name}) could not be found.`);
    return { generation: e.value.gen, spec: (await this.getSpec(id, e.value.spec)).spec };
  }

  /** The tenant's stacks (not deleted), by name; paged with an opaque cursor. */
  async listStacks(tenant: string, o: ListStacksOptions = {}): Promise<{ stacks: StackInfo[]; nextCursor?: string }> {
    const limit = Math.max(1, o.limit ?? 100);
    const names = (await this.stackNames(tenant)).filter((n) => o.cursor === undefined || n > o.cursor);
    const stacks: StackInfo[] = [];
    let last: string | undefined;
    for (const n of names) {
      if (stacks.length >= limit) break;
      last = n;
      if (o.name !== undefined && n !== o.name) continue;
      const s = await this.getStack({ tenant, name: n }).catch((e: unknown) => {
        if ((e as KilnError).code === 'STACK_NOT_FOUND') return undefined; // deleted meanwhile
        throw e;
      });
      if (s && (o.status === undefined || s.stackStatus === o.status)) stacks.push(s);
    }
    return last !== undefined && last !== names.at(-1) ? { stacks, nextCursor: last } : { stacks };
  }

  async countStacks(tenant: string): Promise<number> {
    return (await this.stackNames(tenant)).length;
  }

  private async stackNames(tenant: string): Promise<string[]> {
    if (!TENANT_PATTERN.test(tenant)) return [];
    const prefix = `name.${tenant}.`;
    const out: string[] = [];
    for await (const k of await this.kv.keys(`${prefix}>`)) out.push(k.slice(prefix.length));
    return out.sort();
  }

  /** Like resolve, but also finds deleted stacks (by id) and nested stacks (no registry entry). */
  private async resolveAny(ref: StackRef): Promise<string> {
    try {
      return await this.resolve(ref);
    } catch (e) {
      if (typeof ref === 'string' && (await this.readState(stackAddress(ref)))) return ref;
      throw e;
    }
  }

  async listResources(ref: StackRef): Promise<ResourceInfo[]> {
    return (await this.listResourcesPage(ref, { from: 0, limit: Infinity })).items;
  }

  /**
   * A page of a stack's resources: from position `from` of its resource names, the first `limit`
   * that exist and pass `filter`, reading their states a chunk at a time (a page of 100 of a
   * 10,000-resource stack reads ~100 states, not 10,000). `next`: the position to go on from.
   */
  async listResourcesPage(ref: StackRef, opts: { from: number; limit: number; filter?: (r: ResourceInfo) => boolean }): Promise<{ items: ResourceInfo[]; next?: number }> {
    const id = await this.resolveAny(ref);
    const s = await this.readState<StackState>(stackAddress(id));
    if (!s) return { items: [] };
    const names: string[] = s.group ? groupMemberNames(s) : [...s.known];
    const items: ResourceInfo[] = [];
    let at = Math.max(0, opts.from);
    while (at < names.length && items.length < opts.limit) {
      const chunk = names.slice(at, at + Math.min(LIST_CHUNK, Math.max(16, opts.limit - items.length)));
      const states = await Promise.all(chunk.map((n) => this.readState<ResourceState>(resourceAddress(id, n))));
      for (let i = 0; i < chunk.length && items.length < opts.limit; i++, at++) {
        const info = resourceInfo(chunk[i]!, states[i]);
        if (info && (!opts.filter || opts.filter(info))) items.push(info);
      }
    }
    return { items, ...(at < names.length ? { next: at } : {}) };
  }

  /** Events of a stack from a stream sequence (inclusive); `seq` of the last one lets a client resume. */
  async events(ref: StackRef, fromSeq = 1, limit = 10_000): Promise<Array<{ seq: number; event: EngineEvent }>> {
    const id = await this.resolveAny(ref);
    const tenant = (await this.entry(id))?.value.tenant ?? (await this.readState<StackState>(stackAddress(id)))?.tenant ?? DEFAULT_TENANT;
    const jsm = await jetstreamManager(this.nc);
    const subject = `${EVENTS_PREFIX}.${tenant}.${encodeToken(id)}.*`;
    const stream = await jsm.streams.find(subject);
    const info = await jsm.streams.info(stream);
    const out: Array<{ seq: number; event: EngineEvent }> = [];
    if (info.state.last_seq < fromSeq) return out;
    const consumer = await this.js.consumers.get(stream, { filter_subjects: subject, opt_start_seq: Math.max(1, fromSeq) });
    const iter = await consumer.fetch({ max_messages: limit, expires: 2_000 });
    for await (const m of iter) {
      out.push({ seq: m.seq, event: decode<EngineEvent>(m.data) });
      if (m.info.pending === 0 || out.length >= limit) break;
    }
    return out;
  }

  /** The actor address of a resource named by a name or a nested path (`group/3`, `app/db`). */
  private async resourceOf(ref: StackRef, path: string): Promise<{ address: string; state: ResourceState }> {
    let stackId = await this.resolveAny(ref);
    const parts = path.split('/');
    for (let i = 0; ; i++) {
      const address = resourceAddress(stackId, parts[i]!);
      const r = await this.readState<ResourceState>(address);
      if (!r || !r.current) break;
      if (i === parts.length - 1) return { address, state: r };
      if (!r.current.child) break;
      stackId = r.current.child;
    }
    throw new KilnError('RESOURCE_NOT_FOUND', `The Resource (${path}) could not be found in Stack ${typeof ref === 'string' ? ref : ref.name}.`, { path: 'resource' });
  }

  /** Signals a resource (WaitConditionHandle): the data lands in the handle's attributes. */
  async signal(ref: StackRef, resourceName: string, data: unknown): Promise<void> {
    const { address, state } = await this.resourceOf(ref, resourceName);
    if (state.current?.type === SCALING_POLICY) return this.scalingSignal(state, address);
    await this.send(address, { kind: 'signal', data });
  }

  /**
   * A scaling policy was signalled: a new desired capacity for its group (a generation with the
   * group's capacity override, like setGroupCapacity), from the newest capacity asked for; ignored
   * during the policy's cooldown (Heat). Never refused because a scale is in flight.
   */
  private async scalingSignal(policy: ResourceState, address: string): Promise<void> {
    const props = policy.current!.props;
    const group = Object.entries(policy.deps).find(([, x]) => x.ref === props.auto_scaling_group_id)?.[0];
    if (!group) throw new KilnError('RESOURCE_NOT_FOUND', `The scaling group of policy ${policy.name} could not be found.`, { path: 'auto_scaling_group_id' });
    const now = Date.now();
    const cooldownMs = Number(props.cooldown ?? 0) * 1000;
    const last = Number(policy.current!.attrs.last_adjustment_at ?? 0);
    if (cooldownMs > 0 && now - last < cooldownMs) return;
    if (policy.eventsRoot) await this.nestedScaling(policy, group);
    else await this.bump(policy.stackId, 'update', {}, async (load, e) => {
      const cur = await load();
      const plan = this.template.plan(cur.spec, { stackId: e.id, stackName: e.value.name });
      const r = plan.resources.find((x) => x.name === group);
      if (!r || r.type !== AUTOSCALING_GROUP) throw new KilnError('RESOURCE_NOT_FOUND', `The AutoScalingGroup (${group}) could not be found in Stack ${e.value.name}.`, { path: 'auto_scaling_group_id' });
      const gp = r.properties && typeof r.properties === 'object' ? (r.properties as Record<string, unknown>) : {};
      const num = (expr: unknown) => {
        const v = this.template.resolve(expr ?? null, plan.scope, NO_DEPS);
        return 'value' in v ? Number(v.value) : NaN;
      };
      const min = num(gp.min_size);
      const max = num(gp.max_size);
      const current = cur.overrides?.[group]?.count ?? asgCapacity({ min_size: min, max_size: max, desired_capacity: gp.desired_capacity === undefined ? undefined : num(gp.desired_capacity) });
      const next = scaledCapacity(current, props, min, max);
      return { ...cur, overrides: { ...(cur.overrides ?? {}), [group]: { count: next, base: this.groupCount(r, plan.scope) } } };
    });
    await this.send(address, { kind: 'signal', data: { scaledAt: now } } satisfies ResourceMsg);
  }

  /**
   * A scaling policy in a nested stack (a template resource or OS::Heat::Stack below the
   * top-level stack): the decision is a capacity override of the top-level stack keyed by the
   * group's path (`app/asg`), which each nesting resource passes down to its child stack. The
   * group's sizes come from its resolved properties.
   */
  private async nestedScaling(policy: ResourceState, group: string): Promise<void> {
    const root = policy.eventsRoot!;
    const path = `${root.path}${group}`;
    const g = await this.readState<ResourceState>(resourceAddress(policy.stackId, group));
    if (!g?.current || g.current.type !== AUTOSCALING_GROUP) {
      throw new KilnError('RESOURCE_NOT_FOUND', `The AutoScalingGroup (${path}) could not be found.`, { path: 'auto_scaling_group_id' });
    }
    const gp = g.current.props;
    await this.bump(root.stackId, 'update', {}, async (load, e) => {
      const cur = await load();
      const plan = this.template.plan(cur.spec, { stackId: e.id, stackName: e.value.name });
      const top = plan.resources.find((x) => x.name === root.path.split('/')[0]);
      if (!top || this.types.get(top.type)?.kind !== 'nested' || GROUP_TYPES.has(top.type)) {
        // Members of a group are generated from one definition: no override reaches one of them.
        throw new KilnError('REQUEST_INVALID', `Scaling policy ${root.path}${policy.name}: policies inside group members are not supported`, { path: 'resource' });
      }
      const current = cur.overrides?.[path]?.count ?? asgCapacity(gp);
      const next = scaledCapacity(current, policy.current!.props, Number(gp.min_size), Number(gp.max_size));
      return { ...cur, overrides: { ...(cur.overrides ?? {}), [path]: { count: next, base: null } } };
    });
  }

  /**
   * Heat's check: the resource (or every resource of the stack, nested ones included) observes
   * its physical resource now; drift found is repaired as heal does (events say what was found).
   */
  async check(ref: StackRef, resource?: string): Promise<void> {
    const checkStack = async (stackId: string): Promise<void> => {
      const rs = await this.listResources(stackId);
      const checks = rs.filter((r) => !r.nestedStackId).map((r) => ({ to: resourceAddress(stackId, r.name), msg: { kind: 'check' } satisfies ResourceMsg }));
      await Promise.all([this.sendMany(checks), ...rs.filter((r) => r.nestedStackId).map((r) => checkStack(r.nestedStackId!))]);
    };
    if (resource === undefined) return checkStack(await this.resolveAny(ref));
    const { address, state } = await this.resourceOf(ref, resource);
    if (state.current?.child) return checkStack(state.current.child);
    await this.send(address, { kind: 'check' } satisfies ResourceMsg);
  }

  /**
   * Heat's mark-unhealthy: the resource's current physical resource is replaced (create the new
   * one, then delete the old) — here at once (through a repair permit, as heal) rather than at
   * the next stack update.
   */
  async markUnhealthy(ref: StackRef, resource: string, reason = ''): Promise<void> {
    const { address } = await this.resourceOf(ref, resource);
    await this.send(address, { kind: 'unhealthy', reason } satisfies ResourceMsg);
  }

  /**
   * Heat's abandon: the stack is forgotten (its name is freed, its actors wind down) and its
   * resources are left as they are; the result is the data `adoptStack` takes.
   */
  async abandonStack(ref: StackRef): Promise<AbandonData> {
    const id = await this.resolve(ref);
    const e = await this.entry(id);
    if (!e || e.value.deleted) throw new KilnError('STACK_NOT_FOUND', `The Stack (${typeof ref === 'string' ? ref : ref.name}) could not be found.`);
    const [info, doc, resources] = await Promise.all([this.getStack(id), this.getSpec(id, e.value.spec), this.listResources(id)]);
    const [action = 'CREATE', ...status] = info.stackStatus.split('_');
    const data: AbandonData = {
      id,
      name: e.value.name,
      tenant: e.value.tenant,
      action,
      status: status.join('_'),
      template: doc.spec.template,
      ...(doc.spec.environment !== undefined ? { environment: doc.spec.environment } : {}),
      ...(doc.spec.parameters !== undefined ? { parameters: doc.spec.parameters } : {}),
      ...(doc.spec.files !== undefined ? { files: doc.spec.files } : {}),
      resources: Object.fromEntries(
        resources.map((r) => {
          const [ra = 'CREATE', ...rs] = r.status.split('_');
          return [r.name, { name: r.name, resource_id: r.physicalId, type: r.type, action: ra, status: rs.join('_'), metadata: {}, resource_data: {}, attributes: r.attributes }];
        }),
      ),
    };
    try {
      await this.kv.delete(`id.${id}`, { previousSeq: e.revision });
    } catch (err) {
      throw new KilnError('CONFLICT', `Stack ${e.value.name} changed while being abandoned; try again`, { cause: err });
    }
    await this.kv.delete(`name.${e.value.tenant}.${e.value.name}`).catch(() => undefined);
    await Promise.all([this.dropSpec(id, e.value.spec), ...(e.value.prevSpec !== undefined ? [this.dropSpec(id, e.value.prevSpec)] : [])]);
    // The actors wind down like a delete whose resources forget instead of deleting (nested stacks too).
    await this.send(stackAddress(id), { kind: 'setDesired', op: 'abandon', gen: e.value.gen + 1, name: e.value.name, tenant: e.value.tenant } satisfies StackMsg);
    return data;
  }

  metrics(): ReturnType<Runtime['metrics']> | null {
    return this.runtime?.metrics() ?? null;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.auditHandle);
    for (const u of this.unfollow.splice(0)) u();
    await this.runtime?.stop();
    this.mailbox?.close();
    if (this.ownsConnection) await this.nc.drain().catch(() => undefined);
  }
}

/** States read at once by listResourcesPage. */
const LIST_CHUNK = 512;

/** What listResources shows of a resource actor's state (undefined: it does not exist). */
function resourceInfo(name: string, r: ResourceState | null | undefined): ResourceInfo | undefined {
  if (!r || (!r.current && r.def === null)) return undefined;
  return {
    name,
    type: r.current?.type ?? r.def?.type ?? '',
    physicalId: r.current?.physicalId ?? null,
    status: `${r.action}_${r.status}`,
    reason: r.reason,
    generation: r.gen,
    attributes: r.current?.attrs ?? {},
    ...(r.current?.child ? { nestedStackId: r.current.child } : {}),
  };
}

/** Group members that may exist: every index below the high-water mark. */
function groupMemberNames(s: StackState): string[] {
  const n = s.highWater;
  return Array.from({ length: n }, (_, i) => String(i));
}

/** Signal entry point for the API layer: `signalResource(engine, stack, resource, data)`. */
export function signalResource(engine: Engine, stack: StackRef, resource: string, data: unknown): Promise<void> {
  return engine.signal(stack, resource, data);
}
