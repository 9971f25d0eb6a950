import { createHash } from 'node:crypto';
import { headers, nuid, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { encode } from '@kiln/core';
import { actorKey, partitionOf } from './address.js';
import { Requester, type PubAck } from './requester.js';
import type { Envelope } from './step.js';
import type { ActorAddress } from './types.js';

/**
 * Last subject token of a pack: one stream message carrying several envelopes for actors of one
 * partition, subject `<prefix>.mbox.<partition>.pack`. An actor key always has two tokens, so
 * this subject is no actor's mailbox. Payload (msgpack): `[[actorKey, envelope], ...]`.
 */
export const PACK_TOKEN = 'pack';

/**
 * Entries per pack at most. The consumer's in-flight bound counts stream messages, so a node
 * holds at most maxInFlight x MAX_PACK_ENTRIES unacknowledged envelopes; the per-message cost of
 * the publish, delivery and ack shrinks as 1/entries, which is already small at 32.
 */
export const MAX_PACK_ENTRIES = 32;

/** Defaults shared by the runtime's nodes and MailboxClient (they must agree). */
export const DEFAULT_PARTITIONS = 32;
export const DEFAULT_PREFIX = 'kiln';

/** Default NATS max_payload; a pack that would exceed it is split. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

export type PackEntry = [key: string, env: Envelope];

/** One message for `sendMany`. */
export interface Outgoing {
  readonly to: ActorAddress;
  readonly msg: unknown;
  /** Stable id (the reducer's ctx.msgId); generated when absent. */
  readonly msgId?: string | undefined;
  readonly from?: ActorAddress | undefined;
}

/** An envelope ready for a mailbox: its actor key and partition already computed. */
export interface Addressed {
  readonly key: string;
  readonly partition: number;
  readonly env: Envelope;
  /** Handed to the receiver early once stored, when this node works its partition (see Effect `send`). */
  readonly express?: true;
}

/** Where a published envelope landed: stream sequence, index within its pack (undefined: unpacked); `duplicate` when the stream had it already. */
export interface Stored {
  readonly seq: number;
  readonly idx: number | undefined;
  readonly duplicate: boolean;
}

export type Publish = (subject: string, data: Uint8Array, msgId: string, h?: MsgHdrs) => Promise<PubAck>;

/**
 * Puts envelopes in mailboxes, several per stream message where they share a partition.
 *
 * Packing is deterministic: the same list of envelopes always yields the same stream messages
 * with the same Nats-Msg-Id (an unpacked envelope keeps its own id; a pack's id is a hash of its
 * entries' keys and ids), so a replayed step or a retried call is dropped by the stream's
 * duplicate window. A different grouping of the same envelopes is not recognised as a duplicate.
 */
export class MailSender {
  constructor(
    private readonly prefix: string,
    private readonly partitions: number,
    private readonly publish: Publish,
    private readonly maxPayload = DEFAULT_MAX_PAYLOAD,
  ) {}

  address(to: ActorAddress, env: Envelope): Addressed {
    return { key: actorKey(to), partition: partitionOf(to, this.partitions), env };
  }

  envelope(item: Outgoing): Envelope {
    const i = item.msgId ?? nuid.next();
    return item.from ? { i, f: item.from, m: item.msg } : { i, m: item.msg };
  }

  /**
   * Publishes in list order (per partition, the stream keeps that order) and resolves once the
   * stream stored every message, with where each item landed (in list order).
   */
  async sendAll(items: readonly Addressed[]): Promise<Stored[]> {
    const groups = new Map<number, number[]>();
    items.forEach((a, i) => {
      const g = groups.get(a.partition);
      if (g) g.push(i);
      else groups.set(a.partition, [i]);
    });
    const stored = new Array<Stored>(items.length);
    const pubs: Promise<unknown>[] = [];
    for (const [p, group] of groups) {
      for (let i = 0; i < group.length; i += MAX_PACK_ENTRIES) this.publishGroup(p, items, group.slice(i, i + MAX_PACK_ENTRIES), stored, pubs);
    }
    await Promise.all(pubs);
    return stored;
  }

  /** Publishes items[at] for `at` of `group` as one stream message (split if too large), recording where each landed. */
  private publishGroup(p: number, items: readonly Addressed[], group: readonly number[], stored: Stored[], pubs: Promise<unknown>[]): void {
    if (group.length === 1) {
      const at = group[0]!;
      const a = items[at]!;
      pubs.push(this.publish(`${this.prefix}.mbox.${p}.${a.key}`, encode(a.env), a.env.i).then((ack) => {
        stored[at] = { seq: ack.seq, idx: undefined, duplicate: ack.duplicate === true };
      }));
      return;
    }
    const data = encode(group.map((at): PackEntry => [items[at]!.key, items[at]!.env]));
    // The headers count towards max_payload too: keep a margin for Nats-Msg-Id.
    if (data.length > this.maxPayload - 1024) {
      const half = Math.ceil(group.length / 2);
      this.publishGroup(p, items, group.slice(0, half), stored, pubs);
      this.publishGroup(p, items, group.slice(half), stored, pubs);
      return;
    }
    const h = createHash('sha256');
    for (const at of group) h.update(items[at]!.key).update('\u0000').update(items[at]!.env.i).update('\u0000');
    pubs.push(this.publish(`${this.prefix}.mbox.${p}.${PACK_TOKEN}`, data, `pack:${h.digest('base64url').slice(0, 32)}`).then((ack) => {
      group.forEach((at, idx) => (stored[at] = { seq: ack.seq, idx, duplicate: ack.duplicate === true }));
    }));
  }
}

/**
 * Sends to actors from a process that runs no runtime node (an API front end, a load
 * generator): the same mailboxes, envelopes and packing as `Runtime.send`/`sendMany`.
 */
export class MailboxClient {
  private readonly requester: Requester;
  private readonly sender: MailSender;

  /** `prefix` and `partitions` must be those of the runtime nodes (same defaults). */
  constructor(nc: NatsConnection, opts: { prefix?: string; partitions?: number; timeoutMs?: number } = {}) {
    this.requester = new Requester(nc, opts.timeoutMs ?? 10_000);
    this.sender = new MailSender(opts.prefix ?? DEFAULT_PREFIX, opts.partitions ?? DEFAULT_PARTITIONS, (subject, data, msgId) => {
      const h = headers();
      h.set('Nats-Msg-Id', msgId);
      return this.requester.publish(subject, data, h);
    }, nc.info?.max_payload);
  }

  /** One message; with a caller-given msgId, sending it again (within 2 minutes) stores it once. */
  send(to: ActorAddress, msg: unknown, opts: { msgId?: string | undefined; from?: ActorAddress | undefined } = {}): Promise<void> {
    return this.sendMany([{ to, msg, msgId: opts.msgId, from: opts.from }]);
  }

  /**
   * Several messages; those to actors of one partition travel packed in one stream message.
   * Per actor they are applied in list order. Retrying the same list (same msgIds) stores it
   * once; throws a KilnError (REQUEST_INVALID) before sending anything if an address is invalid.
   */
  async sendMany(items: readonly Outgoing[]): Promise<void> {
    await this.sender.sendAll(items.map((it) => this.sender.address(it.to, this.sender.envelope(it))));
  }

  close(): void {
    this.requester.close();
  }
}
