import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { connect, headers, nanos, type ConnectionOptions, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type MsgRequest,
} from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { KilnError, createLogger, decode, encode, type Logger } from '@kiln/core';
import { actorKey, addressOfKey, encodeToken, parseAddress } from './address.js';
import { TimerHeap } from './heap.js';
import { NotSent, PublishRefused, Requester, type PubAck } from './requester.js';
import { DEFAULT_PARTITIONS, DEFAULT_PREFIX, MailSender, PACK_TOKEN, type Addressed, type Outgoing, type Stored } from './mailbox.js';
import { Fifo } from './fifo.js';
import { isClaimable, planLeases, validUntil, type LeaseValue, type LeaseView, type MemberValue } from './lease.js';
import { stateOf, stepActor, type ActorRecord, type Envelope, type Incoming, type OutboxEntry, type PendingTask } from './step.js';
import type { ActorAddress, ActorBehavior, TaskHandler, TaskResult } from './types.js';

export interface RuntimeOptions {
  /** NATS server URL(s); several for a cluster. Ignored when `connection` is given. */
  servers?: string | string[];
  /** An existing connection to use (not closed by stop()). */
  connection?: NatsConnection;
  /** Unique among live nodes; [A-Za-z0-9_-]. Default `<hostname>-<pid>`. */
  nodeId?: string;
  behaviors: readonly ActorBehavior<any, any>[];
  tasks?: Readonly<Record<string, TaskHandler>>;
  /** Number of partitions; must be the same for every node sharing a prefix. Default 32 (see docs/runtime.md). */
  partitions?: number;
  /** Lease duration. Default 10 s. */
  leaseMs?: number;
  /** Actors kept in memory (LRU). Default 10,000. */
  cacheSize?: number;
  /** Period of the pending-task sweep (TASK_SWEEP_MS, 15 s by default). */
  taskSweepMs?: number;
  /** How long start waits for a forming JetStream cluster to place the buckets and streams. Default 60 s. */
  setupTimeoutMs?: number;
  /**
   * Timers (by name) that fire at most this many times per second on this node; due ones wait
   * their turn in memory, in due order (a budget for low-priority periodic work such as polls).
   */
  timerRates?: Readonly<Record<string, number>>;
  /** Mailbox messages a node holds unacknowledged at most. Default 4096. */
  maxInFlight?: number;
  /**
   * Requests (state writes and reads, a step's sends, task results, dead letters) awaiting a
   * reply at most; more wait before being sent. Default 1024 (see docs/runtime.md, Back-pressure).
   */
  maxOutstandingRequests?: number;
  /** JetStream replicas for the buckets and streams (3 on a 3-node cluster). Default 1. */
  replicas?: 1 | 3;
  /** Prefix of bucket, stream and subject names, so independent runtimes can share a server. Default 'kiln'. */
  prefix?: string;
  /** Subject prefix of emitted events. Default 'kiln.events'. */
  eventsSubject?: string;
  logger?: Logger;
}

export interface RuntimeMetrics {
  nodeId: string;
  /** Mailbox messages processed (applied, skipped as duplicates or dead-lettered) since start. */
  processed: number;
  /** Over the last second. */
  messagesPerSec: number;
  actorsCached: number;
  partitionsOwned: number;
  partitions: number[];
  /** Partitions whose pending timers and tasks are still being listed after their takeover. */
  partitionsResuming: number;
  /** Deliveries recognised as redeliveries (skipped by sequence, or a redelivered consumer message). */
  redeliveries: number;
  fencings: number;
  deadLetters: number;
  tasksRunning: number;
  timersScheduled: number;
  /** Due timers waiting for their name's rate (RuntimeOptions.timerRates). */
  timersDeferred: number;
  inFlight: number;
  stateWrites: number;
  /** Publishes (task results, a step's sends/emits, dead letters) that failed and were tried again. */
  publishRetries: number;
  /** Partition workers restarted on this node (reconnect, delivery gap, stalled consumer, failed step). */
  workerRestarts: number;
  /** Requests waiting for a slot now (maxOutstandingRequests reached: back-pressure). */
  requestsWaiting: number;
  /** Express messages (task results, sends marked express) applied early, ahead of their stream delivery. */
  expressApplied: number;
  /** Express messages handed over early but left to their stream delivery (the actor's stored outbox could not be settled first). */
  expressDeferred: number;
}

const DEFAULTS = { partitions: DEFAULT_PARTITIONS, leaseMs: 10_000, cacheSize: 10_000, maxInFlight: 4096, maxOutstandingRequests: 1024, prefix: DEFAULT_PREFIX };
const MAX_BATCH = 256;
// A safety net only: lost deliveries and acks are found by the gap and stall checks, and a
// takeover recreates the consumer. A pack of 32 entries waiting behind a node's other in-flight
// packs can take longer than 30 s to settle under load; redelivering it then restarts the partition
// (seen at 1M members: hundreds of restarts).
const ACK_WAIT_MS = 300_000;
const MAX_TIMEOUT = 2 ** 31 - 1;
/**
 * A partition whose worker holds nothing and has seen no delivery or ack for this long has its
 * consumer checked (every as long): a consume whose pulls died with a consumer leader would
 * otherwise wait for two missed idle heartbeats (30 s) and a consumer info that may back off another 30 s.
 */
const STALL_CHECK_MS = 2000;
/**
 * Period of the pending-task sweep: a task recorded in the index of a partition this node works,
 * seen in two sweeps in a row, neither running here nor answered from here, is resumed. A
 * takeover's one listing of the index can miss entries (see resumePending); this finds them.
 */
const TASK_SWEEP_MS = 15_000;
/**
 * Longest a starting worker lists its partition's pending index. The listing's ordered consumer
 * has no deadline of its own; a worker stuck starting could never be restarted (a restart
 * waits for the start to end), and its partition would take no mail while its lease holds.
 */
const RESUME_LIST_MS = 30_000;
/**
 * Steps run back to back for at most this long before yielding to the event loop: deliveries
 * parsed from one socket read, and steps resumed by one another's replies, otherwise run as one
 * microtask drain (a 100K-member group's 100 leaf fan-outs, ~36 ms each, blocked the loop for
 * 3.6 s), and lease renewals and timers wait behind them. Not shorter: in the runtime benchmark's
 * message pattern, 20 ms cost ~40% more engine CPU per message than no yielding and 100 ms ~15%;
 * 250 ms is within the noise, and far inside the lease margin (leaseMs / 5).
 */
const TURN_MS = 250;
/** Pause of the cache eviction scan after one that found nothing evictable. */
const EVICT_PAUSE_MS = 100;
/** Backoff of a publish tried again (task result, a step's effects, a dead letter). */
const RETRY_MIN_MS = 200;
const RETRY_MAX_MS = 2000;

interface RatedTimers {
  readonly perSecond: number;
  readonly due: Fifo<ScheduledTimer>;
  tokens: number;
  at: number;
  handle: NodeJS.Timeout | undefined;
}

interface Worker {
  readonly partition: number;
  readonly epoch: number;
  active: boolean;
  messages: ConsumerMessages | undefined;
  lastDelivery: number;
  /** Deliveries received and not yet acknowledged. */
  unsettled: number;
  /** performance.now() of the consumer's set-up, the last delivery or the last ack. */
  lastActivity: number;
  /** The last stall check found work on the server this worker was not given (see checkStalls). */
  suspect: boolean;
  busy: number;
  idle: (() => void)[];
  readonly slots: Set<string>;
  /** The pending index is being listed (resumePending): records loaded meanwhile re-arm their timers and tasks themselves. */
  listing: boolean;
  /** Settles when consumer set-up finished (or gave up). */
  started: Promise<void>;
}

interface Owned {
  rev: number;
  validUntil: number;
  worker: Worker | undefined;
  releasing: boolean;
  /** Lease operations on this partition run one after another (renew vs release). */
  chain: Promise<unknown>;
  /** Set once a graceful release started. */
  released?: Promise<void>;
  /**
   * Signal of the tasks started while this node owns the partition: aborted when the ownership
   * ends (the next owner reruns them), not when the worker merely restarts.
   */
  readonly tasks: AbortController;
}

interface Slot {
  readonly key: string;
  readonly address: ActorAddress;
  readonly behavior: ActorBehavior<unknown, unknown>;
  readonly worker: Worker;
  loaded: boolean;
  /** Loaded without a read, assuming no record exists: the first write (create-only) checks it. */
  assumedNew: boolean;
  record: ActorRecord | undefined;
  rev: number;
  /** Whether the stored outbox is known to be published (it is republished once on a redelivery otherwise). */
  outboxSettled: boolean;
  /** For a stored record marked `g`: its pack publication is known stored (this slot's step at the pack's tail completed). */
  packPublished: boolean;
  readonly queue: ActorQueue;
  /** Express messages handed over early (no delivery to settle): applied before the queue, in steps of their own. */
  readonly early: Queued[];
  busy: boolean;
  /** Loaded while the worker's pending index was listed: its next step re-arms the record's timers and tasks. */
  resume: boolean;
}

/** A stream message being worked on: acknowledged once each of its envelopes is stored (or dead-lettered). */
interface Delivery {
  readonly w: Worker;
  readonly m: JsMsg;
  /** Envelopes not yet settled. */
  left: number;
  /** For a pack: the combined publication of the sends its entries trigger. */
  group?: PackGroup;
}

interface Queued extends Incoming {
  /** The stream message carrying it; undefined for a message handed over early (its stream delivery settles it). */
  readonly d: Delivery | undefined;
}

/**
 * The sends of the steps one incoming pack triggered, published together (packed per target
 * partition) once every actor of the pack has stored its step: 32 members of a desire pack
 * reporting to one shard make one stream message, not 32. See docs/runtime.md, "Combined
 * publication", for why this stays exactly-once across crashes.
 */
interface PackGroup {
  readonly w: Worker;
  readonly seq: number;
  /** Per actor key, the index of its last entry queued from the pack: the step ending there reports. */
  readonly last: Map<string, number>;
  /** Actors yet to report. */
  left: number;
  /** Each reporting actor's sends, with the index of its last entry (the publication's order). */
  readonly sends: { idx: number; from: ActorAddress; outbox: readonly OutboxEntry[] }[];
  /** An actor's record is past the pack: the publication was completed before (see process). */
  published: boolean;
  readonly done: Promise<boolean>;
  finish(published: boolean): void;
}

/**
 * An actor's queued messages. Taking a batch from the front costs the batch, not the queue
 * (Array.splice(0, n) copies every message behind it: quadratic for an actor with a long queue).
 */
class ActorQueue {
  private items: Queued[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(q: Queued): void {
    this.items.push(q);
  }

  /** Up to `max` messages from the front, stopping after the first one `isLast` accepts. */
  take(max: number, isLast: (q: Queued) => boolean): Queued[] {
    const end = Math.min(this.items.length, this.head + max);
    let i = this.head;
    while (i < end) if (isLast(this.items[i++]!)) break;
    const batch = this.items.slice(this.head, i);
    this.head = i;
    if (this.head === this.items.length) this.clear();
    else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return batch;
  }

  /** Puts back in front the batch taken last. */
  putBack(batch: Queued[]): void {
    if (this.head >= batch.length) this.head -= batch.length;
    else {
      this.items = batch.concat(this.items.slice(this.head));
      this.head = 0;
    }
  }

  clear(): void {
    this.items = [];
    this.head = 0;
  }
}

interface ScheduledTimer {
  at: number;
  partition: number;
  epoch: number;
  key: string;
  name: string;
}

/**
 * A JetStream cluster that is still forming (or electing its meta leader) refuses to place
 * replicated streams for a while: "no suitable peers for placement" until enough peers have
 * joined, "temporarily unavailable" without a meta leader, or no answer at all. An engine started
 * alongside its cluster waits for it instead of failing.
 */
export const SETUP_TIMEOUT_MS = 60_000;
const FORMING_CODES = new Set([10005, 10008]);

function isClusterForming(e: unknown): boolean {
  if (e instanceof JetStreamApiError) return FORMING_CODES.has(e.code);
  const text = String((e as Error)?.message ?? e);
  return /timeout|no responders|temporarily unavailable|no suitable peers/i.test(text);
}

export async function whileClusterForms(setup: () => Promise<void>, timeoutMs: number, log: Logger): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let wait = RETRY_MIN_MS; ; wait = Math.min(RETRY_MAX_MS, wait * 2)) {
    try {
      return await setup();
    } catch (e) {
      if (!isClusterForming(e) || Date.now() + wait > deadline) throw e;
      log.warn({ err: String(e), retryInMs: wait }, 'JetStream cannot place the runtime storage yet: retrying');
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

function isWrongLastSequence(e: unknown): boolean {
  return e instanceof JetStreamApiError && (e.code === 10071 || e.code === 10164);
}

const textEncoder = new TextEncoder();
const EMPTY = new Uint8Array(0);
const encodeJson = (v: unknown) => textEncoder.encode(JSON.stringify(v));

/** Stream deliveries in a batch (early mail is no delivery: nothing in flight to count or settle). */
function deliveries(batch: readonly Queued[]): number {
  return batch[0]?.early ? 0 : batch.length;
}

function isEnvelope(v: unknown): v is Envelope {
  return typeof v === 'object' && v !== null && typeof (v as Envelope).i === 'string';
}

const NAME_RE = /^[A-Za-z0-9_-]+$/;

/**
 * An engine node: owns partitions through leases, consumes their mailboxes, runs actor steps
 * and stores their records with compare-and-set. See docs/runtime.md for the design.
 */
export class Runtime {
  readonly nodeId: string;
  private readonly log: Logger;
  private readonly partitions: number;
  private readonly leaseMs: number;
  private readonly marginMs: number;
  /** Request timeout of lease operations. */
  private readonly leaseRequestMs: number;
  private readonly cacheSize: number;
  private readonly perPartitionInFlight: number;
  private readonly prefix: string;
  private readonly eventsSubject: string;
  private readonly behaviors = new Map<string, ActorBehavior<unknown, unknown>>();
  private readonly tasks: Readonly<Record<string, TaskHandler>>;
  private readonly streamName: string;
  private readonly dlqName: string;

  private nc!: NatsConnection;
  private requester!: Requester;
  private mail!: MailSender;
  private directGets = true;
  /**
   * Leases (claims, renewals, membership, the lease watch) travel on a connection of their own,
   * always, so a renewal measures the node's liveness and never queues behind its bulk traffic.
   */
  private leaseNc!: NatsConnection;
  private ownsConnection = false;
  private js!: JetStreamClient;
  private jsm!: JetStreamManager;
  private stateKv!: KV;
  private leaseKv!: KV;
  private pendingKv!: KV;

  private readonly leases = new Map<number, LeaseView>();
  private readonly members = new Map<string, MemberValue>();
  private readonly owned = new Map<number, Owned>();
  private readonly cache = new Map<string, Slot>();
  private readonly timers = new TimerHeap<ScheduledTimer>();
  private timerHandle: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  /** Timer names with a firing rate: their due timers and a token bucket (one burst second). */
  private readonly rated = new Map<string, RatedTimers>();
  private tickHandle: NodeJS.Timeout | undefined;
  private rateHandle: NodeJS.Timeout | undefined;
  private stallHandle: NodeJS.Timeout | undefined;
  private checkingStalls = false;
  private sweepHandle: NodeJS.Timeout | undefined;
  private sweeping = false;
  /** Index keys of pending tasks the last sweep found neither running nor answered here. */
  private unattendedTasks = new Set<string>();
  /**
   * Per actor (`<p>.<actor key>`): its tasks running here or whose result this node stored, until
   * the actor applies it here or the partition goes (see sweepTasks).
   */
  private readonly attended = new Map<string, Set<string>>();
  /** performance.now() before which evict() does not scan again (its last scan found only busy actors). */
  private evictPausedUntil = 0;
  private evictHandle: NodeJS.Timeout | undefined;
  /** Tasks running on this node by idempotency key, with the signal of the ownership they run under. */
  private readonly runningTasks = new Map<string, AbortSignal>();
  /** Combined publications waiting for their actors' steps (released when their worker stops). */
  private readonly packGroups = new Set<PackGroup>();
  /** performance.now() when steps started running in this turn of the event loop; -1 between turns. */
  private turnStart = -1;
  /** Steps waiting for a later turn, in arrival order; those of express mail go first. */
  private readonly turnWaiters = new Fifo<() => void>();
  private readonly expressTurnWaiters = new Fifo<() => void>();
  private ticking = false;
  private tickAgain = false;
  private stopping = false;
  private stopped = false;
  private epochs = 0;
  private watchStop: (() => void) | undefined;
  private metricsSub: Subscription | undefined;
  private readonly counters = {
    processed: 0,
    redeliveries: 0,
    fencings: 0,
    deadLetters: 0,
    tasksRunning: 0,
    inFlight: 0,
    stateWrites: 0,
    publishRetries: 0,
    workerRestarts: 0,
    expressApplied: 0,
    expressDeferred: 0,
  };
  private rate = { at: performance.now(), processed: 0, perSec: 0 };
  /** Recent share of cold actors that had no stored record (decaying average). */
  private newActorShare = 0;
  /** Consumer set-ups in parallel at most (a node claiming 256 partitions at once would flood the JetStream API). */
  private readonly startSlots = new Semaphore(16);

  private constructor(opts: RuntimeOptions) {
    this.nodeId = opts.nodeId ?? `${hostname()}-${process.pid}`.replace(/[^A-Za-z0-9_-]/g, '_');
    this.partitions = opts.partitions ?? DEFAULTS.partitions;
    this.leaseMs = opts.leaseMs ?? DEFAULTS.leaseMs;
    this.marginMs = Math.max(100, Math.round(this.leaseMs / 5));
    this.leaseRequestMs = Math.min(2000, Math.max(250, Math.round(this.leaseMs / 4)));
    this.cacheSize = opts.cacheSize ?? DEFAULTS.cacheSize;
    this.perPartitionInFlight = Math.max(4, Math.floor((opts.maxInFlight ?? DEFAULTS.maxInFlight) / this.partitions));
    this.prefix = opts.prefix ?? DEFAULTS.prefix;
    this.eventsSubject = opts.eventsSubject ?? 'kiln.events';
    this.tasks = opts.tasks ?? {};
    this.streamName = `${this.prefix}_mbox`;
    this.dlqName = `${this.prefix}_dlq`;
    this.log = (opts.logger ?? createLogger('runtime')).child({ node: this.nodeId });
    if (!NAME_RE.test(this.nodeId)) throw new KilnError('REQUEST_INVALID', `nodeId must match ${NAME_RE}`, { path: 'nodeId' });
    if (!NAME_RE.test(this.prefix)) throw new KilnError('REQUEST_INVALID', `prefix must match ${NAME_RE}`, { path: 'prefix' });
    if (!Number.isInteger(this.partitions) || this.partitions < 1) {
      throw new KilnError('REQUEST_INVALID', 'partitions must be a positive integer', { path: 'partitions' });
    }
    for (const [name, perSecond] of Object.entries(opts.timerRates ?? {})) {
      if (!(perSecond > 0)) throw new KilnError('REQUEST_INVALID', `timer rate of ${name} must be a positive number`, { path: `timerRates.${name}` });
      this.rated.set(name, { perSecond, due: new Fifo(), tokens: Math.max(1, perSecond), at: Date.now(), handle: undefined });
    }
    for (const b of opts.behaviors) {
      if (this.behaviors.has(b.type)) throw new KilnError('REQUEST_INVALID', `behaviour type ${b.type} registered twice`, { path: 'behaviors' });
      parseAddress(`${b.type}/x`);
      this.behaviors.set(b.type, b as ActorBehavior<unknown, unknown>);
    }
  }

  /** Connects, creates (or opens) the buckets and streams, and starts claiming partitions. */
  static async start(opts: RuntimeOptions): Promise<Runtime> {
    const rt = new Runtime(opts);
    try {
      await rt.init(opts);
    } catch (e) {
      await rt.abandon();
      throw e;
    }
    return rt;
  }

  /** Undoes a failed init: its timers and connections must not keep the process alive. */
  private async abandon(): Promise<void> {
    this.stopping = this.stopped = true;
    for (const h of [this.rateHandle, this.stallHandle, this.sweepHandle, this.tickHandle]) clearInterval(h);
    for (const r of this.rated.values()) clearTimeout(r.handle);
    this.watchStop?.();
    this.metricsSub?.unsubscribe();
    this.requester?.close();
    await Promise.all([this.ownsConnection ? this.nc?.close().catch(() => undefined) : undefined, this.leaseNc?.close().catch(() => undefined)]);
  }

  private async init(opts: RuntimeOptions): Promise<void> {
    // noAsyncTraces: otherwise every request builds two Error objects with stacks (a third of the CPU under load).
    const reconnect = { maxReconnectAttempts: -1, reconnectTimeWait: 250, noAsyncTraces: true };
    if (opts.connection) {
      this.nc = opts.connection;
      // The lent connection's own options (servers, credentials) when nats.js exposes them.
      const lent = (opts.connection as { options?: ConnectionOptions }).options;
      this.leaseNc = await connect({ ...(lent ?? { servers: opts.servers ?? opts.connection.getServer() }), ...reconnect, name: `${this.nodeId}-leases` });
    } else {
      const connOpts = { servers: opts.servers ?? '127.0.0.1:4222', ...reconnect };
      this.nc = await connect({ ...connOpts, name: this.nodeId });
      this.leaseNc = await connect({ ...connOpts, name: `${this.nodeId}-leases` });
      this.ownsConnection = true;
    }
    this.js = jetstream(this.nc, { timeout: 10_000 });
    this.requester = new Requester(this.nc, 10_000, opts.maxOutstandingRequests ?? DEFAULTS.maxOutstandingRequests);
    this.mail = new MailSender(this.prefix, this.partitions, (subject, data, msgId, h) => this.jsPublish(subject, data, msgId, h), this.nc.info?.max_payload);
    const replicas = opts.replicas ?? 1;
    const kvm = new Kvm(this.js);
    // Direct gets may be served by a lagging replica; state must be read from the leader.
    const direct = replicas === 1;
    this.directGets = direct;
    await whileClusterForms(
      async () => {
        this.jsm = await jetstreamManager(this.nc, { timeout: 10_000 });
        await this.createStorage(kvm, replicas, direct);
      },
      opts.setupTimeoutMs ?? SETUP_TIMEOUT_MS,
      this.log,
    );
    this.metricsSub = this.nc.subscribe(`${this.prefix}.node.${this.nodeId}.metrics`, {
      callback: (_err, m) => {
        m.respond(JSON.stringify(this.metrics()));
      },
    });
    void this.watchStatus();
    await this.startWatch();
    this.rateHandle = setInterval(() => this.sampleRate(), 1000);
    this.rateHandle.unref();
    this.stallHandle = setInterval(() => void this.checkStalls(), STALL_CHECK_MS);
    this.stallHandle.unref();
    this.sweepHandle = setInterval(() => void this.sweepTasks(), opts.taskSweepMs ?? TASK_SWEEP_MS);
    this.sweepHandle.unref();
    await this.tick();
    // Several renewals per validity window: one slow round trip must not cost the lease.
    this.tickHandle = setInterval(() => void this.tick(), Math.max(50, Math.round(this.leaseMs / 8)));
    this.log.info({ partitions: this.partitions, leaseMs: this.leaseMs, prefix: this.prefix }, 'runtime started');
  }

  /** The buckets and streams the runtime keeps its state and mail in (created when missing). */
  private async createStorage(kvm: Kvm, replicas: number, direct: boolean): Promise<void> {
    this.stateKv = await kvm.create(`${this.prefix}_state`, { history: 1, replicas, storage: StorageType.File, allow_direct: direct });
    await new Kvm(jetstream(this.leaseNc, { timeout: 10_000 })).create(`${this.prefix}_leases`, {
      history: 1,
      replicas,
      storage: StorageType.File,
      allow_direct: false,
    });
    // A short request timeout: on its own connection a lease write answers in milliseconds unless
    // the server is in trouble, and a renewal that timed out but was applied is recovered (renew).
    this.leaseKv = await new Kvm(jetstream(this.leaseNc, { timeout: this.leaseRequestMs })).open(`${this.prefix}_leases`, { bindOnly: true });
    this.pendingKv = await kvm.create(`${this.prefix}_pending`, { history: 1, replicas, storage: StorageType.File, allow_direct: direct });
    await this.ensureStream({
      name: this.streamName,
      subjects: [`${this.prefix}.mbox.>`],
      // Work-queue: a message leaves the stream when acknowledged, so the stream holds only
      // unprocessed mail and a new owner's fresh consumer starts exactly at what is left.
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      num_replicas: replicas,
      duplicate_window: nanos(120_000),
      discard: DiscardPolicy.Old,
    });
    await this.ensureStream({
      name: this.dlqName,
      subjects: [`${this.prefix}.dlq.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      num_replicas: replicas,
      max_age: nanos(7 * 24 * 3600_000),
    });
    if (!(await this.streamFor(`${this.eventsSubject}.x`))) {
      await this.ensureStream({
        name: `${this.prefix}_events`,
        subjects: [`${this.eventsSubject}.>`],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        num_replicas: replicas,
        duplicate_window: nanos(120_000),
      });
    }
  }

  private async streamFor(subject: string): Promise<string | undefined> {
    try {
      return await this.jsm.streams.find(subject);
    } catch {
      return undefined;
    }
  }

  private async ensureStream(cfg: Parameters<JetStreamManager['streams']['add']>[0] & { name: string }): Promise<void> {
    try {
      await this.jsm.streams.info(cfg.name);
    } catch {
      try {
        await this.jsm.streams.add(cfg);
      } catch (e) {
        // Another node created it between our look and our add.
        await this.jsm.streams.info(cfg.name).catch(() => {
          throw e;
        });
      }
    }
  }

  // ---------------------------------------------------------------- public API

  /**
   * Puts `msg` in the mailbox of `to`. With a caller-given msgId, sending the same message again
   * (within the stream's 2-minute duplicate window) stores it once.
   */
  async send(to: ActorAddress, msg: unknown, opts: { msgId?: string; from?: ActorAddress } = {}): Promise<void> {
    await this.mail.sendAll([this.mail.address(to, this.mail.envelope({ to, msg, msgId: opts.msgId, from: opts.from }))]);
  }

  /**
   * Puts several messages in mailboxes; those to actors of one partition travel packed in one
   * stream message (one publish, delivery and ack for all of them). Per actor they are applied
   * in list order. Retrying the same list (same msgIds) stores it once; a retry of a different
   * selection of the messages is not recognised. Throws REQUEST_INVALID before sending anything
   * if an address is invalid.
   */
  async sendMany(items: readonly Outgoing[]): Promise<void> {
    await this.mail.sendAll(items.map((it) => this.mail.address(it.to, this.mail.envelope(it))));
  }

  /** The stored state of an actor (null when it has none or has finished). */
  async read(address: ActorAddress): Promise<unknown> {
    const e = await this.stateKv.get(actorKey(address));
    if (!e || e.operation !== 'PUT') return null;
    return stateOf(decode<ActorRecord>(e.value)) ?? null;
  }

  /** Partitions this node works now. */
  ownedPartitions(): number[] {
    return [...this.owned.entries()]
      .filter(([, o]) => o.worker?.active)
      .map(([p]) => p)
      .sort((a, b) => a - b);
  }

  metrics(): RuntimeMetrics {
    const partitions = this.ownedPartitions();
    return {
      nodeId: this.nodeId,
      processed: this.counters.processed,
      messagesPerSec: this.rate.perSec,
      actorsCached: this.cache.size,
      partitionsOwned: partitions.length,
      partitions,
      partitionsResuming: [...this.owned.values()].filter((o) => o.worker?.active && o.worker.listing).length,
      redeliveries: this.counters.redeliveries,
      fencings: this.counters.fencings,
      deadLetters: this.counters.deadLetters,
      tasksRunning: this.counters.tasksRunning,
      timersScheduled: this.timers.size,
      timersDeferred: [...this.rated.values()].reduce((n, r) => n + r.due.length, 0),
      inFlight: this.counters.inFlight,
      stateWrites: this.counters.stateWrites,
      publishRetries: this.counters.publishRetries,
      workerRestarts: this.counters.workerRestarts,
      requestsWaiting: this.requester.queued,
      expressApplied: this.counters.expressApplied,
      expressDeferred: this.counters.expressDeferred,
    };
  }

  /**
   * Graceful shutdown: leaves the membership, finishes and acknowledges what it holds, then
   * releases every lease so other nodes take over at once and nothing is redelivered.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.rateHandle);
    clearInterval(this.stallHandle);
    clearInterval(this.sweepHandle);
    clearTimeout(this.timerHandle);
    for (const r of this.rated.values()) clearTimeout(r.handle);
    clearTimeout(this.evictHandle);
    // Ticks keep renewing the leases while the partitions drain.
    await Promise.all([this.leaseKv.delete(`n.${this.nodeId}`).catch(() => undefined), ...[...this.owned.keys()].map((p) => this.release(p))]);
    clearInterval(this.tickHandle);
    this.watchStop?.();
    this.metricsSub?.unsubscribe();
    this.requester.close();
    this.stopped = true;
    await Promise.all([this.ownsConnection ? this.nc.drain().catch(() => undefined) : undefined, this.leaseNc.drain().catch(() => undefined)]);
    this.log.info('runtime stopped');
  }

  // ---------------------------------------------------------------- leases

  private async startWatch(): Promise<void> {
    const it = await this.leaseKv.watch({ key: '>' });
    this.watchStop = () => it.stop();
    let initialDone = false;
    const ready = new Promise<void>((resolve) => {
      void (async () => {
        for await (const e of it) {
          this.onLeaseEntry(e.key, e.operation === 'PUT' ? e.value : undefined, e.revision);
          if (!initialDone && (e.delta ?? 0) === 0) {
            initialDone = true;
            resolve();
          }
        }
      })();
    });
    // An empty bucket yields no initial entries at all.
    const status = await this.leaseKv.status();
    if (status.values === 0) initialDone = true;
    else await Promise.race([ready, new Promise((r) => setTimeout(r, 2000))]);
  }

  private onLeaseEntry(key: string, value: Uint8Array | undefined, revision: number): void {
    try {
      if (key.startsWith('n.')) {
        const node = key.slice(2);
        if (value) this.members.set(node, decode<MemberValue>(value));
        else {
          this.members.delete(node);
          this.requestTick();
        }
        return;
      }
      if (!key.startsWith('p.')) return;
      const p = Number(key.slice(2));
      if (value) {
        const lease = decode<LeaseValue>(value);
        this.leases.set(p, { value: lease, revision });
        const o = this.owned.get(p);
        if (o && lease.node !== this.nodeId && revision > o.rev) this.lose(p, `lease taken by ${lease.node || 'nobody'}`);
        if (lease.node === '') this.requestTick();
      } else {
        this.leases.delete(p);
        this.requestTick();
      }
    } catch (e) {
      this.log.warn({ key, err: String(e) }, 'unreadable lease entry ignored');
    }
  }

  private requestTick(): void {
    if (this.stopping) return;
    setTimeout(() => void this.tick(), 10).unref();
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    if (this.ticking) {
      this.tickAgain = true;
      return;
    }
    this.ticking = true;
    const began = performance.now();
    try {
      do {
        this.tickAgain = false;
        await this.tickOnce();
      } while (this.tickAgain && !this.stopping);
    } catch (e) {
      this.log.warn({ err: String(e) }, 'lease tick failed');
    } finally {
      this.ticking = false;
      const ms = performance.now() - began;
      if (ms > this.leaseMs / 4) this.log.warn({ ms: Math.round(ms) }, 'slow lease tick');
    }
  }

  private async tickOnce(): Promise<void> {
    const now = Date.now();
    // Membership and renewals in parallel: a slow server must cost one round trip, not two.
    await Promise.all([
      this.stopping ? undefined : this.leaseKv.put(`n.${this.nodeId}`, encode({ exp: now + this.leaseMs } satisfies MemberValue)).catch(() => undefined),
      ...[...this.owned.keys()].map((p) => this.renew(p)),
    ]);
    this.members.set(this.nodeId, { exp: now + this.leaseMs });
    const mono = performance.now();
    for (const [p, o] of this.owned) if (mono > o.validUntil) this.lose(p, 'lease expired before renewal');
    if (this.stopping) return;
    const wall = Date.now();
    const alive = [...this.members.entries()].filter(([n, m]) => n === this.nodeId || m.exp > wall).map(([n]) => n);
    const claimable: number[] = [];
    for (let p = 0; p < this.partitions; p++) if (!this.owned.has(p) && isClaimable(this.leases.get(p), wall)) claimable.push(p);
    const holding = new Set([...this.owned.entries()].filter(([, o]) => !o.releasing).map(([p]) => p));
    const others = new Map(alive.filter((n) => n !== this.nodeId).map((n) => [n, 0]));
    for (const l of this.leases.values()) if (others.has(l.value.node) && l.value.exp >= wall) others.set(l.value.node, others.get(l.value.node)! + 1);
    const plan = planLeases({ partitions: this.partitions, node: this.nodeId, alive, owned: holding, claimable, others: [...others.values()] });
    for (const p of plan.release) void this.release(p);
    await Promise.all(plan.claim.map((p) => this.claim(p)));
  }

  private async claim(p: number): Promise<void> {
    const cur = this.leases.get(p);
    const sentAt = performance.now();
    const value = encode({ node: this.nodeId, exp: Date.now() + this.leaseMs } satisfies LeaseValue);
    let rev: number;
    try {
      rev = cur ? await this.leaseKv.update(`p.${p}`, value, cur.revision) : await this.leaseKv.create(`p.${p}`, value);
    } catch {
      return; // another node was faster
    }
    if (this.stopping) {
      await this.leaseKv.update(`p.${p}`, encode({ node: '', exp: 0 } satisfies LeaseValue), rev).catch(() => undefined);
      return;
    }
    const o: Owned = {
      rev,
      validUntil: validUntil(sentAt, this.leaseMs, this.marginMs),
      worker: undefined,
      releasing: false,
      chain: Promise.resolve(),
      tasks: new AbortController(),
    };
    this.owned.set(p, o);
    const from = cur && cur.value.node !== '' && cur.value.node !== this.nodeId ? cur.value.node : undefined;
    this.log.info({ partition: p, takeoverFrom: from }, from ? 'partition taken over' : 'partition acquired');
    // Not awaited: a lease tick must never wait on consumer set-up, or renewals would be late.
    void this.startWorker(p, o);
  }

  private renew(p: number): Promise<unknown> {
    const o = this.owned.get(p);
    if (!o) return Promise.resolve();
    o.chain = o.chain.then(async () => {
      if (this.owned.get(p) !== o) return;
      const sentAt = performance.now();
      try {
        o.rev = await this.renewAt(p, o.rev);
        o.validUntil = validUntil(sentAt, this.leaseMs, this.marginMs);
        const ms = performance.now() - sentAt;
        if (ms > this.leaseMs / 4) this.log.warn({ partition: p, ms: Math.round(ms) }, 'slow lease renewal');
      } catch (e) {
        if (!isWrongLastSequence(e)) {
          this.log.warn({ partition: p, err: String(e) }, 'lease renewal failed');
          return;
        }
        // Refused: the revision moved. If only our own earlier renewal moved it (it timed out
        // here but was applied), the stored lease is still ours: renew on its revision. The
        // validity is extended only from a renewal known to be stored (sent at `again`).
        let cur;
        try {
          cur = await this.leaseKv.get(`p.${p}`);
        } catch (e2) {
          // No answer is no verdict: the next tick tries again (the validity still bounds the work).
          this.log.warn({ partition: p, err: String(e2) }, 'lease renewal failed');
          return;
        }
        const held = cur?.operation === 'PUT' && decode<LeaseValue>(cur.value).node === this.nodeId;
        if (!cur || !held || this.owned.get(p) !== o) return this.lose(p, 'lease renewal refused');
        const again = performance.now();
        try {
          o.rev = await this.renewAt(p, cur.revision);
          o.validUntil = validUntil(again, this.leaseMs, this.marginMs);
          this.log.warn({ partition: p }, 'lease renewal recovered (an earlier renewal was applied without a reply)');
        } catch (e2) {
          if (isWrongLastSequence(e2)) this.lose(p, 'lease renewal refused');
          else this.log.warn({ partition: p, err: String(e2) }, 'lease renewal failed');
        }
      }
    });
    return o.chain;
  }

  /** Compare-and-set of this node's lease on `p` at revision `rev`: the new revision. */
  private renewAt(p: number, rev: number): Promise<number> {
    return this.leaseKv.update(`p.${p}`, encode({ node: this.nodeId, exp: Date.now() + this.leaseMs } satisfies LeaseValue), rev);
  }

  /** Gives a partition back gracefully: drain, make sure every ack landed, then free the lease. */
  private release(p: number): Promise<void> {
    const o = this.owned.get(p);
    if (!o) return Promise.resolve();
    o.released ??= (async () => {
      o.releasing = true;
      // Renewals go on while draining; only the final lease write is serialised with them.
      if (o.worker) await this.drainWorker(o.worker);
      const freed = o.chain.then(async () => {
        if (this.owned.get(p) !== o) return;
        this.owned.delete(p);
        o.tasks.abort();
        await this.leaseKv.update(`p.${p}`, encode({ node: '', exp: 0 } satisfies LeaseValue), o.rev).catch(() => undefined);
        this.log.info({ partition: p }, 'partition released');
      });
      o.chain = freed;
      await freed;
    })();
    return o.released;
  }

  /** Stops working a partition at once (lease lost or expired): nothing more is written or acknowledged. */
  private lose(p: number, reason: string): void {
    const o = this.owned.get(p);
    if (!o) return;
    this.owned.delete(p);
    o.tasks.abort();
    this.log.warn({ partition: p, reason }, 'partition lost');
    if (o.worker) void this.abandonWorker(o.worker);
  }

  // ---------------------------------------------------------------- partition workers

  private consumerName(p: number): string {
    return `${this.prefix}_p${p}`;
  }

  private mailboxSubject(p: number, key: string): string {
    return `${this.prefix}.mbox.${p}.${key}`;
  }

  private async startWorker(p: number, o: Owned): Promise<void> {
    const w: Worker = {
      partition: p,
      epoch: ++this.epochs,
      active: true,
      messages: undefined,
      lastDelivery: 0,
      unsettled: 0,
      lastActivity: performance.now(),
      suspect: false,
      busy: 0,
      idle: [],
      slots: new Set(),
      listing: true,
      started: Promise.resolve(),
    };
    o.worker = w;
    w.started = this.setUpWorker(w);
    await w.started;
  }

  private async setUpWorker(w: Worker): Promise<void> {
    const p = w.partition;
    const name = this.consumerName(p);
    await this.startSlots.acquire();
    try {
      // A fresh consumer delivers every unacknowledged message of the partition in stream order.
      await this.jsm.consumers.delete(this.streamName, name).catch(() => undefined);
      const created = await this.jsm.consumers.add(this.streamName, {
        durable_name: name,
        filter_subject: `${this.prefix}.mbox.${p}.>`,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ack_wait: nanos(ACK_WAIT_MS),
        max_ack_pending: this.perPartitionInFlight,
        max_deliver: -1,
      });
      // A delete that failed (e.g. timed out in an election) leaves the old consumer, which add
      // returns as is: its unacknowledged deliveries would wait out the ack wait. Try again.
      if (created.delivered.consumer_seq !== 0) throw new KilnError('UNAVAILABLE', `consumer ${name} was not recreated`);
      if (!w.active) return;
      const consumer = await this.js.consumers.get(this.streamName, name);
      if (!w.active) return;
      w.messages = await consumer.consume({
        max_messages: this.perPartitionInFlight,
        expires: 30_000,
        callback: (m) => this.onMessage(w, m),
      });
      w.lastActivity = performance.now();
      void this.watchConsumer(w);
      await this.resumePending(w);
    } catch (e) {
      if (!w.active || this.stopping) return;
      this.log.warn({ partition: p, err: String(e) }, 'partition worker failed to start');
      void this.restartWorker(w, 'start failed');
    } finally {
      this.startSlots.release();
    }
  }

  /**
   * Restarts the worker when its consume() cannot be trusted to pull any more: the consumer is
   * gone, its pulls went unanswered for two idle heartbeats, or the iterator ended.
   */
  private async watchConsumer(w: Worker): Promise<void> {
    const msgs = w.messages;
    if (!msgs) return;
    // Ended by us (abandon, drain: the worker is inactive or releasing) or by nats.js (an error).
    void msgs.closed().then((e) => void this.restartWorker(w, e ? `consume failed: ${String(e)}` : 'consume ended'));
    for await (const s of msgs.status()) {
      if (!w.active) return;
      if (s.type === 'consumer_deleted' || s.type === 'consumer_not_found' || s.type === 'heartbeats_missed') {
        void this.restartWorker(w, s.type);
        return;
      }
    }
  }

  /**
   * Resumes the actors with pending tasks that nothing here runs or has answered, seen so in two
   * sweeps in a row (TASK_SWEEP_MS). Lists the actors' task entries (`<p>.<type>.<id>.k`), once
   * for all partitions.
   */
  private async sweepTasks(): Promise<void> {
    if (this.sweeping || this.stopping) return;
    this.sweeping = true;
    try {
      for (const k of this.attended.keys()) if (!this.owned.get(Number(k.slice(0, k.indexOf('.'))))?.worker?.active) this.attended.delete(k);
      const seen = new Set<string>();
      const resume = new Map<number, Set<string>>();
      const swept = new Set<number>();
      for (const [p, o] of this.owned) if (o.worker?.active && !o.releasing && !o.worker.listing) swept.add(p);
      // One listing of every partition's task entries (one consumer per sweep, not one per partition).
      if (swept.size > 0) {
        for await (const k of await this.pendingKv.keys('*.*.*.k')) {
          const p = Number(k.slice(0, k.indexOf('.')));
          const actor = k.slice(0, -2);
          if (!swept.has(p) || this.attended.has(actor)) continue;
          seen.add(k);
          if (!this.unattendedTasks.has(k)) continue;
          let keys = resume.get(p);
          if (!keys) resume.set(p, (keys = new Set()));
          keys.add(actor.slice(actor.indexOf('.') + 1));
        }
      }
      this.unattendedTasks = seen;
      for (const [p, keys] of resume) {
        const w = this.owned.get(p)?.worker;
        if (!w?.active) continue;
        this.log.warn({ partition: p, actors: keys.size }, 'pending tasks neither running nor answered here: resuming their actors');
        await this.mail.sendAll([...keys].map((key) => ({ key, partition: p, env: { i: `resume:${this.nodeId}:${w.epoch}:${key}:${Date.now()}`, c: { resume: true, swept: true } } })));
      }
    } catch (e) {
      this.log.warn({ err: String(e) }, 'pending-task sweep failed; the next one tries again');
    } finally {
      this.sweeping = false;
    }
  }

  /**
   * Finds partitions whose consume() stalled without a sign from nats.js: on an R3 cluster a
   * pull request lives only on the consumer's leader, so when that server dies (or leadership
   * moves) the pull is gone while the connection, elsewhere, stays up; acks sent to it can be
   * lost the same way. A worker that holds nothing and has seen no delivery or ack for
   * STALL_CHECK_MS is restarted (fresh consumer from what is unacknowledged) when its consumer
   * shows messages it was not given: pending with no pull waiting (at once), or pending or
   * unacknowledged on two checks in a row (a message stored just before the check is not yet
   * delivered). One stream info per check when some worker is quiet, a consumer info per quiet
   * worker only while the mailbox stream holds messages.
   */
  private async checkStalls(): Promise<void> {
    if (this.checkingStalls || this.stopping) return;
    this.checkingStalls = true;
    try {
      const now = performance.now();
      const quiet: Worker[] = [];
      for (const o of this.owned.values()) {
        const w = o.worker;
        if (!w?.active || o.releasing || !w.messages) continue;
        if (w.unsettled === 0 && now - w.lastActivity >= STALL_CHECK_MS) quiet.push(w);
        else w.suspect = false;
      }
      if (quiet.length === 0) return;
      const stream = await this.jsm.streams.info(this.streamName).catch(() => undefined);
      if (!stream) return;
      if (stream.state.messages === 0) {
        for (const w of quiet) w.suspect = false;
        return;
      }
      await Promise.all(quiet.map((w) => this.checkStall(w)));
    } finally {
      this.checkingStalls = false;
    }
  }

  private async checkStall(w: Worker): Promise<void> {
    const seen = w.lastDelivery;
    let info;
    try {
      info = await this.jsm.consumers.info(this.streamName, this.consumerName(w.partition));
    } catch (e) {
      if (e instanceof JetStreamApiError && e.code === 10014) void this.restartWorker(w, 'consumer not found');
      return; // no answer (e.g. an election): the next check tries again
    }
    const counted = info.num_pending > 0 || info.num_ack_pending > 0;
    // Asked only when the consumer counts nothing: one message get.
    const held = !counted && (await this.holdsMail(w.partition));
    if (!w.active || w.lastDelivery !== seen || w.unsettled > 0) {
      w.suspect = false;
      return;
    }
    const verdict = stallVerdict({ pending: info.num_pending, unacknowledged: info.num_ack_pending, pullsWaiting: info.num_waiting, held }, w.suspect);
    if (verdict === 'restart') {
      this.log.warn(
        { partition: w.partition, pending: info.num_pending, unacknowledged: info.num_ack_pending, pullsWaiting: info.num_waiting, held },
        'partition consumer stalled: restarting partition',
      );
      void this.restartWorker(w, 'stalled');
    } else w.suspect = verdict === 'suspect';
  }

  /** Whether the mailbox stream holds any message of partition `p` (false when it cannot tell). */
  private async holdsMail(p: number): Promise<boolean> {
    // next_by_subj (server 2.9+) is missing from nats.js's MsgRequest type for this call.
    const query = { next_by_subj: `${this.prefix}.mbox.${p}.>`, seq: 0 } as unknown as MsgRequest;
    return (await this.jsm.streams.getMessage(this.streamName, query).catch(() => null)) !== null;
  }

  /**
   * After (re)assignment, tells every actor with an armed timer or pending task to re-arm it.
   * The listing can miss a key rewritten while it runs (the bucket keeps one message per key;
   * e.g. an assumed-new step refused and redone writes its index entries again), so until it is
   * done every record the worker loads re-arms its own timers and tasks (see process).
   */
  private async resumePending(w: Worker): Promise<void> {
    const actors = new Set<string>();
    let timer: NodeJS.Timeout | undefined;
    let late = false;
    try {
      const it = await this.pendingKv.keys(`${w.partition}.>`);
      timer = setTimeout(() => {
        late = true;
        it.stop();
      }, RESUME_LIST_MS);
      for await (const k of it) {
        const parts = k.split('.');
        if (parts.length >= 3) actors.add(`${parts[1]}.${parts[2]}`);
      }
    } finally {
      clearTimeout(timer);
      w.listing = false;
    }
    if (late) throw new KilnError('UNAVAILABLE', `listing the pending index of partition ${w.partition} took over ${RESUME_LIST_MS} ms`);
    // Packed: a partition with thousands of waiting actors costs a few stream messages.
    await this.mail.sendAll([...actors].map((key) => ({ key, partition: w.partition, env: { i: `resume:${this.nodeId}:${w.epoch}:${key}`, c: { resume: true } } })));
    if (actors.size > 0) this.log.info({ partition: w.partition, actors: actors.size }, 'pending timers and tasks resumed');
  }

  private onMessage(w: Worker, m: JsMsg): void {
    if (!w.active) return; // not acknowledged: the partition's next consumer delivers it
    const info = m.info;
    if (info.redelivered || info.deliverySequence !== w.lastDelivery + 1) {
      // A delivery was lost (e.g. across a reconnect) or an ack timed out: order can no longer be
      // trusted, so start over from what is unacknowledged.
      this.counters.redeliveries++;
      this.log.warn({ partition: w.partition, seq: info.streamSequence, deliverySeq: info.deliverySequence, expected: w.lastDelivery + 1 }, 'redelivery or delivery gap: restarting partition');
      void this.restartWorker(w, 'delivery gap');
      return;
    }
    w.lastDelivery = info.deliverySequence;
    w.lastActivity = performance.now();
    w.unsettled++;
    const key = m.subject.slice(`${this.prefix}.mbox.${w.partition}.`.length);
    if (key === PACK_TOKEN) return this.onPack(w, m, info.streamSequence);
    this.counters.inFlight++;
    let env: unknown;
    try {
      env = decode(m.data);
    } catch (e) {
      void this.deadLetter(w, m, `undecodable message: ${(e as Error).message}`);
      return;
    }
    const d: Delivery = { w, m, left: 1 };
    const slot = this.route(w, key, env, { seq: info.streamSequence, env: env as Envelope, d });
    if (typeof slot === 'string') void this.deadLetter(w, m, slot);
    else if (!slot.busy) void this.run(slot);
  }

  /** A pack: each entry goes to its actor's queue; the stream message is acknowledged once all are settled. */
  private onPack(w: Worker, m: JsMsg, seq: number): void {
    let entries: unknown;
    try {
      entries = decode(m.data);
    } catch (e) {
      this.counters.inFlight++;
      void this.deadLetter(w, m, `undecodable message: ${(e as Error).message}`);
      return;
    }
    if (!Array.isArray(entries) || entries.length === 0) {
      this.counters.inFlight++;
      void this.deadLetter(w, m, 'not a runtime envelope pack');
      return;
    }
    this.counters.inFlight += entries.length;
    const d: Delivery = { w, m, left: entries.length };
    // Every entry is queued before any step starts, so that a step can see where each actor's
    // entries of this pack end (a cached idle actor would otherwise start on its first entry alone).
    const last = new Map<string, number>();
    const slots: Slot[] = [];
    for (let idx = 0; idx < entries.length; idx++) {
      const e: unknown = entries[idx];
      const pair = Array.isArray(e) && e.length === 2 && typeof e[0] === 'string';
      const slot = pair ? this.route(w, e[0] as string, e[1], { seq, idx, env: e[1] as Envelope, d }) : 'not a pack entry';
      if (typeof slot === 'string') void this.deadLetterEntry(w, d, seq, idx, e, slot);
      else {
        last.set(slot.key, idx);
        slots.push(slot);
      }
    }
    if (last.size > 0) d.group = this.packGroup(w, seq, last);
    for (const slot of slots) if (!slot.busy) void this.run(slot);
  }

  private packGroup(w: Worker, seq: number, last: Map<string, number>): PackGroup {
    let finish!: (published: boolean) => void;
    const done = new Promise<boolean>((r) => (finish = r));
    const g: PackGroup = {
      w,
      seq,
      last,
      left: last.size,
      sends: [],
      published: false,
      done,
      finish: (published) => {
        this.packGroups.delete(g);
        finish(published);
      },
    };
    this.packGroups.add(g);
    return g;
  }

  /** Queues a message on its actor's slot (the caller starts it); the dead-letter reason instead when it cannot be one. */
  private route(w: Worker, key: string, env: unknown, q: Queued): Slot | string {
    const address = addressOfKey(key);
    if (!address) return 'invalid actor key in subject';
    const behavior = this.behaviors.get(address.slice(0, address.indexOf('/')));
    if (!behavior) return `no behaviour for ${address}`;
    if (!isEnvelope(env)) return 'not a runtime envelope';
    let slot = this.cache.get(key);
    if (slot && slot.worker !== w) {
      this.cache.delete(key);
      slot = undefined;
    }
    if (slot) {
      this.cache.delete(key);
      this.cache.set(key, slot); // most recently used last
    } else {
      slot = { key, address, behavior, worker: w, loaded: false, assumedNew: false, record: undefined, rev: 0, outboxSettled: false, packPublished: false, queue: new ActorQueue(), early: [], busy: false, resume: false };
      this.cache.set(key, slot);
      w.slots.add(key);
    }
    if (q.early) slot.early.push(q);
    else slot.queue.push(q);
    return slot;
  }

  /** Envelopes of a delivery are settled (stored, skipped or dead-lettered): acknowledge it when none is left. */
  private settle(d: Delivery, n: number): void {
    d.left -= n;
    if (d.left === 0) this.ack(d.w, d.m);
  }

  private ack(w: Worker, m: JsMsg): void {
    m.ack();
    w.unsettled--;
    w.lastActivity = performance.now();
  }

  /** One entry of a pack dead-lettered (payload: the entry, msgpack; header Kiln-Entry: its index). */
  private async deadLetterEntry(w: Worker, d: Delivery, seq: number, idx: number, entry: unknown, reason: string): Promise<void> {
    this.counters.deadLetters++;
    this.log.warn({ partition: w.partition, subject: d.m.subject, seq, idx, reason }, 'dead letter');
    const data = encode(entry);
    const stored = await this.untilPublished({ partition: w.partition, seq, idx }, 'dead letter publish failed: retrying', () => w.active, () =>
      this.jsPublish(`${this.prefix}.dlq.${w.partition}`, data, `dlq:${w.partition}:${seq}:${idx}`, this.dlqHeaders(reason, d.m.subject, idx)),
    );
    this.counters.inFlight--;
    if (!stored) return;
    if (w.active) this.settle(d, 1);
    this.counters.processed++;
  }

  private dlqHeaders(reason: string, subject: string, idx?: number): MsgHdrs {
    const h = headers();
    h.set('Kiln-Reason', reason.slice(0, 1000));
    h.set('Kiln-Subject', subject);
    if (idx !== undefined) h.set('Kiln-Entry', String(idx));
    return h;
  }

  private async deadLetter(w: Worker, m: JsMsg, reason: string): Promise<void> {
    this.counters.deadLetters++;
    this.log.warn({ partition: w.partition, subject: m.subject, seq: m.seq, reason }, 'dead letter');
    const stored = await this.untilPublished({ partition: w.partition, seq: m.seq }, 'dead letter publish failed: retrying', () => w.active, () =>
      this.jsPublish(`${this.prefix}.dlq.${w.partition}`, m.data, `dlq:${w.partition}:${m.seq}`, this.dlqHeaders(reason, m.subject)),
    );
    this.counters.inFlight--;
    if (!stored) return;
    this.ack(w, m);
    this.counters.processed++;
  }

  private async run(slot: Slot): Promise<void> {
    const w = slot.worker;
    slot.busy = true;
    w.busy++;
    try {
      while ((slot.early.length > 0 || slot.queue.length > 0) && w.active) {
        // Express mail handed over early goes first, in a step of its own (see process).
        const early = slot.early.length > 0;
        // A batch ends at the actor's last entry of a pack: that step's sends join the pack's combined publication.
        const batch = early ? slot.early.splice(0, MAX_BATCH) : slot.queue.take(MAX_BATCH, (q) => q.d?.group !== undefined && q.d.group.last.get(slot.key) === q.idx);
        const putBack = () => (early ? slot.early.unshift(...batch) : slot.queue.putBack(batch));
        if (!slot.loaded) {
          // While most cold actors turn out to be new (e.g. a stack creating its resources), skip
          // the read: the create-only write proves the record absent, or fails and the batch is
          // redone on the stored record. Control messages, task results and early mail need the stored record.
          if (!early && this.newActorShare > 0.5 && batch.every((b) => !b.env.c && b.env.k === undefined)) {
            slot.loaded = true;
            slot.assumedNew = true;
          } else {
            try {
              await this.load(slot, early);
            } finally {
              // Back in the queue if the worker stops here (accounted for in the finally below).
              if (!w.active || !slot.loaded) putBack();
            }
            if (!w.active) break;
          }
        }
        // Here, after the load: steps resumed by the replies of one socket read would otherwise
        // all run in its microtask drain.
        const turn = this.nextTurn(early);
        if (turn) await turn;
        if (!w.active) {
          putBack();
          break;
        }
        let done = false;
        try {
          done = await this.process(slot, batch);
        } catch (e) {
          this.counters.inFlight -= deliveries(batch);
          throw e;
        }
        if (!done) break;
      }
    } catch (e) {
      if (w.active) {
        this.log.warn({ partition: w.partition, actor: slot.address, err: String(e) }, 'actor step failed: restarting partition');
        void this.restartWorker(w, 'step failed');
      }
    } finally {
      slot.busy = false;
      if (!w.active) {
        this.counters.inFlight -= slot.queue.length;
        slot.queue.clear();
        slot.early.length = 0;
      }
      w.busy--;
      if (w.busy === 0) for (const f of w.idle.splice(0)) f();
      this.evict();
    }
  }

  /**
   * A promise to wait for when steps have run for TURN_MS in this turn of the event loop (or
   * others already wait: first come, first served, express steps before the others); the step
   * may go on when it resolves.
   */
  private nextTurn(express: boolean): Promise<void> | undefined {
    if (this.turnStart < 0) {
      this.turnStart = performance.now();
      setImmediate(this.endTurn);
      return undefined;
    }
    const ahead = this.expressTurnWaiters.length + (express ? 0 : this.turnWaiters.length);
    if (ahead === 0 && performance.now() - this.turnStart < TURN_MS) return undefined;
    return new Promise((r) => (express ? this.expressTurnWaiters : this.turnWaiters).push(r));
  }

  /**
   * Starts the next turn's budget and lets waiting steps go one at a time while it lasts. (Waking
   * them all to check again, each with its own setImmediate, cost a pass over every waiting step
   * per turn for a handful of steps run: 30,000 waiting members made the engine crawl.)
   */
  private readonly endTurn = (): void => {
    if (this.expressTurnWaiters.length + this.turnWaiters.length === 0) {
      this.turnStart = -1;
      return;
    }
    this.turnStart = performance.now();
    setImmediate(this.endTurn);
    this.releaseWaiter();
  };

  /** The next waiting step goes; this runs again after its synchronous part (a microtask behind it). */
  private readonly releaseWaiter = (): void => {
    if (performance.now() - this.turnStart >= TURN_MS) return;
    const go = this.expressTurnWaiters.shift() ?? this.turnWaiters.shift();
    if (!go) return;
    go();
    queueMicrotask(this.releaseWaiter);
  };

  private async load(slot: Slot, urgent = false): Promise<void> {
    const e = await this.readState(slot.key, urgent);
    slot.loaded = true;
    slot.assumedNew = false;
    // Unknown whether the stored outbox went out (a discarded assumed-new step may have set it).
    slot.outboxSettled = false;
    slot.packPublished = false;
    this.noteColdActor(!e);
    if (!e) return;
    slot.rev = e.revision;
    if (!e.value) return;
    try {
      slot.record = decode<ActorRecord>(e.value);
      if (slot.worker.listing && (slot.record.t || slot.record.k)) slot.resume = true;
    } catch (err) {
      this.log.error({ actor: slot.address, err: String(err) }, 'stored actor record undecodable: starting from the initial state');
    }
  }

  private noteColdActor(isNew: boolean): void {
    this.newActorShare = this.newActorShare * 0.95 + (isNew ? 0.05 : 0);
  }

  /**
   * The last revision of an actor's key (value undefined for a delete marker), null when never
   * written. A direct get through the hot-path requester where the bucket allows it (single
   * replica); otherwise the KV client's get, answered by the stream leader.
   */
  private async readState(key: string, urgent: boolean): Promise<{ revision: number; value?: Uint8Array } | null> {
    if (!this.directGets) {
      const e = await this.stateKv.get(key);
      return e ? (e.operation === 'PUT' ? { revision: e.revision, value: e.value } : { revision: e.revision }) : null;
    }
    const r = await this.requester.request(`$JS.API.DIRECT.GET.KV_${this.prefix}_state`, encodeJson({ last_by_subj: `$KV.${this.prefix}_state.${key}` }), undefined, undefined, urgent);
    const code = r.headers?.code ?? 0;
    if (code === 404) return null;
    if (code >= 300 || !r.headers) throw new KilnError('UNAVAILABLE', `state read failed: ${code} ${r.headers?.description ?? ''}`);
    const revision = Number(r.headers.get('Nats-Sequence'));
    const op = r.headers.get('KV-Operation');
    return op === 'DEL' || op === 'PURGE' ? { revision } : { revision, value: r.data };
  }

  /** One step: apply, store with CAS, publish effects, acknowledge. False when the partition was dropped. */
  private async process(slot: Slot, batch: Queued[]): Promise<boolean> {
    const w = slot.worker;
    const p = w.partition;
    // A batch is either early (express) mail or stream deliveries, never both (see run).
    const early = batch[0]!.early === true;
    const n = deliveries(batch);
    const stored = slot.record;
    if (early && stored?.g && !slot.packPublished) {
      // The stored step's sends belong to a pack publication not known to be out: only the pack's
      // redelivery can rebuild it, and this step would replace that outbox (marking it published,
      // `p`). Its stream delivery applies the message instead.
      this.counters.expressDeferred += batch.length;
      return true;
    }
    const out = stepActor(slot.behavior, slot.address, stored, batch, Date.now());
    // Only a stored record can show the assumption held; a step that writes nothing (e.g. the
    // reducer threw on the initial state) must see the real one first.
    if (slot.assumedNew && !out.record) return this.reloadAndProcess(slot, batch);
    // A batch ending at the actor's last entry of a pack (see run): the step's sends go out with
    // those of the pack's other actors, in the pack's combined publication.
    const tail = batch[batch.length - 1]!;
    const group = tail.d?.group && tail.d.group.last.get(slot.key) === tail.idx ? tail.d.group : undefined;
    // That entry applied before (the pack is redelivered): the record at exactly its position holds
    // what this actor adds to the publication (its sends if marked `g`, else nothing: they went out
    // alone); a record past it proves the publication complete, since no step of an actor follows
    // its step at a pack's last entry before that pack's publication is stored.
    let replayed: readonly OutboxEntry[] | 'published' | undefined;
    if (group && stored && (tail.seq < stored.q || (tail.seq === stored.q && tail.idx! <= (stored.x ?? 0)))) {
      if (tail.seq !== stored.q || tail.idx !== (stored.x ?? 0) || stored.p) replayed = 'published';
      else replayed = stored.g ? (stored.o ?? []) : [];
    }
    if (out.duplicates > 0) {
      this.counters.redeliveries += out.duplicates;
      this.log.info({ partition: p, actor: slot.address, duplicates: out.duplicates }, 'redelivered messages skipped');
    }
    // The step that stored this outbox may have died before publishing it: known when its trigger
    // comes back (a redelivery), and possible whenever early steps were stored (their triggers are
    // still in the stream) or this step is early (it replaces the outbox). Sends marked `g` go out
    // again only with their pack, above; this step's position may be before that pack's.
    let republish: readonly OutboxEntry[] = [];
    const o = stored?.o;
    if (!slot.outboxSettled && o && (out.duplicates > 0 || early || (stored.e?.length ?? 0) > 0)) republish = stored.g ? o.filter((e) => !('to' in e)) : o;
    if (republish.length > 0 && !(await this.publishEffects(w, slot, () => this.publishOutbox(slot.address, republish)))) {
      this.counters.inFlight -= n;
      return false;
    }
    slot.outboxSettled = true;
    if (out.record) {
      const index = [
        ...(out.timerIndex === 'put' ? [this.putPending(this.timerIndexKey(p, slot.key), EMPTY, early)] : []),
        // One entry per actor, not per task: a key per task left a delete marker per task ever run
        // in the bucket (570,000 after two 10,000-server creates), and listing them pegged the server.
        ...(out.tasksRecorded.length > 0 ? [this.putPending(this.taskIndexKey(p, slot.key), EMPTY, early)] : []),
      ];
      if (index.length > 0) await Promise.all(index);
      const owner = this.owned.get(p);
      if (!w.active) {
        this.counters.inFlight -= n;
        return false;
      }
      if (!owner || owner.worker !== w || performance.now() > owner.validUntil) {
        this.counters.inFlight -= n;
        this.lose(p, 'lease expired before state write');
        return false;
      }
      if (group && replayed === undefined && out.outbox.some((e) => 'to' in e)) out.record.g = true;
      const bytes = encode(out.record);
      // Checked again when the write actually leaves: it may wait for a request slot.
      try {
        slot.rev = await this.writeState(slot.key, bytes, slot.rev, this.leaseHeld(w), early);
      } catch (e) {
        if (e instanceof NotSent) {
          this.counters.inFlight -= n;
          if (w.active && this.owned.get(p) === owner) this.lose(p, 'lease expired before state write');
          return false;
        }
        if (!(e instanceof PublishRefused && e.errCode === 10071)) throw e;
        // The actor assumed new had a record after all: not a fencing.
        if (slot.assumedNew) return this.reloadAndProcess(slot, batch);
        this.counters.inFlight -= n;
        if (w.active) void this.fence(w, slot.address);
        return false;
      }
      this.counters.stateWrites++;
      if (slot.assumedNew) {
        slot.assumedNew = false;
        this.noteColdActor(true);
      }
      slot.record = out.record;
      // Resumed by the write's reply, often with the steps whose replies came in the same read:
      // their effects (a fan-out's packs to encode) share the turn's budget too.
      const turn = this.nextTurn(early);
      if (turn) await turn;
    }
    for (const { inc, reason } of out.deadLetters) {
      this.counters.deadLetters++;
      this.log.warn({ partition: p, actor: slot.address, seq: inc.seq, idx: inc.idx, reason }, 'dead letter');
    }
    // A tail step's sends wait for the pack's publication; its emits and dead letters go now.
    const own = group ? out.outbox.filter((e) => !('to' in e)) : out.outbox;
    const joined = group && this.joinGroup(group, tail.idx!, slot.address, replayed ?? out.outbox);
    const effects = (): Promise<unknown> => {
      const pubs: Promise<unknown>[] = [];
      if (own.length > 0) pubs.push(this.publishOutbox(slot.address, own));
      for (const { inc, reason } of out.deadLetters) {
        // Only stream deliveries are dead-lettered (an early message is left to its delivery).
        const m = (inc as Queued).d!.m;
        pubs.push(
          inc.idx === undefined
            ? this.jsPublish(`${this.prefix}.dlq.${p}`, m.data, `dlq:${p}:${inc.seq}`, this.dlqHeaders(reason, m.subject))
            : this.jsPublish(`${this.prefix}.dlq.${p}`, encode([slot.key, inc.env]), `dlq:${p}:${inc.seq}:${inc.idx}`, this.dlqHeaders(reason, m.subject, inc.idx)),
        );
      }
      return Promise.all(pubs);
    };
    if (((own.length > 0 || out.deadLetters.length > 0) && !(await this.publishEffects(w, slot, effects))) || (joined && !(await joined))) {
      // The worker stopped: the batch comes back to the next consumer, which republishes the outbox.
      this.counters.inFlight -= n;
      return false;
    }
    // The pack's publication is stored (joined), whatever this step wrote.
    if (group) slot.packPublished = true;
    for (const b of batch) if (b.d) this.settle(b.d, 1);
    this.counters.processed += n;
    this.counters.inFlight -= n;
    this.counters.expressApplied += out.appliedEarly;
    if (!w.active) return false;
    for (const t of out.timersToSchedule) this.schedule({ at: t.at, partition: p, epoch: w.epoch, key: slot.key, name: t.name });
    for (const idem of out.tasksDone) this.unattend(p, slot.key, idem);
    for (const t of out.tasksToRun) this.runTask(w, slot, t.idem, t.task);
    if (slot.resume) {
      // As a resume message would (see resumePending); a task running here already is not run twice.
      slot.resume = false;
      for (const [name, t] of Object.entries(slot.record?.t ?? {})) this.schedule({ at: t.at, partition: p, epoch: w.epoch, key: slot.key, name });
      for (const [idem, task] of Object.entries(slot.record?.k ?? {})) this.runTask(w, slot, idem, task);
    }
    // The actor's task entry goes with its last pending task (or when a sweep found it stale: left
    // by a step whose state write was refused). Awaited, so that it cannot land after an entry
    // written by the actor's next step here, or after a release, by the next owner.
    if ((out.tasksDone.length > 0 || out.sweptResume) && Object.keys(slot.record?.k ?? {}).length === 0) {
      await this.deletePending(this.taskIndexKey(p, slot.key), this.leaseHeld(w));
    }
    // Likewise the timer entry, once no timer is left.
    if (out.timerIndex === 'delete') await this.deletePending(this.timerIndexKey(p, slot.key), this.leaseHeld(w));
    return true;
  }

  private taskIndexKey(p: number, key: string): string {
    return `${p}.${key}.k`;
  }

  private attend(p: number, key: string, idem: string): void {
    const k = `${p}.${key}`;
    let idems = this.attended.get(k);
    if (!idems) this.attended.set(k, (idems = new Set()));
    idems.add(idem);
  }

  private unattend(p: number, key: string, idem: string): void {
    const k = `${p}.${key}`;
    const idems = this.attended.get(k);
    if (idems?.delete(idem) && idems.size === 0) this.attended.delete(k);
  }

  /**
   * A step's sends, emits and dead letters, retried in place until stored while the worker is
   * active (its messages stay unacknowledged meanwhile, and the actor's next step waits), instead
   * of restarting the partition on the first failure. False when the worker stopped.
   */
  private publishEffects(w: Worker, slot: Slot, publish: () => Promise<unknown>): Promise<boolean> {
    return this.untilPublished({ partition: w.partition, actor: slot.address }, 'step effects publish failed: retrying', () => w.active, publish);
  }

  /**
   * An actor's step at its last entry of a pack reports what it adds to the pack's publication;
   * the last one to report publishes it. Resolves true once it is stored, false if the worker stopped.
   */
  private joinGroup(g: PackGroup, idx: number, from: ActorAddress, outbox: readonly OutboxEntry[] | 'published'): Promise<boolean> {
    if (outbox === 'published') g.published = true;
    else if (outbox.some((e) => 'to' in e)) g.sends.push({ idx, from, outbox });
    if (--g.left === 0) void this.publishGroup(g);
    return g.done;
  }

  /**
   * The sends of a pack's actors in the pack's entry order, packed per target partition by the
   * same deterministic MailSender: a redelivered pack whose actors had all stored their steps
   * yields the same stream messages with the same ids, which the duplicate window drops.
   */
  private async publishGroup(g: PackGroup): Promise<void> {
    if (g.published || g.sends.length === 0) {
      if (g.published) this.log.info({ partition: g.w.partition, seq: g.seq }, 'sends of a redelivered pack were published before: not republished');
      return g.finish(true);
    }
    g.sends.sort((a, b) => a.idx - b.idx);
    const items: Addressed[] = [];
    for (const s of g.sends) this.addressSends(s.from, s.outbox, items);
    const stored = await this.untilPublished({ partition: g.w.partition, seq: g.seq }, 'pack sends publish failed: retrying', () => g.w.active, () =>
      this.mail.sendAll(items).then((at) => this.handOver(items, at)),
    );
    g.finish(stored);
  }

  /** The batch again on the stored record (index entries written for the discarded step are harmless orphans). */
  private async reloadAndProcess(slot: Slot, batch: Queued[]): Promise<boolean> {
    await this.load(slot);
    if (!slot.worker.active) {
      this.counters.inFlight -= deliveries(batch);
      return false;
    }
    return this.process(slot, batch);
  }

  /**
   * Compare-and-set of an actor record: stored only if the key's last revision is `rev` (0: the
   * key must not exist). The same operation as KV update/create (a publish to the bucket's
   * subject with the expected-sequence header) without the KV client's per-call overhead.
   */
  private async writeState(key: string, bytes: Uint8Array, rev: number, mayStillSend: () => boolean, urgent: boolean): Promise<number> {
    const h = headers();
    h.set('Nats-Expected-Last-Subject-Sequence', String(rev));
    return (await this.requester.publish(`$KV.${this.prefix}_state.${key}`, bytes, h, mayStillSend, urgent)).seq;
  }

  /**
   * An index entry of the pending bucket (timer or task), through the hot-path requester: the KV
   * client's put built two Error objects per call (~5 % of the engine's CPU in a profile).
   */
  private async putPending(key: string, data: Uint8Array, urgent: boolean): Promise<void> {
    await this.requester.publish(`$KV.${this.prefix}_pending.${key}`, data, undefined, undefined, urgent);
  }

  /**
   * Drops an index entry (a delete marker, as the KV client writes it), on the urgent lane: ahead
   * of any later write of the entry waiting for a request slot. Sent only while `mayStillSend`:
   * a node that lost the partition meanwhile (e.g. stopped by SIGSTOP past its lease) must not
   * delete the entry the next owner wrote for the actor's new timers or tasks, or they would not
   * be resumed after the next takeover. Not sent, or failed, it is an orphan: harmless for a
   * timer, found by the sweep for a task.
   */
  private async deletePending(key: string, mayStillSend: () => boolean): Promise<void> {
    const h = headers();
    h.set('KV-Operation', 'DEL');
    await this.requester.publish(`$KV.${this.prefix}_pending.${key}`, EMPTY, h, mayStillSend, true).catch(() => undefined);
  }

  /** Whether this node still holds `w`'s partition with a valid lease (checked when a request leaves). */
  private leaseHeld(w: Worker): () => boolean {
    const owner = this.owned.get(w.partition);
    return () => w.active && owner !== undefined && this.owned.get(w.partition) === owner && performance.now() <= owner.validUntil;
  }

  /** A JetStream publish, deduplicated by the stream when `msgId` is given. */
  private jsPublish(subject: string, data: Uint8Array, msgId?: string, h?: MsgHdrs): Promise<PubAck> {
    if (msgId !== undefined) {
      h ??= headers();
      h.set('Nats-Msg-Id', msgId);
    }
    return this.requester.publish(subject, data, h);
  }

  private timerIndexKey(p: number, key: string): string {
    return `${p}.${key}.t`;
  }

  /** Sends (packed per partition, deterministically: a replay yields the same stream messages) and emits. */
  private publishOutbox(from: ActorAddress, outbox: readonly OutboxEntry[]): Promise<unknown> {
    const pubs: Promise<unknown>[] = [];
    for (const e of outbox) if (!('to' in e)) pubs.push(this.jsPublish(`${this.eventsSubject}.${e.ev}`, encode(e.e), e.id));
    const sends = this.addressSends(from, outbox, []);
    if (sends.length > 0) pubs.push(this.mail.sendAll(sends).then((stored) => this.handOver(sends, stored)));
    return Promise.all(pubs);
  }

  /**
   * Express mail just stored in the stream goes straight to its receiver's queue too when this
   * node works the receiver's partition, ahead of what the partition's consumer has yet to
   * deliver (a task result or a reply overtaking a fan-out). Its stream delivery later finds it
   * applied (ActorRecord `e`). A duplicate publication (a replay) is left to the stream.
   */
  private handOver(items: readonly Addressed[], stored: readonly Stored[]): void {
    items.forEach((a, i) => {
      const at = stored[i];
      if (!a.express || !at || at.duplicate) return;
      const o = this.owned.get(a.partition);
      const w = o?.worker;
      // Not to a worker still setting up its consumer: the stream delivers it there.
      if (!w?.active || !w.messages || o!.releasing) return;
      const slot = this.route(w, a.key, a.env, { seq: at.seq, idx: at.idx, env: a.env, d: undefined, early: true });
      if (typeof slot !== 'string' && !slot.busy) void this.run(slot);
    });
  }

  /** The sends of an outbox as envelopes for their mailboxes, appended to `into` (returned). */
  private addressSends(from: ActorAddress, outbox: readonly OutboxEntry[], into: Addressed[]): Addressed[] {
    for (const e of outbox) {
      if (!('to' in e)) continue;
      try {
        const a = this.mail.address(e.to, { i: e.id, f: from, m: e.m });
        into.push(e.xp ? { ...a, express: true } : a);
      } catch {
        this.log.warn({ actor: from, to: e.to }, 'send to an invalid address dropped');
      }
    }
    return into;
  }

  /** A state write was refused: someone else wrote this actor, so this node stops working the partition. */
  private async fence(w: Worker, address: ActorAddress): Promise<void> {
    const p = w.partition;
    this.counters.fencings++;
    this.log.warn({ partition: p, actor: address }, 'state write refused (fenced): dropping partition');
    const o = this.owned.get(p);
    await this.abandonWorker(w);
    if (!o || this.owned.get(p) !== o) return;
    // Keep the partition only if the lease is provably still ours (then the other writer was a
    // stale node whose write slipped in before its lease ran out).
    const e = await this.leaseKv.get(`p.${p}`).catch(() => null);
    const lease = e && e.operation === 'PUT' ? decode<LeaseValue>(e.value) : undefined;
    // (A higher revision still ours: a renewal applied without its reply reaching us.)
    if (lease?.node === this.nodeId && e!.revision >= o.rev && performance.now() < o.validUntil && !this.stopping) {
      await this.startWorker(p, o);
    } else {
      this.owned.delete(p);
      o.tasks.abort();
      this.log.warn({ partition: p, holder: lease?.node }, 'partition lost');
    }
  }

  private async restartWorker(w: Worker, reason: string): Promise<void> {
    const p = w.partition;
    // A partition being released drains its worker instead.
    if (!w.active || this.owned.get(p)?.releasing) return;
    this.counters.workerRestarts++;
    this.log.info({ partition: p, reason }, 'partition worker restarting');
    await this.abandonWorker(w);
    const o = this.owned.get(p);
    if (!o || o.releasing || this.stopping || o.worker !== w) return;
    await new Promise((r) => setTimeout(r, 100));
    if (this.owned.get(p) === o && !o.releasing && !this.stopping && o.worker === w) await this.startWorker(p, o);
  }

  private untilIdle(w: Worker): Promise<void> {
    return w.busy === 0 ? Promise.resolve() : new Promise((r) => w.idle.push(r));
  }

  /** Stops at once; queued messages stay unacknowledged for the next consumer. */
  private async abandonWorker(w: Worker): Promise<void> {
    if (!w.active) return this.untilIdle(w);
    w.active = false;
    await w.started;
    try {
      w.messages?.stop();
    } catch {
      /* already closed */
    }
    this.dropSlots(w);
    await this.untilIdle(w);
  }

  /** Stops pulling, finishes what was delivered, waits until the server has every ack, deletes the consumer. */
  private async drainWorker(w: Worker): Promise<void> {
    await w.started;
    try {
      w.messages?.stop();
    } catch {
      /* already closed */
    }
    await this.untilIdle(w);
    if (w.active) {
      await this.nc.flush().catch(() => undefined);
      // Every ack sent has landed once the only unacknowledged deliveries are those this
      // worker never saw (sent by the server after the pull stopped).
      const deadline = performance.now() + 2000;
      while (performance.now() < deadline) {
        const info = await this.jsm.consumers.info(this.streamName, this.consumerName(w.partition)).catch(() => undefined);
        if (!info || info.num_ack_pending <= info.delivered.consumer_seq - w.lastDelivery) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await this.jsm.consumers.delete(this.streamName, this.consumerName(w.partition)).catch(() => undefined);
    }
    w.active = false;
    this.dropSlots(w);
  }

  private dropSlots(w: Worker): void {
    for (const key of w.slots) {
      const s = this.cache.get(key);
      if (s?.worker === w) this.cache.delete(key);
    }
    w.slots.clear();
    // Steps waiting for a pack's publication give up (their messages come back to the next consumer).
    for (const g of this.packGroups) if (g.w === w) g.finish(false);
  }

  /** Drops least recently used idle actors beyond the cache size. */
  private evict(): void {
    if (this.cache.size <= this.cacheSize || performance.now() < this.evictPausedUntil) return;
    let excess = this.cache.size - this.cacheSize;
    for (const [key, s] of this.cache) {
      if (excess <= 0) break;
      if (s.busy || s.queue.length > 0 || s.early.length > 0) continue;
      this.cache.delete(key);
      s.worker.slots.delete(key);
      excess--;
    }
    // What is left is busy or queued: with more actors in flight than the cache holds, scanning
    // them again after every step cost 30-40% of an engine's CPU (1M-member benchmark profile)
    // and blocked its event loop for seconds, so the next scan waits a little.
    if (excess > 0) {
      this.evictPausedUntil = performance.now() + EVICT_PAUSE_MS;
      // Scanned again after the pause even if no step ends by then.
      this.evictHandle ??= setTimeout(() => {
        this.evictHandle = undefined;
        // The timer may fire a little before the pause ends by the monotonic clock.
        this.evictPausedUntil = 0;
        this.evict();
      }, EVICT_PAUSE_MS);
      this.evictHandle.unref();
    }
  }

  // ---------------------------------------------------------------- timers and tasks

  private schedule(t: ScheduledTimer): void {
    this.timers.push(t);
    if (t.at < this.timerAt) this.armTimer();
  }

  private armTimer(): void {
    clearTimeout(this.timerHandle);
    const next = this.timers.peek();
    if (!next || this.stopping) {
      this.timerAt = Infinity;
      return;
    }
    this.timerAt = next.at;
    this.timerHandle = setTimeout(() => this.fireDue(), Math.min(MAX_TIMEOUT, Math.max(0, next.at - Date.now())));
    this.timerHandle.unref();
  }

  private fireDue(): void {
    const now = Date.now();
    const touched = new Set<RatedTimers>();
    while ((this.timers.peek()?.at ?? Infinity) <= now) {
      const t = this.timers.pop()!;
      const rated = this.rated.get(t.name);
      if (rated) {
        rated.due.push(t);
        touched.add(rated);
      } else this.fire(t);
    }
    for (const r of touched) this.fireRated(r);
    this.armTimer();
  }

  /** Fires due timers of a rated name while its bucket has tokens; the rest wait for the next token. */
  private fireRated(r: RatedTimers): void {
    if (r.handle || this.stopping) return;
    const now = Date.now();
    // At most one second's worth saved up: a quiet spell does not release a burst.
    r.tokens = Math.min(Math.max(1, r.perSecond), r.tokens + ((now - r.at) / 1000) * r.perSecond);
    r.at = now;
    while (r.tokens >= 1 && r.due.length > 0) {
      const t = r.due.shift()!;
      if (this.fire(t)) r.tokens--;
    }
    if (r.due.length === 0) return;
    r.handle = setTimeout(() => {
      r.handle = undefined;
      this.fireRated(r);
    }, Math.ceil(((1 - r.tokens) / r.perSecond) * 1000));
    r.handle.unref();
  }

  /** Publishes a timer's fire to its actor; false when the partition is no longer worked here with that epoch. */
  private fire(t: ScheduledTimer): boolean {
    const w = this.owned.get(t.partition)?.worker;
    if (!w?.active || w.epoch !== t.epoch) return false; // the next owner re-arms it from the index
    const i = `fire:${t.key}:${encodeToken(t.name)}:${t.at}`;
    this.jsPublish(this.mailboxSubject(t.partition, t.key), encode({ i, c: { fire: t.name } } satisfies Envelope), i).catch((e) => {
      this.log.warn({ actor: addressOfKey(t.key), timer: t.name, err: String(e) }, 'timer fire publish failed: retrying');
      this.schedule({ ...t, at: Date.now() + 1000 });
    });
    return true;
  }

  private runTask(w: Worker, slot: Slot, idem: string, task: PendingTask): void {
    const o = this.owned.get(w.partition);
    if (!o) return; // the next owner reruns it
    const signal = o.tasks.signal;
    // A resume after a worker restart finds the task still running here: that run answers.
    if (this.runningTasks.get(idem) === signal) return;
    this.runningTasks.set(idem, signal);
    this.attend(w.partition, slot.key, idem);
    let answered = false;
    const handler = this.tasks[task.task];
    const self = slot.address;
    this.counters.tasksRunning++;
    const started = handler
      ? Promise.resolve().then(() => handler(task.in, { self, idempotencyKey: idem, signal }))
      : Promise.reject(new KilnError('INTERNAL', `no task handler registered as ${JSON.stringify(task.task)}`));
    void started
      .then(
        (value): TaskResult => ({ kind: '$task', name: task.n, ok: true, value, idempotencyKey: idem }),
        (err): TaskResult => {
          const e = err as { code?: unknown; message?: unknown; retryAfterMs?: unknown };
          const error: { code: string; message: string; retryAfterMs?: number } = {
            code: typeof e?.code === 'string' ? e.code : 'INTERNAL',
            message: typeof e?.message === 'string' ? e.message : String(err),
          };
          if (typeof e?.retryAfterMs === 'number') error.retryAfterMs = e.retryAfterMs;
          return { kind: '$task', name: task.n, ok: false, error, idempotencyKey: idem };
        },
      )
      .then(async (result) => {
        const i = `${idem}/r`;
        const env: Envelope = { i, k: idem, m: result };
        const data = encode(env);
        const subject = this.mailboxSubject(w.partition, slot.key);
        // Nothing else would answer the actor while this node keeps the partition, so retried
        // until stored (the msgId makes a retry of a stored one a no-op). Once the ownership
        // ended (signal aborted) the next owner reruns the task instead.
        await this.untilPublished({ actor: self, task: task.task }, 'task result publish failed: retrying', () => !signal.aborted, async () => {
          const ack = await this.jsPublish(subject, data, i);
          answered = true;
          // A task result is always express.
          this.handOver([{ key: slot.key, partition: w.partition, env, express: true }], [{ seq: ack.seq, idx: undefined, duplicate: ack.duplicate === true }]);
        });
      })
      .catch((e) => this.log.error({ actor: self, task: task.task, err: String(e) }, 'task result not published'))
      .finally(() => {
        this.counters.tasksRunning--;
        if (this.runningTasks.get(idem) === signal) this.runningTasks.delete(idem);
        // Not answered from here (the ownership ended): the next owner's sweep may resume it.
        if (!answered) this.unattend(w.partition, slot.key, idem);
      });
  }

  /**
   * Runs `publish` until it succeeds, with backoff; false once `wanted()` turns false (the work
   * moved elsewhere) or the runtime stopped. What is published this way always carries a
   * deterministic Nats-Msg-Id, so a retry of a publish stored despite a lost reply is dropped.
   */
  private async untilPublished(what: Record<string, unknown>, msg: string, wanted: () => boolean, publish: () => Promise<unknown>): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      if (!wanted() || this.stopped) return false;
      try {
        await publish();
        return true;
      } catch (e) {
        if (!wanted() || this.stopped) return false;
        this.counters.publishRetries++;
        const ms = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** attempt);
        this.log.warn({ ...what, attempt: attempt + 1, retryInMs: ms, err: String(e) }, msg);
        await new Promise((r) => setTimeout(r, ms));
      }
    }
  }

  // ---------------------------------------------------------------- connection

  private async watchStatus(): Promise<void> {
    for await (const s of this.nc.status()) {
      if (s.type === 'reconnect') {
        // Deliveries in flight across the outage may be lost: re-read every partition from what is unacknowledged.
        this.log.warn('reconnected to NATS: restarting partition workers');
        for (const o of this.owned.values()) if (o.worker && !o.releasing) void this.restartWorker(o.worker, 'reconnect');
      } else if (s.type === 'disconnect') {
        this.log.warn('disconnected from NATS');
      }
    }
  }

  private sampleRate(): void {
    const now = performance.now();
    const dt = (now - this.rate.at) / 1000;
    if (dt <= 0) return;
    this.rate = { at: now, processed: this.counters.processed, perSec: Math.round((this.counters.processed - this.rate.processed) / dt) };
  }
}

/** What a stall check saw of a quiet worker's consumer (see Runtime.checkStalls). */
export interface ConsumerView {
  pending: number;
  unacknowledged: number;
  pullsWaiting: number;
  /** The stream holds mail of the partition (asked only when the consumer counts none). */
  held: boolean;
}

/**
 * A quiet worker's fate: restarted (fresh consumer from what the stream holds) when its pulls are
 * gone (pending, none waiting), or when work shows on two checks in a row; 'suspect' when this
 * check saw work (a message stored just before it is not delivered yet). Work includes mail the
 * stream holds while the consumer counts none: after nats-server 2.9 resets a stream's replicas
 * ("Resetting stream cluster state", see docs/chaos.md finding 6) a consumer can come back past
 * deliveries it no longer tracks — nothing pending or unacknowledged, nothing ever redelivered.
 */
export function stallVerdict(c: ConsumerView, suspect: boolean): 'restart' | 'suspect' | 'quiet' {
  if (c.pending > 0 && c.pullsWaiting === 0) return 'restart';
  const work = c.pending > 0 || c.unacknowledged > 0 || c.held;
  if (!work) return 'quiet';
  return suspect ? 'restart' : 'suspect';
}

/** Counting semaphore. */
class Semaphore {
  private waiting: (() => void)[] = [];
  constructor(private free: number) {}

  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((r) => this.waiting.push(r));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}
