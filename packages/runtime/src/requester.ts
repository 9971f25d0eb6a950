import { createInbox, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { KilnError } from '@kiln/core';
import { Fifo } from './fifo.js';

export interface PubAck {
  seq: number;
  duplicate?: boolean;
}

/** A JetStream publish was refused with this API error code (e.g. 10071: wrong last sequence). */
export class PublishRefused extends Error {
  constructor(
    readonly errCode: number,
    description: string,
  ) {
    super(description);
  }
}

/** A request whose `mayStillSend` said no once its turn came: it was never sent. */
export class NotSent extends Error {}

const textDecoder = new TextDecoder();

/**
 * Request/reply for the hot path (state writes, sends, reads): one wildcard inbox subscription, a
 * map of pending replies and one sweep timer for timeouts. nats.js's own request() allocates a
 * timer and two Error objects per call (one even on success), a third of the engine's CPU at load.
 *
 * At most `maxOutstanding` requests await a reply; further ones wait their turn before being
 * sent (back-pressure). Without the bound a fan-out queued tens of thousands of writes on the
 * connection and replies took 5-30 s; the timeout counts from the send, not from the wait.
 * Urgent requests (the steps of express mail) wait in a lane of their own, served first.
 */
export class Requester {
  private readonly inbox = createInbox();
  private readonly pending = new Map<number, { resolve: (m: Msg) => void; reject: (e: unknown) => void; deadline: number }>();
  /** Requests waiting for a free slot, in arrival order; urgent ones go first. */
  private readonly waiting = new Fifo<() => void>();
  private readonly urgentWaiting = new Fifo<() => void>();
  /** Slots taken: requests awaiting a reply plus waiters woken and about to send. */
  private inUse = 0;
  private next = 0;
  private closed = false;
  private readonly sub: Subscription;
  private readonly sweep: NodeJS.Timeout;

  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs: number,
    private readonly maxOutstanding = Infinity,
  ) {
    this.sub = nc.subscribe(`${this.inbox}.*`, {
      callback: (_err, m) => {
        const id = Number(m.subject.slice(this.inbox.length + 1));
        const p = this.pending.get(id);
        if (!p) return;
        this.pending.delete(id);
        this.freeSlot();
        p.resolve(m);
      },
    });
    this.sweep = setInterval(() => this.expire(), Math.max(100, Math.floor(timeoutMs / 4)));
    this.sweep.unref();
  }

  /** Requests waiting for a slot (back-pressure). */
  get queued(): number {
    return this.waiting.length + this.urgentWaiting.length;
  }

  /**
   * `mayStillSend` is asked right before the request goes out (after any wait for a slot): a
   * fenced write checks its lease there, since the wait can be long. False rejects with NotSent.
   * `urgent` requests get the next free slot before the others waiting.
   */
  request(subject: string, data: Uint8Array, headers?: MsgHdrs, mayStillSend?: () => boolean, urgent = false): Promise<Msg> {
    if (this.inUse < this.maxOutstanding) {
      this.inUse++;
      return this.send(subject, data, headers, mayStillSend);
    }
    // The slot is handed over by freeSlot (inUse stays counted for it).
    return new Promise<void>((r) => (urgent ? this.urgentWaiting : this.waiting).push(r)).then(() => this.send(subject, data, headers, mayStillSend));
  }

  private send(subject: string, data: Uint8Array, headers?: MsgHdrs, mayStillSend?: () => boolean): Promise<Msg> {
    if (this.closed) {
      this.freeSlot();
      return Promise.reject(new KilnError('UNAVAILABLE', 'runtime stopped'));
    }
    if (mayStillSend && !mayStillSend()) {
      this.freeSlot();
      return Promise.reject(new NotSent(`not sent to ${subject}`));
    }
    const id = ++this.next;
    return new Promise<Msg>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, deadline: performance.now() + this.timeoutMs });
      try {
        this.nc.publish(subject, data, headers ? { reply: `${this.inbox}.${id}`, headers } : { reply: `${this.inbox}.${id}` });
      } catch (e) {
        this.pending.delete(id);
        this.freeSlot();
        reject(e);
      }
    });
  }

  /** A reply arrived or timed out: its slot goes to the first waiting request, else is freed. */
  private freeSlot(): void {
    const next = this.urgentWaiting.shift() ?? this.waiting.shift();
    if (next) next();
    else this.inUse--;
  }

  /** A JetStream publish (stream or KV write); resolves with the ack, rejects with PublishRefused or a KilnError. */
  async publish(subject: string, data: Uint8Array, headers?: MsgHdrs, mayStillSend?: () => boolean, urgent = false): Promise<PubAck> {
    const r = await this.request(subject, data, headers, mayStillSend, urgent);
    if (r.headers?.code === 503) throw new KilnError('UNAVAILABLE', `no stream answers on ${subject}`);
    const ack = JSON.parse(textDecoder.decode(r.data)) as PubAck & { error?: { err_code?: number; description?: string } };
    if (ack.error) throw new PublishRefused(ack.error.err_code ?? 0, ack.error.description ?? 'publish refused');
    return ack;
  }

  private expire(): void {
    const now = performance.now();
    for (const [id, p] of this.pending) {
      if (p.deadline <= now) {
        this.pending.delete(id);
        this.freeSlot();
        p.reject(new KilnError('TIMEOUT', `no reply within ${this.timeoutMs} ms`));
      }
    }
  }

  close(): void {
    this.closed = true;
    clearInterval(this.sweep);
    for (const go of [...this.urgentWaiting.drain(), ...this.waiting.drain()]) go();
    this.sub.unsubscribe();
    for (const p of this.pending.values()) p.reject(new KilnError('UNAVAILABLE', 'runtime stopped'));
    this.pending.clear();
  }
}
