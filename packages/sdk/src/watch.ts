import { KilnError, toKilnError } from '@kiln/core';
import { pushedEvent } from '@kiln/api';
import { nuid, PermissionViolationError, type Msg, type Subscription } from '@nats-io/transport-node';
import type { KilnClient } from './client.js';
import { sleep } from './sleep.js';
import type { KilnEvent } from './types.js';

export interface WatchFilters {
  /** One resource (name or nested path) of the watched stack: filtered by the server. */
  resource?: string;
  /** Resource type(s), e.g. `OS::Nova::Server` (the stack's own events: `OS::Heat::Stack`). */
  type?: string | string[];
  /** Status(es), e.g. `CREATE_FAILED`. */
  status?: string | string[];
}

export interface WatchOptions {
  /** First stream sequence to deliver (e.g. the last one processed + 1). */
  fromSequence?: number;
  /** Or the first event stored at or after this time. Neither: only events from now on. */
  since?: Date | string;
  filters?: WatchFilters;
  /** Idle heartbeat of the server-side consumer: silence for 3 of them means a lost subscription. Default 5 s. */
  heartbeatMs?: number;
  /** Events held for a slow reader; beyond this the subscription pauses (the backlog stays in the stream). Default 10,000. */
  maxBuffered?: number;
  /** Ends the watch (the iterator then finishes). */
  signal?: AbortSignal;
}

/**
 * An async iterator over a tenant's events with resume: events come in stream order, each at
 * most once, and after any interruption — NATS reconnect, server restart, lost messages
 * (a jump in the consumer sequence), silence past three heartbeats, a slow reader — it
 * re-subscribes from the last sequence it delivered + 1 on a fresh inbox, so nothing is skipped
 * or repeated. It ends on `close()`, the abort signal, or a non-transient error (e.g. the stack
 * does not exist, or the connection was closed: UNAVAILABLE), which the iterator throws.
 */
export interface EventWatch extends AsyncIterable<KilnEvent> {
  /** Stream sequence of the last event handed to the reader; resume a later watch from `lastSeq + 1`. */
  readonly lastSeq: number | undefined;
  /** How many times it subscribed (1 + resumptions). */
  readonly subscriptions: number;
  close(): void;
}

/** Errors after which subscribing again may work (no API instance yet, stream briefly away). */
const TRANSIENT = new Set(['TIMEOUT', 'UNAVAILABLE', 'RATE_LIMITED']);
const MAX_INTERNAL_RETRIES = 5;

function asList(v: string | string[] | undefined): string[] | undefined {
  return v === undefined ? undefined : Array.isArray(v) ? v : [v];
}

export function watchEvents(client: KilnClient, stack: string | undefined, o: WatchOptions): EventWatch {
  const heartbeatMs = o.heartbeatMs ?? 5_000;
  const maxBuffered = o.maxBuffered ?? 10_000;
  const types = asList(o.filters?.type);
  const statuses = asList(o.filters?.status);
  const since = o.since === undefined ? undefined : typeof o.since === 'string' ? o.since : o.since.toISOString();
  const log = client.log.child({ watch: stack ?? '*' });

  const queue: KilnEvent[] = [];
  let waiter: (() => void) | undefined;
  let failure: KilnError | undefined;
  let closed = false;
  /** Highest sequence queued: the dedupe floor and the resume point. */
  let lastQueued: number | undefined;
  /** Where the first subscription started (its reply's from_seq): the resume point before any event. */
  let startSeq = o.fromSequence;
  let lastDelivered: number | undefined;
  let sub: Subscription | undefined;
  let lastConsumerSeq = 0;
  let lastActivity = Date.now();
  let subscriptions = 0;
  let paused = false;
  let resubscribing: Promise<void> | undefined;
  let again = false;

  const wake = () => {
    const w = waiter;
    waiter = undefined;
    w?.();
  };

  function finish(err?: KilnError): void {
    if (closed) return;
    closed = true;
    failure = err;
    sub?.unsubscribe();
    sub = undefined;
    clearInterval(watchdog);
    statusIter.stop();
    o.signal?.removeEventListener('abort', close);
    wake();
  }

  function close(): void {
    finish();
  }

  function onMessage(m: Msg): void {
    lastActivity = Date.now();
    const pushed = pushedEvent(m);
    if (!pushed) {
      // An idle heartbeat names the consumer's last sequence: a higher one than we saw means loss at the tail.
      const last = Number(m.headers?.get('Nats-Last-Consumer') || 0);
      if (last > lastConsumerSeq) resubscribe(`heartbeat says consumer sequence ${last}, last received ${lastConsumerSeq}`);
      return;
    }
    if (pushed.consumerSeq !== lastConsumerSeq + 1) {
      if (pushed.consumerSeq > lastConsumerSeq + 1) resubscribe(`consumer sequence jumped from ${lastConsumerSeq} to ${pushed.consumerSeq}`);
      return;
    }
    lastConsumerSeq = pushed.consumerSeq;
    const ev = pushed.event;
    if (lastQueued !== undefined && ev.seq <= lastQueued) return;
    lastQueued = ev.seq;
    if (types && !types.includes(ev.resource_type ?? '')) return;
    if (statuses && !statuses.includes(ev.status)) return;
    queue.push(ev);
    if (queue.length >= maxBuffered && !paused) {
      // Back-pressure: stop the push consumer; the backlog stays in the stream until the reader catches up.
      paused = true;
      sub?.unsubscribe();
      sub = undefined;
      log.debug({ buffered: queue.length, lastSeq: lastQueued }, 'watch paused: slow reader');
    }
    wake();
  }

  function subscriptionFailed(inbox: string, err: Error): void {
    // Not allowed to subscribe there: subscribing again would fail the same way, forever.
    if (err instanceof PermissionViolationError) {
      finish(new KilnError('FORBIDDEN', `this NATS user may not subscribe to ${inbox}: pass an inboxPrefix it may use (tenants: _INBOX_<tenant>)`, { path: 'inboxPrefix', cause: err }));
    } else resubscribe(`subscription error: ${err.message}`);
  }

  function resumeBody(): Record<string, unknown> {
    const body: Record<string, unknown> = { heartbeat_ms: heartbeatMs };
    if (stack !== undefined) body.stack = stack;
    if (o.filters?.resource !== undefined) body.resource = o.filters.resource;
    const from = lastQueued !== undefined ? lastQueued + 1 : startSeq;
    if (from !== undefined) body.since_seq = from;
    else if (since !== undefined) body.since_time = since;
    return body;
  }

  /** Replaces the subscription by a fresh one starting after the last queued event; serialized. */
  function resubscribe(reason: string): void {
    if (closed) return;
    if (resubscribing) {
      again = true;
      return;
    }
    if (subscriptions > 0) log.info({ reason, fromSeq: lastQueued === undefined ? startSeq : lastQueued + 1 }, 'watch resubscribing');
    resubscribing = (async () => {
      let failures = 0;
      do {
        again = false;
        sub?.unsubscribe();
        sub = undefined;
        if (paused) return;
        // A fresh inbox per subscription: late pushes of an abandoned consumer land nowhere.
        const inbox = `${client.inboxPrefix}.${nuid.next()}`;
        lastConsumerSeq = 0;
        lastActivity = Date.now();
        try {
          sub = client.nc.subscribe(inbox, { callback: (err, m) => (err ? subscriptionFailed(inbox, err) : onMessage(m)) });
          const body = resumeBody();
          const r = await client.call('events.subscribe', { ...body, deliver_subject: inbox } as never, { timeoutMs: Math.max(5_000, heartbeatMs) });
          subscriptions++;
          // A time start stays a time start until the first event (from_seq would be 1 then).
          if (startSeq === undefined && since === undefined) startSeq = r.from_seq;
          lastActivity = Date.now();
          failures = 0;
        } catch (e) {
          const err = toKilnError(e);
          failures++;
          // The API reports some backend timeouts as INTERNAL (e.g. right after a NATS restart): a few tries.
          const transient = (TRANSIENT.has(err.code) || (err.code === 'INTERNAL' && failures <= MAX_INTERNAL_RETRIES)) && !client.nc.isClosed();
          if (!transient || closed) return finish(closed ? undefined : err);
          again = true;
          log.warn({ code: err.code, err: err.message, attempt: failures }, 'watch subscribe failed: retrying');
          await sleep(Math.min(5_000, 100 * 2 ** Math.min(failures, 6)));
        }
      } while (again && !closed);
    })().finally(() => {
      resubscribing = undefined;
    });
  }

  // Silence past three heartbeats: the consumer or the route to it is gone.
  const watchdog = setInterval(() => {
    if (!paused && !resubscribing && Date.now() - lastActivity > 3 * heartbeatMs) resubscribe('no heartbeat');
  }, heartbeatMs);
  watchdog.unref?.();

  // After a reconnect the consumer may be gone (server restart: consumers are in memory) and
  // messages sent while disconnected are lost: resume explicitly instead of waiting for a gap.
  const statusIter = client.nc.status() as AsyncIterable<{ type: string }> & { stop(): void };
  void (async () => {
    for await (const s of statusIter) {
      if (s.type === 'reconnect') resubscribe('reconnected');
      else if (s.type === 'close') break;
    }
    // The connection is closed for good: nothing more can arrive.
    if (!closed && client.nc.isClosed()) finish(new KilnError('UNAVAILABLE', 'the NATS connection was closed'));
  })();
  o.signal?.addEventListener('abort', close, { once: true });
  if (o.signal?.aborted) close();
  else resubscribe('start');

  const iterator: AsyncIterator<KilnEvent> = {
    async next(): Promise<IteratorResult<KilnEvent>> {
      for (;;) {
        const ev = queue.shift();
        if (ev) {
          lastDelivered = ev.seq;
          if (paused && queue.length <= maxBuffered / 2) {
            paused = false;
            resubscribe('reader caught up');
          }
          return { value: ev, done: false };
        }
        if (closed) {
          if (failure) {
            const f = failure;
            failure = undefined;
            throw f;
          }
          return { value: undefined, done: true };
        }
        await new Promise<void>((r) => (waiter = r));
      }
    },
    async return(): Promise<IteratorResult<KilnEvent>> {
      close();
      return { value: undefined, done: true };
    },
  };

  return {
    [Symbol.asyncIterator]: () => iterator,
    get lastSeq() {
      return lastDelivered;
    },
    get subscriptions() {
      return subscriptions;
    },
    close,
  };
}
