import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { KilnError, createLogger, toKilnError, type Logger } from '@kiln/core';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type ConsumerMessages, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import { createEventConsumer, jsMsgToEvent, matchesFilter, type EventFilter, type KilnEvent } from './events.js';
import { PAGE_HTML } from './page.js';
import { EVENTS_STREAM, apiSubject } from './subjects.js';
import { arrayOf, check, int, json, mapOf, obj, oneOf, required, str } from './schema.js';

export interface GatewayOptions {
  /** NATS server URL(s). */
  servers: string | string[];
  /** The gateway's own NATS user (deploy/tenants: `gateway`). */
  user?: string | undefined;
  pass?: string | undefined;
  /** HTTP port; 0 picks a free one. */
  port?: number;
  host?: string;
  /** Web-socket tokens, each naming the tenant it authenticates. */
  tokens: Record<string, string>;
  eventsStream?: string;
  /** Interval of heartbeat messages and of the ping that detects dead peers. */
  heartbeatMs?: number;
  /** A client whose unsent data exceeds this is dropped (it resumes from its last sequence). */
  maxBufferedBytes?: number;
  /** A connection that has not authenticated within this time is closed. */
  authTimeoutMs?: number;
  /** Timeout of API requests forwarded for a client. */
  requestTimeoutMs?: number;
  logger?: Logger;
}

/** Close codes a client can branch on (4000-4999 are application codes). */
export const CLOSE = {
  UNAUTHORIZED: 4001,
  /** The client read too slowly: resume with `from_seq` from the reason. */
  SLOW: 4008,
  /** The events consumer was lost (NATS restart, stream change): resume with `from_seq`. */
  INTERRUPTED: 4011,
  GOING_AWAY: 1001,
} as const;

/** API operations a dashboard may call through the socket: reads only, so a leaked read token cannot change stacks. */
export const GATEWAY_OPERATIONS = ['stack.show', 'stack.list', 'stack.outputs', 'resource.list', 'resource.show', 'events.list'] as const;

const filterSchema = obj({
  stack: str({ minLength: 1 }),
  resource: str({ minLength: 1 }),
  type: str(),
  status: oneOf('a status or a list of statuses', str(), arrayOf(str(), 32)),
});

const messageSchema = {
  auth: obj({ type: required(str()), token: required(str()) }),
  subscribe: obj({
    type: required(str()),
    filter: filterSchema,
    from_seq: int({ min: 1 }),
    from_time: str({ pattern: /^\d{4}-\d\d-\d\dT/ }),
  }),
  unsubscribe: obj({ type: required(str()) }),
  request: obj({ type: required(str()), id: required(oneOf('a string or number', str(), int())), op: required(str({ enum: GATEWAY_OPERATIONS })), body: mapOf(json) }),
  ping: obj({ type: required(str()) }),
};

interface Subscription {
  messages: ConsumerMessages;
  consumer: string;
  /** Sequence of the last event passed to the socket (or examined, when filtered out). */
  lastSeq: number;
}

interface Client {
  ws: WebSocket;
  tenant?: string | undefined;
  sub?: Subscription | undefined;
  /** Heartbeat pings not answered yet. */
  missedPongs: number;
  /** Messages of one socket are handled one after the other (a subscribe never races another). */
  inbox: Promise<void>;
  closing: boolean;
}

export interface GatewayStats {
  clients: number;
  subscriptions: number;
  eventsSent: number;
  droppedSlow: number;
}

/**
 * The web-socket event gateway. Each subscription gets its own ephemeral, ack-less pull
 * consumer filtered to the tenant (and stack/resource) subject: the server does the filtering,
 * a slow client only stops pulling its own consumer (the engine's publishing never waits for a
 * reader), and resuming is just a new consumer from `from_seq`. See docs/api.md.
 */
export class Gateway {
  private readonly clients = new Set<Client>();
  private readonly counters = { eventsSent: 0, droppedSlow: 0 };
  private heartbeat: NodeJS.Timeout | undefined;

  private constructor(
    private readonly o: Required<Pick<GatewayOptions, 'heartbeatMs' | 'maxBufferedBytes' | 'authTimeoutMs' | 'requestTimeoutMs' | 'eventsStream'>> & GatewayOptions,
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly http: Server,
    private readonly wss: WebSocketServer,
    private readonly log: Logger,
  ) {}

  static async start(opts: GatewayOptions): Promise<Gateway> {
    const o = {
      heartbeatMs: 15_000,
      maxBufferedBytes: 1024 * 1024,
      authTimeoutMs: 5_000,
      requestTimeoutMs: 10_000,
      eventsStream: EVENTS_STREAM,
      ...opts,
    };
    const log = opts.logger ?? createLogger('kiln-gateway');
    const nc = await connect({ servers: o.servers, user: o.user, pass: o.pass, name: 'kiln-gateway' });
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const http = createServer();
    const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
    const gw = new Gateway(o, nc, js, jsm, http, wss, log);
    http.on('request', (req, res) => gw.onHttp(req, res));
    http.on('upgrade', (req, socket, head) => gw.onUpgrade(req, socket, head));
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => resolve());
    });
    gw.heartbeat = setInterval(() => gw.beat(), o.heartbeatMs);
    log.info({ url: gw.url }, 'kiln gateway listening');
    return gw;
  }

  get port(): number {
    return (this.http.address() as AddressInfo).port;
  }

  /** Base HTTP URL (the page is at `/`, the socket at `/events`). */
  get url(): string {
    const a = this.http.address() as AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${a.port}`;
  }

  stats(): GatewayStats {
    let subscriptions = 0;
    for (const c of this.clients) if (c.sub) subscriptions++;
    return { clients: this.clients.size, subscriptions, ...this.counters };
  }

  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    for (const c of this.clients) {
      await this.unsubscribe(c);
      c.ws.close(CLOSE.GOING_AWAY, 'gateway shutting down');
    }
    await new Promise<void>((r) => this.wss.close(() => r()));
    this.http.closeAllConnections();
    await new Promise<void>((r) => this.http.close(() => r()));
    await this.nc.close();
    this.log.info('kiln gateway stopped');
  }

  private onHttp(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (req.method === 'GET' && (path === '/' || path === '/index.html')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(PAGE_HTML);
    } else if (req.method === 'GET' && path === '/healthz') {
      const ok = !this.nc.isClosed();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok, ...this.stats() }));
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
    }
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/events') {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, url.searchParams.get('token') ?? undefined));
  }

  private onConnection(ws: WebSocket, token: string | undefined): void {
    const c: Client = { ws, missedPongs: 0, inbox: Promise.resolve(), closing: false };
    this.clients.add(c);
    ws.on('pong', () => (c.missedPongs = 0));
    ws.on('close', () => {
      this.clients.delete(c);
      void this.unsubscribe(c);
    });
    ws.on('error', (e) => this.log.debug({ err: e }, 'socket error'));
    ws.on('message', (data, isBinary) => {
      c.inbox = c.inbox.then(() => this.onMessage(c, data, isBinary)).catch((e: unknown) => this.log.error({ err: e }, 'socket message failed'));
    });
    if (token !== undefined) this.authenticate(c, token);
    else {
      const t = setTimeout(() => c.tenant === undefined && this.close(c, CLOSE.UNAUTHORIZED, 'authentication timeout'), this.o.authTimeoutMs);
      ws.once('close', () => clearTimeout(t));
    }
  }

  private authenticate(c: Client, token: string): void {
    // Own-property lookup: a token like "__proto__" must not match anything.
    const tenant = Object.prototype.hasOwnProperty.call(this.o.tokens, token) ? this.o.tokens[token] : undefined;
    if (tenant === undefined) {
      this.close(c, CLOSE.UNAUTHORIZED, 'invalid token');
      return;
    }
    c.tenant = tenant;
    this.send(c, { type: 'welcome', tenant, heartbeat_ms: this.o.heartbeatMs });
  }

  private async onMessage(c: Client, data: RawData, isBinary: boolean): Promise<void> {
    let msg: Record<string, unknown>;
    try {
      if (isBinary) throw new KilnError('REQUEST_INVALID', 'messages are JSON text frames', { path: 'message' });
      const parsed: unknown = JSON.parse(data.toString());
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new KilnError('REQUEST_INVALID', 'expected a JSON object', { path: 'message' });
      msg = parsed as Record<string, unknown>;
    } catch (e) {
      this.sendError(c, undefined, e instanceof KilnError ? e : new KilnError('REQUEST_INVALID', 'message is not valid JSON', { path: 'message' }));
      return;
    }
    const type = msg.type;
    if (c.tenant === undefined) {
      if (type !== 'auth') return this.close(c, CLOSE.UNAUTHORIZED, 'authenticate first');
      try {
        check(messageSchema.auth, msg, 'message');
      } catch {
        return this.close(c, CLOSE.UNAUTHORIZED, 'invalid auth message');
      }
      return this.authenticate(c, msg.token as string);
    }
    try {
      switch (type) {
        case 'subscribe':
          check(messageSchema.subscribe, msg, 'message');
          await this.subscribe(c, msg);
          return;
        case 'unsubscribe':
          check(messageSchema.unsubscribe, msg, 'message');
          await this.unsubscribe(c);
          this.send(c, { type: 'unsubscribed' });
          return;
        case 'request':
          check(messageSchema.request, msg, 'message');
          await this.forward(c, msg);
          return;
        case 'ping':
          this.send(c, { type: 'pong', time: new Date().toISOString() });
          return;
        default:
          throw new KilnError('REQUEST_INVALID', `unknown message type '${String(type)}'`, { path: 'message.type' });
      }
    } catch (e) {
      this.sendError(c, msg.id, toKilnError(e));
    }
  }

  /** One subscription per connection; a new subscribe replaces the previous one. */
  private async subscribe(c: Client, msg: Record<string, unknown>): Promise<void> {
    await this.unsubscribe(c);
    const f = (msg.filter ?? {}) as { stack?: string; resource?: string; type?: string; status?: string | string[] };
    if (f.resource !== undefined && f.stack === undefined) throw new KilnError('REQUEST_INVALID', 'a resource filter needs a stack', { path: 'message.filter.resource' });
    const filter: EventFilter = { stack: f.stack, resource: f.resource, type: f.type, status: f.status === undefined ? undefined : [f.status].flat() };
    const created = await createEventConsumer(this.jsm, {
      stream: this.o.eventsStream,
      tenant: c.tenant!,
      filter,
      sinceSeq: msg.from_seq as number | undefined,
      sinceTime: msg.from_time as string | undefined,
    });
    const consumer = await this.js.consumers.get(this.o.eventsStream, created.name);
    // A small pull window: the server keeps the backlog, this process holds at most 256 events per client.
    // A lost consumer (deleted, NATS restarted without it) ends the iteration instead of waiting
    // for it to come back: the client is told to resume (4011) and gets a fresh one.
    const messages = await consumer.consume({ max_messages: 256, abort_on_missing_resource: true });
    if (c.closing || c.ws.readyState !== c.ws.OPEN) {
      await messages.close();
      await this.jsm.consumers.delete(this.o.eventsStream, created.name).catch(() => undefined);
      return;
    }
    const sub: Subscription = { messages, consumer: created.name, lastSeq: created.lastSeq };
    c.sub = sub;
    this.send(c, { type: 'subscribed', filter: msg.filter ?? {}, from_seq: created.lastSeq + 1, replay: created.pending });
    if (created.pending === 0) this.send(c, { type: 'caught_up', seq: sub.lastSeq });
    void this.pump(c, sub, created.pending > 0, filter);
  }

  private async pump(c: Client, sub: Subscription, replaying: boolean, filter: EventFilter): Promise<void> {
    let slow = false;
    try {
      for await (const m of sub.messages) {
        if (c.sub !== sub) break;
        const ev: KilnEvent | undefined = jsMsgToEvent(m);
        sub.lastSeq = m.seq;
        if (ev && ev.tenant === c.tenant && matchesFilter(ev, filter)) {
          this.send(c, { type: 'event', event: ev });
          this.counters.eventsSent++;
        }
        if (replaying && m.info.pending === 0) {
          replaying = false;
          this.send(c, { type: 'caught_up', seq: m.seq });
        }
        if (c.ws.bufferedAmount > this.o.maxBufferedBytes) {
          slow = true;
          break; // leaving the loop stops the consumer; closing it from inside would wait on ourselves
        }
      }
    } catch (e) {
      this.log.warn({ err: e, tenant: c.tenant }, 'events consumer failed');
    }
    if (c.sub !== sub || c.closing) return;
    if (slow) {
      this.counters.droppedSlow++;
      this.log.warn({ tenant: c.tenant, buffered: c.ws.bufferedAmount, seq: sub.lastSeq }, 'slow client dropped');
      this.close(c, CLOSE.SLOW, `slow client: resume with from_seq=${sub.lastSeq + 1}`);
    } else {
      this.close(c, CLOSE.INTERRUPTED, `events interrupted: resume with from_seq=${sub.lastSeq + 1}`);
    }
    await this.unsubscribe(c);
  }

  private async unsubscribe(c: Client): Promise<void> {
    const sub = c.sub;
    if (!sub) return;
    c.sub = undefined;
    await sub.messages.close().catch(() => undefined);
    await this.jsm.consumers.delete(this.o.eventsStream, sub.consumer).catch(() => undefined);
  }

  /** Forwards a read-only API call for the client's tenant; the API checks the tenant again. */
  private async forward(c: Client, msg: Record<string, unknown>): Promise<void> {
    const reply = await this.nc.request(apiSubject(c.tenant!, msg.op as string), JSON.stringify(msg.body ?? {}), { timeout: this.o.requestTimeoutMs });
    this.send(c, { type: 'reply', id: msg.id, ...(JSON.parse(reply.string()) as Record<string, unknown>) });
  }

  private beat(): void {
    const time = new Date().toISOString();
    for (const c of this.clients) {
      // A peer with nothing buffered that misses two pings is gone. One with data still buffered
      // is slow rather than dead: the buffer limit decides about it, or many missed pings.
      if (c.missedPongs >= (c.ws.bufferedAmount === 0 ? 2 : 20)) {
        c.ws.terminate();
        continue;
      }
      c.missedPongs++;
      c.ws.ping();
      if (c.tenant !== undefined) this.send(c, { type: 'heartbeat', time, seq: c.sub?.lastSeq });
    }
  }

  private send(c: Client, m: Record<string, unknown>): void {
    if (c.ws.readyState === c.ws.OPEN && !c.closing) c.ws.send(JSON.stringify(m));
  }

  private sendError(c: Client, id: unknown, e: KilnError): void {
    this.send(c, { type: 'error', ...(id === undefined ? {} : { id }), error: e.toJSON() });
  }

  private close(c: Client, code: number, reason: string): void {
    if (c.closing) return;
    c.closing = true;
    c.ws.close(code, reason);
    // A client that never reads will not answer the close handshake: free its buffer anyway.
    setTimeout(() => c.ws.terminate(), 10_000).unref();
  }
}

function parseTokens(spec: string): Record<string, string> {
  const s = spec.trim();
  if (s.startsWith('{')) return JSON.parse(s) as Record<string, string>;
  return Object.fromEntries(
    s
      .split(',')
      .filter(Boolean)
      .map((pair) => {
        const i = pair.indexOf('=');
        if (i <= 0) throw new KilnError('REQUEST_INVALID', `token spec '${pair}' is not TOKEN=TENANT`, { path: 'tokens' });
        return [pair.slice(0, i), pair.slice(i + 1)];
      }),
  );
}

const USAGE = `usage: kiln gateway [--nats URL] [--nats-user USER --nats-password PASS] [--host HOST] [--port PORT]
                    [--token TOKEN=TENANT]... [--tokens-file FILE.json]
Environment: KILN_NATS_URL, KILN_NATS_USER, KILN_NATS_PASSWORD, KILN_GATEWAY_TOKENS (TOKEN=TENANT,... or JSON)`;

/** Options of `kiln gateway` from its arguments and environment. */
export function parseGatewayArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): GatewayOptions {
  const o: GatewayOptions = {
    servers: env.KILN_NATS_URL ?? 'nats://127.0.0.1:4222',
    user: env.KILN_NATS_USER,
    pass: env.KILN_NATS_PASSWORD,
    port: 8080,
    host: '127.0.0.1',
    tokens: env.KILN_GATEWAY_TOKENS ? parseTokens(env.KILN_GATEWAY_TOKENS) : {},
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new KilnError('REQUEST_INVALID', `${a} needs a value\n${USAGE}`, { path: a });
      return v;
    };
    switch (a) {
      case '--nats': o.servers = value().split(','); break;
      case '--nats-user': o.user = value(); break;
      case '--nats-password': o.pass = value(); break;
      case '--host': o.host = value(); break;
      case '--port': o.port = Number(value()); break;
      case '--token': Object.assign(o.tokens, parseTokens(value())); break;
      case '--tokens-file': Object.assign(o.tokens, parseTokens(readFileSync(value(), 'utf8'))); break;
      case '--heartbeat-ms': o.heartbeatMs = Number(value()); break;
      default: throw new KilnError('REQUEST_INVALID', `unknown argument '${a}'\n${USAGE}`, { path: a });
    }
  }
  if (!Number.isInteger(o.port) || o.port! < 0 || o.port! > 65535) throw new KilnError('REQUEST_INVALID', 'port must be 0..65535', { path: '--port' });
  if (Object.keys(o.tokens).length === 0) throw new KilnError('REQUEST_INVALID', `no tokens configured: nobody could connect\n${USAGE}`, { path: '--token' });
  return o;
}

/**
 * `kiln gateway`: starts a gateway and stops it on SIGINT/SIGTERM. Resolves with the running
 * gateway (the CLI prints its URL); `stopped` settles when a signal has stopped it.
 */
export async function main(argv: string[]): Promise<{ gateway: Gateway; stopped: Promise<void> }> {
  const gateway = await Gateway.start(parseGatewayArgs(argv));
  process.stdout.write(`kiln gateway: ${gateway.url}/ (web socket ${gateway.url.replace(/^http/, 'ws')}/events)\n`);
  const stopped = new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void gateway.stop().then(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return { gateway, stopped };
}
