import { KilnError, createLogger, toKilnError, type Logger } from '@kiln/core';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Svcm, type Service, type ServiceMsg } from '@nats-io/services';
import type { StackBackend } from './backend.js';
import { contentTypeOf, decodeBody, encodeBody, encodingOf, type BodyEncoding } from './body.js';
import { OPERATIONS, checkBody, type Operation, type OperationContext } from './operations.js';
import { Quotas, type QuotaConfig } from './quotas.js';
import { RequestLog, REQUESTS_BUCKET } from './requests.js';
import { API_PREFIX, EVENTS_STREAM, checkTenant, parseApiSubject } from './subjects.js';

export const SERVICE_NAME = 'kiln-api';
export const SERVICE_VERSION = '1.0.0';

export interface ApiServiceOptions {
  /** A connection allowed to subscribe to `kiln.api.v1.>` and use JetStream (the engine's user). */
  nc: NatsConnection;
  backend: StackBackend;
  quotas?: QuotaConfig;
  /** Largest accepted request body; nats-server's max_payload (1 MiB by default) caps it anyway. */
  maxRequestBytes?: number;
  /** Deepest accepted nesting of a body. */
  maxDepth?: number;
  eventsStream?: string;
  /** Stream messages examined per events.list page at most. */
  maxEventScan?: number;
  requestBucket?: string;
  /** How long request ids are remembered. */
  requestTtlMs?: number;
  /** JetStream replicas of the request-id bucket (3 on a 3-node cluster). Default 1. */
  replicas?: number;
  /** Queue group shared by all API instances (load balancing). */
  queue?: string;
  logger?: Logger;
}

/** The reply envelope, in the caller's encoding. */
export type ApiReply = { ok: true; result: unknown } | { ok: false; error: ReturnType<KilnError['toJSON']> };

/**
 * The request API as a NATS micro service (`$SRV.PING|INFO|STATS.kiln-api` answer): one endpoint
 * per operation on `kiln.api.v1.*.<operation>`, where `*` is the tenant token the sender's
 * publish permissions allowed. Instances share a queue group, so any number may run.
 */
export class ApiService {
  private constructor(
    private readonly service: Service,
    private readonly log: Logger,
  ) {}

  static async start(o: ApiServiceOptions): Promise<ApiService> {
    const log = o.logger ?? createLogger('kiln-api');
    const js = jetstream(o.nc);
    const jsm = await jetstreamManager(o.nc);
    const requests = await RequestLog.open(o.nc, { bucket: o.requestBucket ?? REQUESTS_BUCKET, ttlMs: o.requestTtlMs, replicas: o.replicas });
    const quotas = new Quotas(o.quotas);
    const limits = { maxBytes: o.maxRequestBytes ?? 1024 * 1024, maxDepth: o.maxDepth ?? 64 };
    // The services library counts only errors thrown synchronously by a handler; ours are async,
    // so error replies are counted here (by endpoint subject and code) and shown in $SRV.STATS `data`.
    const errorCounts = new Map<string, Record<string, number>>();
    // @nats-io/services is built against a prerelease nats-core; the connection interface it uses is the same.
    const svcm = new Svcm(o.nc as unknown as ConstructorParameters<typeof Svcm>[0]);
    const service = await svcm.add({
      name: SERVICE_NAME,
      version: SERVICE_VERSION,
      description: 'Kiln request API v1',
      queue: o.queue ?? SERVICE_NAME,
      metadata: { api: API_PREFIX },
      statsHandler: async (endpoint) => ({ errors: errorCounts.get(endpoint.subject) ?? {} }),
    });
    const group = service.addGroup(`${API_PREFIX}.*`);
    for (const operation of OPERATIONS) {
      group.addEndpoint(operation.name.replaceAll('.', '-'), {
        subject: operation.name,
        metadata: { description: operation.description, idempotent: String(operation.idempotent) },
        handler: (err, msg) => {
          if (err) {
            log.error({ err, operation: operation.name }, 'endpoint subscription failed');
            return;
          }
          void handle(operation, msg);
        },
      });
    }

    async function handle(operation: Operation, msg: ServiceMsg): Promise<void> {
      // Replies go only to inboxes: a reply subject pointing at another API subject would make
      // the service publish on a tenant's behalf (confused deputy).
      if (!msg.reply || !msg.reply.startsWith('_INBOX')) {
        log.warn({ subject: msg.subject, reply: msg.reply, operation: operation.name }, 'request without an inbox reply subject dropped');
        return;
      }
      let enc: BodyEncoding = 'json';
      let tenant: string | undefined;
      try {
        enc = encodingOf(msg.headers?.get('Content-Type') || undefined);
        tenant = checkTenant(parseApiSubject(msg.subject)?.tenant ?? '', 'subject.tenant');
        quotas.takeRequest(tenant);
        const body = checkBody(operation, decodeBody(msg.data, enc, limits));
        const ctx: OperationContext = {
          tenant,
          backend: o.backend,
          quotas,
          js,
          jsm,
          eventsStream: o.eventsStream ?? EVENTS_STREAM,
          maxEventScan: o.maxEventScan ?? 10_000,
          maxReplyBytes: maxReply() - 4096,
        };
        const requestId = body.request_id as string | undefined;
        const result =
          operation.idempotent && requestId !== undefined
            ? await requests.run(`${tenant}.${operation.name.replaceAll('.', '_')}.${requestId}`, body, () => operation.run(ctx, body))
            : await operation.run(ctx, body);
        respond(msg, enc, { ok: true, result });
      } catch (e) {
        const err = toKilnError(e);
        if (err.status >= 500) log.error({ err, tenant, operation: operation.name }, 'request failed');
        const subject = `${API_PREFIX}.*.${operation.name}`;
        const counts = errorCounts.get(subject) ?? {};
        counts[err.code] = (counts[err.code] ?? 0) + 1;
        errorCounts.set(subject, counts);
        respond(msg, enc, { ok: false, error: err.toJSON() });
      }
    }

    /** The server's max_payload: no reply may be larger. */
    function maxReply(): number {
      return o.nc.info?.max_payload ?? 1024 * 1024;
    }

    function respond(msg: ServiceMsg, enc: BodyEncoding, reply: ApiReply): void {
      const h = headers();
      h.set('Content-Type', contentTypeOf(enc));
      // JSON round trip drops `undefined` fields so msgpack replies hold only portable types.
      let data = encodeBody(JSON.parse(JSON.stringify(reply)), enc);
      if (data.length > maxReply()) {
        const err = new KilnError('REQUEST_TOO_LARGE', `the reply would take ${data.length} bytes, more than the server's max_payload of ${maxReply()}: ask for a smaller page`, {
          path: 'body.limit',
        });
        reply = { ok: false, error: err.toJSON() };
        data = encodeBody(reply, enc);
      }
      // Headers built by our nats-core; the prerelease typings of @nats-io/services differ only nominally.
      const opts = { headers: h } as unknown as Parameters<ServiceMsg['respondError']>[3];
      if (reply.ok) msg.respond(data, opts);
      else msg.respondError(reply.error.status, reply.error.code, data, opts);
    }

    log.info({ operations: OPERATIONS.length }, 'kiln api service started');
    return new ApiService(service, log);
  }

  async stop(): Promise<void> {
    await this.service.stop();
    this.log.info('kiln api service stopped');
  }
}
