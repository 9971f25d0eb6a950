import { randomUUID } from 'node:crypto';
import { KilnError, createLogger, decode, encode, type KilnErrorJSON, type Logger } from '@kiln/core';
import { apiSubject, JSON_TYPE, MSGPACK_TYPE } from '@kiln/api';
import { connect as natsConnect, headers, NoRespondersError, RequestError, TimeoutError, type NatsConnection } from '@nats-io/transport-node';
import { groupHealth, type GroupHealth } from './group.js';
import { sleep } from './sleep.js';
import { watchEvents, type EventWatch, type WatchOptions } from './watch.js';
import {
  RETRY_CLASS,
  type EventsPage,
  type GenerationRef,
  type KilnEvent,
  type OperationName,
  type RequestOf,
  type ResourceView,
  type ResultOf,
  type StackSource,
  type StackSummary,
} from './types.js';

/** The tenant of local mode (`kiln up`, no authentication). */
export const DEFAULT_TENANT = 'default';

export interface ClientOptions {
  /** The tenant whose API subjects (`kiln.api.v1.<tenant>.…`) this client calls. Default `default`. */
  tenant?: string;
  /** Body encoding of requests (replies come back in the same one). Default `json`. */
  encoding?: 'json' | 'msgpack';
  /** How long one attempt of a request waits for its reply. Default 10 s. */
  timeoutMs?: number;
  /** Further attempts after a timeout, a missing responder or RATE_LIMITED. Default 3. */
  retries?: number;
  /** First backoff between attempts (doubled each time, with jitter). Default 200 ms. */
  retryBackoffMs?: number;
  /**
   * Prefix of the inboxes `watch` receives events on. Default `_INBOX_<tenant>`: the only
   * subjects a tenant user may subscribe to. An admin acting for a tenant uses `_INBOX`.
   */
  inboxPrefix?: string;
  logger?: Logger;
}

export interface ConnectOptions extends ClientOptions {
  servers: string | string[];
  user?: string;
  pass?: string;
  token?: string;
  /** Connection name shown by the server's monitoring. */
  name?: string;
}

export interface CallOptions {
  timeoutMs?: number;
  /** Ends the retries (the attempt in flight still completes or times out). */
  signal?: AbortSignal;
}

/** Extra options of a desired-state write. */
export interface WriteOptions extends CallOptions {
  /** Idempotency key; generated when absent, and kept across the retries of this call. */
  requestId?: string;
}

const MAX_BACKOFF_MS = 5_000;

/** A failure below the API (no reply), marked so that only those are retried. */
function transportError(code: 'TIMEOUT' | 'UNAVAILABLE', message: string, kind: string, cause: unknown): KilnError {
  return new KilnError(code, message, { detail: { transport: kind }, cause });
}

function isTransport(e: KilnError): boolean {
  return typeof e.detail === 'object' && e.detail !== null && 'transport' in e.detail;
}

function retryAfterMs(e: KilnError): number | undefined {
  const d = e.detail as { retry_after_ms?: unknown } | undefined;
  return typeof d?.retry_after_ms === 'number' ? d.retry_after_ms : undefined;
}

/**
 * A typed client of the Kiln request API (docs/api.md) for one tenant.
 *
 * Every reply error becomes a `KilnError` with the API's code, path and status. A call that gets
 * no reply (timeout, no API instance) is retried when that is safe: reads always, writes with
 * the same `request_id` on every attempt (the API stores the result of the first one, so a retry
 * never creates a second stack or generation), never `resource.signal`, `stack.abandon` or
 * `events.subscribe`. RATE_LIMITED is retried after the `retry_after_ms` the API gives.
 */
export class KilnClient {
  readonly tenant: string;
  readonly inboxPrefix: string;
  private readonly encoding: 'json' | 'msgpack';
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoffMs: number;
  readonly log: Logger;

  private constructor(
    readonly nc: NatsConnection,
    o: ClientOptions,
    private readonly ownsConnection: boolean,
  ) {
    this.tenant = o.tenant ?? DEFAULT_TENANT;
    // Validates the tenant token at once rather than on the first call.
    apiSubject(this.tenant, 'stack.show');
    this.inboxPrefix = o.inboxPrefix ?? `_INBOX_${this.tenant}`;
    this.encoding = o.encoding ?? 'json';
    this.timeoutMs = o.timeoutMs ?? 10_000;
    this.retries = o.retries ?? 3;
    this.backoffMs = o.retryBackoffMs ?? 200;
    this.log = o.logger ?? createLogger('kiln-sdk');
  }

  /** Connects to NATS as the tenant (inbox prefix `_INBOX_<tenant>`, which tenant users are limited to). */
  static async connect(o: ConnectOptions): Promise<KilnClient> {
    const tenant = o.tenant ?? DEFAULT_TENANT;
    let nc: NatsConnection;
    try {
      nc = await natsConnect({
        servers: o.servers,
        ...(o.user === undefined ? {} : { user: o.user }),
        ...(o.pass === undefined ? {} : { pass: o.pass }),
        ...(o.token === undefined ? {} : { token: o.token }),
        ...(o.name === undefined ? {} : { name: o.name }),
        inboxPrefix: o.inboxPrefix ?? `_INBOX_${tenant}`,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
      });
    } catch (e) {
      throw new KilnError('UNAVAILABLE', `cannot connect to NATS at ${String(o.servers)}: ${(e as Error).message}`, { cause: e });
    }
    return new KilnClient(nc, o, true);
  }

  /** A client over a connection the caller owns (and closes). Its inbox prefix must allow the tenant's replies. */
  static fromConnection(nc: NatsConnection, o: ClientOptions = {}): KilnClient {
    return new KilnClient(nc, o, false);
  }

  /** Closes the connection if this client opened it. */
  async close(): Promise<void> {
    if (this.ownsConnection && !this.nc.isClosed()) await this.nc.close();
  }

  /** Calls one operation; the typed methods below are shorthands of this. */
  async call<O extends OperationName>(op: O, body: RequestOf<O>, o: CallOptions & { requestId?: string } = {}): Promise<ResultOf<O>> {
    const cls = RETRY_CLASS[op];
    let sent = body as Record<string, unknown>;
    if (cls === 'idempotent' && sent.request_id === undefined) sent = { ...sent, request_id: o.requestId ?? randomUUID() };
    for (let attempt = 0; ; attempt++) {
      try {
        return (await this.attempt(op, sent, o.timeoutMs ?? this.timeoutMs)) as ResultOf<O>;
      } catch (e) {
        const err = e as KilnError;
        // A refused request (RATE_LIMITED) had no side effect; a lost one may have, so only
        // calls that are safe to repeat are repeated.
        const retryable = err.code === 'RATE_LIMITED' || (isTransport(err) && cls !== 'once');
        if (!retryable || attempt >= this.retries || o.signal?.aborted || this.nc.isClosed()) throw err;
        const wait = retryAfterMs(err) ?? Math.min(MAX_BACKOFF_MS, this.backoffMs * 2 ** attempt) * (0.5 + Math.random());
        this.log.debug({ op, attempt, code: err.code, waitMs: Math.round(wait) }, 'retrying request');
        await sleep(wait, o.signal);
      }
    }
  }

  private async attempt(op: OperationName, body: unknown, timeout: number): Promise<unknown> {
    const h = headers();
    h.set('Content-Type', this.encoding === 'json' ? JSON_TYPE : MSGPACK_TYPE);
    const data = this.encoding === 'json' ? new TextEncoder().encode(JSON.stringify(body)) : encode(body);
    let m;
    try {
      m = await this.nc.request(apiSubject(this.tenant, op), data, { timeout, headers: h });
    } catch (e) {
      throw this.requestFailure(op, e, timeout);
    }
    let reply: { ok?: unknown; result?: unknown; error?: KilnErrorJSON };
    try {
      reply = m.headers?.get('Content-Type') === MSGPACK_TYPE ? (decode(m.data) as typeof reply) : JSON.parse(m.string());
    } catch (e) {
      throw new KilnError('DECODE_FAILED', `${op}: the reply is not valid ${m.headers?.get('Content-Type') || 'JSON'}`, { cause: e });
    }
    if (reply.ok === true) return reply.result;
    if (reply.ok === false && reply.error && typeof reply.error.code === 'string') throw KilnError.fromJSON(reply.error);
    throw new KilnError('DECODE_FAILED', `${op}: the reply is not a Kiln API envelope`);
  }

  private requestFailure(op: string, e: unknown, timeout: number): KilnError {
    if (e instanceof KilnError) return e;
    const cause = e instanceof RequestError ? (e.cause ?? e) : e;
    if (cause instanceof NoRespondersError || (e instanceof RequestError && e.isNoResponders())) {
      return transportError('UNAVAILABLE', `${op}: no Kiln API service is answering on NATS`, 'no_responders', e);
    }
    if (cause instanceof TimeoutError || e instanceof TimeoutError) {
      return transportError('TIMEOUT', `${op}: no reply within ${timeout} ms`, 'timeout', e);
    }
    if (this.nc.isClosed()) return new KilnError('UNAVAILABLE', `${op}: the NATS connection is closed`, { cause: e });
    // Disconnected mid-request and similar: the request may or may not have reached the API.
    return transportError('UNAVAILABLE', `${op}: ${(e as Error).message ?? String(e)}`, 'connection', e);
  }

  // --- stacks -----------------------------------------------------------------------------

  createStack(name: string, source: StackSource, o: WriteOptions & { tags?: string[] } = {}): Promise<GenerationRef> {
    return this.call('stack.create', { name, ...source, ...(o.tags ? { tags: o.tags } : {}) }, o);
  }

  updateStack(stack: string, source: StackSource, o: WriteOptions = {}): Promise<GenerationRef> {
    return this.call('stack.update', { stack, ...source }, o);
  }

  /** Changes only what is given; parameters are merged with the stack's. */
  patchStack(stack: string, patch: Omit<RequestOf<'stack.patch'>, 'stack' | 'request_id'>, o: WriteOptions = {}): Promise<GenerationRef> {
    return this.call('stack.patch', { stack, ...patch }, o);
  }

  deleteStack(stack: string, o: WriteOptions = {}): Promise<GenerationRef> {
    return this.call('stack.delete', { stack }, o);
  }

  showStack(stack: string, o: CallOptions = {}): Promise<ResultOf<'stack.show'>> {
    return this.call('stack.show', { stack }, o);
  }

  /** One page of the tenant's stacks. */
  listStacks(q: RequestOf<'stack.list'> = {}, o: CallOptions = {}): Promise<ResultOf<'stack.list'>> {
    return this.call('stack.list', q, o);
  }

  /** All the tenant's stacks (matching the filter), page after page. */
  async *stacks(filter: { name?: string; status?: string } = {}, o: CallOptions & { pageSize?: number } = {}): AsyncGenerator<StackSummary> {
    let cursor: string | undefined;
    do {
      const page = await this.listStacks({ filter, limit: o.pageSize ?? 100, ...(cursor === undefined ? {} : { cursor }) }, o);
      yield* page.stacks;
      cursor = page.next_cursor;
    } while (cursor !== undefined);
  }

  validate(source: StackSource, o: CallOptions = {}): Promise<ResultOf<'stack.validate'>> {
    return this.call('stack.validate', source, o);
  }

  /** What creating (no `stack`) or updating `stack` with this source would do. */
  preview(source: StackSource, stack?: string, o: CallOptions = {}): Promise<ResultOf<'stack.preview'>> {
    return this.call('stack.preview', { ...source, ...(stack === undefined ? {} : { stack }) }, o);
  }

  abandonStack(stack: string, o: CallOptions = {}): Promise<ResultOf<'stack.abandon'>> {
    return this.call('stack.abandon', { stack }, o);
  }

  adoptStack(name: string, source: StackSource, adoptData: Record<string, unknown>, o: WriteOptions = {}): Promise<GenerationRef> {
    return this.call('stack.adopt', { name, ...source, adopt_data: adoptData }, o);
  }

  async outputs(stack: string, output?: string, o: CallOptions = {}): Promise<ResultOf<'stack.outputs'>['outputs']> {
    return (await this.call('stack.outputs', { stack, ...(output === undefined ? {} : { output }) }, o)).outputs;
  }

  /** A new generation whose desired state is the previous one. */
  cancelUpdate(stack: string, o: WriteOptions = {}): Promise<GenerationRef> {
    return this.call('stack.cancel', { stack }, o);
  }

  // --- resources --------------------------------------------------------------------------

  listResources(stack: string, q: Omit<RequestOf<'resource.list'>, 'stack'> = {}, o: CallOptions = {}): Promise<ResultOf<'resource.list'>> {
    return this.call('resource.list', { stack, ...q }, o);
  }

  /** All resources of a stack (down to `nested_depth`), page after page. */
  async *resources(stack: string, q: Omit<RequestOf<'resource.list'>, 'stack' | 'cursor'> = {}, o: CallOptions = {}): AsyncGenerator<ResourceView> {
    let cursor: string | undefined;
    do {
      const page = await this.listResources(stack, { ...q, ...(cursor === undefined ? {} : { cursor }) }, o);
      yield* page.resources;
      cursor = page.next_cursor;
    } while (cursor !== undefined);
  }

  showResource(stack: string, resource: string, o: CallOptions = {}): Promise<ResultOf<'resource.show'>> {
    return this.call('resource.show', { stack, resource }, o);
  }

  async markUnhealthy(stack: string, resource: string, m: { unhealthy?: boolean; reason?: string } = {}, o: CallOptions = {}): Promise<void> {
    await this.call('resource.mark-unhealthy', { stack, resource, ...m }, o);
  }

  /** Not retried automatically: a lost reply may hide a delivered signal. */
  async signal(stack: string, resource: string, data?: unknown, o: CallOptions = {}): Promise<void> {
    await this.call('resource.signal', { stack, resource, ...(data === undefined ? {} : { data }) }, o);
  }

  // --- events -----------------------------------------------------------------------------

  listEvents(q: RequestOf<'events.list'> = {}, o: CallOptions = {}): Promise<EventsPage> {
    return this.call('events.list', q, o);
  }

  /** Every stored event matching `q` from its start point up to now, page after page. */
  async *events(q: RequestOf<'events.list'> = {}, o: CallOptions = {}): AsyncGenerator<KilnEvent> {
    let page = await this.listEvents(q, o);
    for (;;) {
      yield* page.events;
      if (!page.more) return;
      // Later pages continue by sequence; a start time only places the first one.
      const next: RequestOf<'events.list'> = { ...q, since_seq: page.next_seq };
      delete next.since_time;
      page = await this.listEvents(next, o);
    }
  }

  /**
   * Replays and follows events (`stack` by id or name; undefined: all the tenant's stacks),
   * resuming without gaps or duplicates after disconnects. See `EventWatch`.
   */
  watch(stack: string | undefined, o: WatchOptions = {}): EventWatch {
    return watchEvents(this, stack, o);
  }

  // --- groups (the autoscaler toolkit) -------------------------------------------------

  /**
   * Sets a scaling group's desired capacity: a new generation of its stack, accepted at once
   * (the newest wins; this does not wait for the group to converge).
   */
  setCapacity(stack: string, group: string, capacity: number, o: WriteOptions = {}): Promise<GenerationRef> {
    return this.call('group.capacity.set', { stack, group, capacity }, o);
  }

  /** The group's own status and each member's state. */
  groupHealth(stack: string, group: string, o: CallOptions = {}): Promise<GroupHealth> {
    return groupHealth(this, stack, group, o);
  }

  /** A handle on one group of one stack. */
  group(stack: string, group: string): ScalingGroup {
    return new ScalingGroup(this, stack, group);
  }

  engineStatus(o: CallOptions = {}): Promise<ResultOf<'engine.status'>> {
    return this.call('engine.status', {}, o);
  }
}

/** One scaling group: what an autoscaler holds. */
export class ScalingGroup {
  constructor(
    readonly client: KilnClient,
    readonly stack: string,
    readonly name: string,
  ) {}

  setCapacity(capacity: number, o: WriteOptions = {}): Promise<GenerationRef> {
    return this.client.setCapacity(this.stack, this.name, capacity, o);
  }

  health(o: CallOptions = {}): Promise<GroupHealth> {
    return this.client.groupHealth(this.stack, this.name, o);
  }
}

/** Shorthand of `KilnClient.connect`. */
export function connect(o: ConnectOptions): Promise<KilnClient> {
  return KilnClient.connect(o);
}
