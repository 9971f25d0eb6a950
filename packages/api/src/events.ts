import { KilnError, decode } from '@kiln/core';
import { AckPolicy, DeliverPolicy, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { nuid } from '@nats-io/transport-node';
import { EVENTS_STREAM, eventFilter, parseEventSubject } from './subjects.js';

/**
 * An event as clients see it. Tenant, stack and resource come from the subject (authoritative:
 * a tenant's filter is a subject prefix), the rest from the payload the engine emitted.
 */
export interface KilnEvent {
  /** Stream sequence: the resume point. Strictly increasing within one stream. */
  seq: number;
  time: string;
  tenant: string;
  stack: string;
  stack_name?: string;
  /** Absent for events about the stack itself. */
  resource?: string;
  resource_type?: string;
  physical_id?: string;
  generation?: number;
  status: string;
  reason?: string;
}

export interface EventFilter {
  stack?: string | undefined;
  resource?: string | undefined;
  /** Resource type, e.g. `OS::Nova::Server` (stack events have type `OS::Heat::Stack`). */
  type?: string | undefined;
  status?: string[] | undefined;
}

function pick(o: Record<string, unknown>, ...keys: string[]): unknown {
  for (const k of keys) if (o[k] !== undefined && o[k] !== null) return o[k];
  return undefined;
}

function decodePayload(data: Uint8Array): Record<string, unknown> {
  // Engine events are msgpack (core codec); a JSON object (0x7b '{') is accepted for other emitters.
  try {
    const v = data[0] === 0x7b ? JSON.parse(new TextDecoder().decode(data)) : decode(data);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** Heat's combined status (`CREATE_COMPLETE`) from either one field or an action/status pair. */
function statusOf(p: Record<string, unknown>): string {
  const status = pick(p, 'status');
  const action = pick(p, 'action');
  if (typeof status !== 'string') return 'UNKNOWN';
  return typeof action === 'string' && !status.startsWith(`${action}_`) ? `${action}_${status}` : status;
}

/** Turns a stream message into a KilnEvent; undefined when its subject is not an event subject. */
export function toEvent(subject: string, seq: number, storedAt: Date, data: Uint8Array): KilnEvent | undefined {
  const where = parseEventSubject(subject);
  if (!where) return undefined;
  const p = decodePayload(data);
  const at = pick(p, 'timestamp', 'time', 'at', 'ts');
  const time = typeof at === 'number' ? new Date(at) : typeof at === 'string' && !Number.isNaN(Date.parse(at)) ? new Date(at) : storedAt;
  const ev: KilnEvent = { seq, time: time.toISOString(), tenant: where.tenant, stack: where.stackId, status: statusOf(p) };
  const stackName = pick(p, 'stack_name', 'stackName');
  if (typeof stackName === 'string') ev.stack_name = stackName;
  if (where.resource !== undefined) ev.resource = where.resource;
  const type = pick(p, 'resource_type', 'resourceType', 'type');
  if (typeof type === 'string') ev.resource_type = type;
  else if (where.resource === undefined) ev.resource_type = 'OS::Heat::Stack';
  const physical = pick(p, 'physical_id', 'physicalId');
  if (typeof physical === 'string') ev.physical_id = physical;
  const generation = pick(p, 'generation', 'gen');
  if (typeof generation === 'number') ev.generation = generation;
  const reason = pick(p, 'reason', 'status_reason', 'statusReason');
  if (typeof reason === 'string') ev.reason = reason;
  return ev;
}

export function jsMsgToEvent(m: JsMsg): KilnEvent | undefined {
  return toEvent(m.subject, m.seq, m.time, m.data);
}

/** Filters the subject cannot express (type, status); stack/resource are already in the subject filter. */
export function matchesFilter(ev: KilnEvent, f: EventFilter): boolean {
  if (f.stack !== undefined && ev.stack !== f.stack) return false;
  if (f.resource !== undefined && ev.resource !== f.resource) return false;
  if (f.type !== undefined && ev.resource_type !== f.type) return false;
  if (f.status !== undefined && f.status.length > 0 && !f.status.includes(ev.status)) return false;
  return true;
}

export interface StartPoint {
  /** First stream sequence to deliver. */
  sinceSeq?: number | undefined;
  /** Or the first event stored at or after this time. */
  sinceTime?: string | undefined;
}

export interface EventConsumerOptions extends StartPoint {
  tenant: string;
  filter: EventFilter;
  stream?: string | undefined;
  /** Server-side idle cleanup of the consumer if this process dies. */
  inactiveMs?: number | undefined;
  /** Push the events to this subject (a push consumer) instead of waiting for pulls. */
  deliverSubject?: string | undefined;
  /** Idle heartbeats of a push consumer, so its receiver can tell silence from loss. */
  idleHeartbeatMs?: number | undefined;
}

/**
 * Creates an ephemeral, ack-less consumer (pull, or push to `deliverSubject`) over the tenant's
 * part of the events stream.
 * Tenancy is enforced here: the subject filter always starts with the caller's tenant.
 * Returns its name and how many events matched the subject filter when it was created.
 */
export async function createEventConsumer(jsm: JetStreamManager, o: EventConsumerOptions): Promise<{ name: string; pending: number; lastSeq: number }> {
  const name = `kiln_ev_${nuid.next()}`;
  const policy =
    o.sinceSeq !== undefined
      ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: Math.max(1, o.sinceSeq) }
      : o.sinceTime !== undefined
        ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(o.sinceTime).toISOString() }
        : { deliver_policy: DeliverPolicy.New };
  try {
    const info = await jsm.consumers.add(o.stream ?? EVENTS_STREAM, {
      name,
      ack_policy: AckPolicy.None,
      filter_subject: eventFilter(o.tenant, o.filter.stack, o.filter.resource),
      inactive_threshold: (o.inactiveMs ?? 30_000) * 1_000_000,
      mem_storage: true,
      ...policy,
      ...(o.deliverSubject === undefined ? {} : { deliver_subject: o.deliverSubject, idle_heartbeat: (o.idleHeartbeatMs ?? 5_000) * 1_000_000 }),
    });
    return { name, pending: info.num_pending, lastSeq: info.delivered.stream_seq };
  } catch (e) {
    throw new KilnError('UNAVAILABLE', `events stream unavailable: ${(e as Error).message}`, { cause: e });
  }
}

export interface EventsPage {
  events: KilnEvent[];
  /** Sequence to pass as `since_seq` for the next page (one past the last event examined). */
  next_seq: number;
  /** True when events after next_seq may exist (the page or the scan budget was filled). */
  more: boolean;
}

/**
 * One page of a tenant's events from `since` on, matching the filter. At most `maxScan` stream
 * messages are examined and about `maxBytes` of events returned per page, so a selective filter
 * over a long history stays bounded and the reply fits in a NATS message; the caller continues
 * from `next_seq`.
 */
export async function readEventsPage(
  js: JetStreamClient,
  jsm: JetStreamManager,
  o: EventConsumerOptions & { limit: number; maxScan: number; maxBytes: number },
): Promise<EventsPage> {
  const stream = o.stream ?? EVENTS_STREAM;
  const { name, pending, lastSeq } = await createEventConsumer(jsm, { ...o, sinceSeq: o.sinceSeq ?? (o.sinceTime === undefined ? 1 : undefined) });
  const events: KilnEvent[] = [];
  let nextSeq = lastSeq + 1;
  let scanned = 0;
  let bytes = 0;
  let full = false;
  try {
    const consumer = await js.consumers.get(stream, name);
    while (!full && scanned < pending && scanned < o.maxScan && events.length < o.limit) {
      const batch = Math.min(pending - scanned, o.maxScan - scanned, 256);
      const msgs = await consumer.fetch({ max_messages: batch, expires: 5_000 });
      let got = 0;
      for await (const m of msgs) {
        got++;
        const ev = jsMsgToEvent(m);
        if (ev && matchesFilter(ev, o.filter)) {
          // The reply must fit in one NATS message: a page ends before the event that would overflow it.
          const size = JSON.stringify(ev).length + 1;
          if (bytes + size > o.maxBytes && events.length > 0) {
            full = true;
            break;
          }
          bytes += size;
          events.push(ev);
        }
        scanned++;
        nextSeq = m.seq + 1;
        if (events.length >= o.limit) break;
      }
      if (got === 0) break;
    }
  } finally {
    await jsm.consumers.delete(stream, name).catch(() => undefined);
  }
  return { events, next_seq: nextSeq, more: full || scanned < pending };
}

/**
 * An event pushed by an `events.subscribe` consumer, from the raw NATS message; undefined for the
 * consumer's idle heartbeats. The stream sequence, the consumer sequence (contiguous per
 * subscription: a jump means messages were lost) and the time come from the JetStream reply
 * subject (`$JS.ACK.<stream>.<consumer>.<delivered>.<streamSeq>.<consumerSeq>.<nanos>.<pending>`,
 * with a domain and account hash inserted after `ACK` on newer servers).
 */
export function pushedEvent(msg: { subject: string; reply?: string | undefined; data: Uint8Array }): { event: KilnEvent; consumerSeq: number } | undefined {
  const tokens = msg.reply?.split('.') ?? [];
  if (tokens[0] !== '$JS' || tokens[1] !== 'ACK') return undefined;
  const tail = tokens.length >= 12 ? tokens.slice(4) : tokens.slice(2);
  const seq = Number(tail[3]);
  const consumerSeq = Number(tail[4]);
  const nanos = tail[5];
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(consumerSeq) || nanos === undefined || !/^\d+$/.test(nanos)) return undefined;
  const event = toEvent(msg.subject, seq, new Date(Number(BigInt(nanos) / 1_000_000n)), msg.data);
  return event && { event, consumerSeq };
}
