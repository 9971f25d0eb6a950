import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, KilnError, type Logger } from '@kiln/core';
import { validateFaults, validateLatency, validateQuotas, validateRateLimits, type Faults, type Kind, type LatencyConfig, type QuotaConfig, type RateLimitConfig } from './config.js';
import { FLAVORS, IMAGES, KIND_API, type Service } from './kinds.js';
import { ApiError, CloudModel, type FeedEvent } from './model.js';
import type { FsyncPolicy } from './wal.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Doc = Record<string, any>;

export interface SimCloudOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
  /** Where state lives; a temporary directory (removed on stop) when absent. */
  stateDir?: string;
  seed?: string | number;
  latency?: LatencyConfig;
  faults?: Partial<Faults>;
  quotas?: QuotaConfig;
  rateLimits?: RateLimitConfig;
  fsync?: FsyncPolicy;
  /** How many change events are kept for `/events?since=` catch-up (default 20000). */
  eventBuffer?: number;
  /** Keep-alive comment (`: ping`) interval on the SSE stream, ms (default 15 000). */
  keepAliveMs?: number;
  logger?: Logger;
}

interface Reply {
  status: number;
  body?: unknown;
  /** The body already serialised (instead of `body`). */
  json?: string;
  headers?: Record<string, string>;
}

const MAX_BODY = 1 << 20;
const NETWORK_COLLECTIONS: Record<string, Kind> = {
  networks: 'network',
  subnets: 'subnet',
  ports: 'port',
  routers: 'router',
  floatingips: 'floatingip',
  'security-groups': 'security_group',
};
const LB_COLLECTIONS: Record<string, Kind> = {
  loadbalancers: 'loadbalancer',
  listeners: 'listener',
  pools: 'pool',
  healthmonitors: 'healthmonitor',
};

/** The simulated cloud as an HTTP service (see docs/sim-cloud.md for the API). */
export class SimCloud {
  private readonly streams = new Set<ServerResponse>();
  private readonly replies: { res: ServerResponse; status: number; payload: string; headers: Record<string, string> | undefined }[] = [];
  private repliesQueued = false;

  private constructor(
    private readonly server: Server,
    readonly model: CloudModel,
    readonly url: string,
    readonly stateDir: string,
    private readonly ownsStateDir: boolean,
    private readonly log: Logger,
    private readonly keepAliveMs: number,
  ) {}

  static async start(opts: SimCloudOptions = {}): Promise<SimCloud> {
    const log = opts.logger ?? createLogger('sim-cloud');
    const ownsStateDir = opts.stateDir === undefined;
    const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), 'kiln-sim-cloud-'));
    const modelOpts: ConstructorParameters<typeof CloudModel>[0] = { stateDir, logger: log };
    if (opts.fsync) modelOpts.fsync = opts.fsync;
    if (opts.seed !== undefined) modelOpts.seed = opts.seed;
    if (opts.faults) modelOpts.faults = validateFaults(opts.faults);
    if (opts.latency) modelOpts.latency = validateLatency(opts.latency);
    if (opts.quotas) modelOpts.quotas = validateQuotas(opts.quotas);
    if (opts.rateLimits) modelOpts.rateLimits = validateRateLimits(opts.rateLimits);
    if (opts.eventBuffer) modelOpts.eventBuffer = opts.eventBuffer;
    const model = new CloudModel(modelOpts);
    const server = createServer({ keepAliveTimeout: 30_000 });
    const host = opts.host ?? '127.0.0.1';
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.port ?? 0, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      model.close();
      throw new KilnError('UNAVAILABLE', `sim-cloud cannot listen on ${host}:${opts.port ?? 0}: ${(e as Error).message}`, { cause: e });
    }
    const port = (server.address() as AddressInfo).port;
    const sim = new SimCloud(server, model, `http://${host.includes(':') ? `[${host}]` : host}:${port}`, stateDir, ownsStateDir, log, opts.keepAliveMs ?? 15_000);
    server.on('request', (req, res) => void sim.handle(req, res));
    log.info({ url: sim.url, stateDir }, 'sim-cloud listening');
    return sim;
  }

  async stop(): Promise<void> {
    for (const s of this.streams) s.end();
    this.streams.clear();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    this.model.close();
    if (this.ownsStateDir) rmSync(this.stateDir, { recursive: true, force: true });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://sim');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    let tenant = String(req.headers['x-project-id'] ?? '') || 'demo';
    let service: Service | 'control' = 'control';
    try {
      // Most calls (GET, DELETE) have no body: no stream to read, no await.
      const raw = req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined ? '' : await readBody(req);
      if (path === '/events') return this.events(req, res, url);
      const control = this.control(method, path, url, raw);
      if (control) return this.send(res, control);
      // Cinder puts the project in the path (/volume/v3/{project_id}/volumes); accept both forms.
      const segs = path.split('/').filter(Boolean);
      if (segs[0] === 'volume' && segs[1] === 'v3' && segs[2] !== undefined && segs[2] !== 'volumes') {
        tenant = segs[2];
        segs.splice(2, 1);
      }
      const route = this.route(method, segs, url, tenant, req);
      if (!route) throw new ApiError(404, 'NotFound', `The resource could not be found: ${method} ${path}`);
      service = route.service;
      const admission = this.model.admit(tenant, route.stat);
      if (admission.delayMs > 0) await new Promise((r) => setTimeout(r, admission.delayMs));
      if (admission.refuse) throw admission.refuse;
      const body = raw === '' ? {} : parseJson(raw);
      this.send(res, route.run(body), service);
    } catch (e) {
      this.sendError(res, e, service);
    }
  }

  /**
   * Queues an answer; the queue goes out once per event-loop turn, after the changes of every
   * call handled in that turn are written to the log with one write(2) and told to the followers
   * (one write per follower). So an acknowledged change is on its way to disk before its answer.
   */
  private send(res: ServerResponse, r: Reply, service?: Service): void {
    if (service) this.model.countResponse(r.status);
    const payload = r.json ?? (r.body === undefined ? '' : JSON.stringify(r.body));
    this.replies.push({ res, status: r.status, payload, headers: r.headers });
    if (!this.repliesQueued) {
      this.repliesQueued = true;
      setImmediate(this.sendReplies);
    }
  }

  private readonly sendReplies = (): void => {
    this.repliesQueued = false;
    // Followers told here may answer long polls, which join this round.
    this.model.flush();
    for (const { res, status, payload, headers } of this.replies) {
      const head: Record<string, string | number> = { 'content-length': Buffer.byteLength(payload), ...headers };
      if (payload) head['content-type'] = 'application/json';
      res.writeHead(status, head);
      res.end(payload);
    }
    this.replies.length = 0;
  };

  private sendError(res: ServerResponse, e: unknown, service: Service | 'control'): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    let status: number;
    let type: string;
    let message: string;
    const headers: Record<string, string> = {};
    if (e instanceof ApiError) {
      ({ status, type, message } = e);
      if (e.retryAfterSeconds !== undefined) headers['retry-after'] = String(e.retryAfterSeconds);
    } else if (e instanceof KilnError) {
      status = e.status;
      type = e.code;
      message = e.message;
    } else {
      this.log.error({ err: e }, 'sim-cloud request failed');
      status = 500;
      type = 'InternalError';
      message = (e as Error)?.message ?? String(e);
    }
    if (service !== 'control') this.model.countResponse(status);
    this.send(res, { status, body: errorBody(service, status, type, message, e instanceof KilnError ? e.path : undefined), headers });
  }

  // ---- cloud API routing ------------------------------------------------------------------

  private route(method: string, segs: string[], url: URL, tenant: string, req: IncomingMessage): { service: Service; stat: string; run: (body: Doc) => Reply } | undefined {
    const m = this.model;
    const key = String(req.headers['x-idempotency-key'] ?? '') || undefined;
    const [s0, s1, coll, id, sub, subId, extra] = segs;
    const collection = (kind: Kind, rest: (string | undefined)[], parent?: string) => this.collection(kind, method, rest, url, tenant, key, parent);
    // An action that happened may still be answered with a 5xx (fault `apiErrorAfterActionShare`).
    const afterAction = (reply: Reply): Reply => {
      const fail = m.failAfter('action');
      if (fail) throw fail;
      return reply;
    };

    if (s0 === 'compute' && s1 === 'v2.1') {
      if (coll === 'flavors' && method === 'GET') {
        if (id === undefined || id === 'detail') return { service: 'compute', stat: 'flavor.list', run: () => ({ status: 200, body: { flavors: FLAVORS.map((f) => ({ ...f, 'OS-FLV-EXT-DATA:ephemeral': 0, swap: '', 'os-flavor-access:is_public': true })) } }) };
        return { service: 'compute', stat: 'flavor.get', run: () => ({ status: 200, body: { flavor: findStatic(FLAVORS, id, 'Flavor') } }) };
      }
      if (coll === 'images' && method === 'GET') return imageRoute('compute', id);
      if (coll !== 'servers') return undefined;
      if (id === 'detail') return collection('server', []);
      if (sub === undefined) return collection('server', [id]);
      const sid = id!;
      if (sub === 'action' && method === 'POST' && subId === undefined) {
        return { service: 'compute', stat: 'server.action', run: (b) => (m.serverAction(tenant, sid, b), { status: 202 }) };
      }
      if (sub === 'metadata') return this.metadataRoute('server', sid, subId, method, tenant);
      if (sub === 'tags') return this.tagsRoute('server', sid, subId, method, tenant);
      if (sub === 'os-interface') {
        if (subId === undefined && method === 'GET') return { service: 'compute', stat: 'server.interfaces', run: () => ({ status: 200, body: { interfaceAttachments: m.interfaces(tenant, sid) } }) };
        if (subId === undefined && method === 'POST') return { service: 'compute', stat: 'server.attach_interface', run: (b) => ({ status: 200, body: { interfaceAttachment: m.attachInterface(tenant, sid, wrapped(b, 'interfaceAttachment')) } }) };
        if (subId !== undefined && method === 'DELETE') return { service: 'compute', stat: 'server.detach_interface', run: () => (m.detachInterface(tenant, sid, subId), { status: 202 }) };
        return undefined;
      }
      if (sub === 'os-volume_attachments') {
        if (subId === undefined && method === 'GET') return { service: 'compute', stat: 'server.attachments', run: () => ({ status: 200, body: { volumeAttachments: m.attachments(tenant, sid) } }) };
        if (subId === undefined && method === 'POST') {
          return {
            service: 'compute',
            stat: 'server.attach',
            run: (b) => afterAction({ status: 200, body: { volumeAttachment: m.attachVolume(tenant, sid, String(wrapped(b, 'volumeAttachment').volumeId ?? ''), b.volumeAttachment?.device) } }),
          };
        }
        if (subId !== undefined && method === 'GET') {
          return { service: 'compute', stat: 'server.attachments', run: () => ({ status: 200, body: { volumeAttachment: oneOf(m.attachments(tenant, sid).find((a) => a.volumeId === subId), 'VolumeAttachment', subId) } }) };
        }
        if (subId !== undefined && method === 'DELETE') return { service: 'compute', stat: 'server.detach', run: () => (m.detachVolume(tenant, sid, subId), afterAction({ status: 202 })) };
      }
      return undefined;
    }
    if (s0 === 'image' && s1 === 'v2' && coll === 'images' && method === 'GET') return imageRoute('compute', id);
    if (s0 === 'network' && s1 === 'v2.0' && coll !== undefined) {
      if (coll === 'security-group-rules') {
        if (method === 'POST' && id === undefined) return { service: 'network', stat: 'security_group_rule.create', run: (b) => ({ status: 201, body: { security_group_rule: m.addSecurityGroupRule(tenant, wrapped(b, 'security_group_rule')) } }) };
        if (method === 'DELETE' && id !== undefined) return { service: 'network', stat: 'security_group_rule.delete', run: () => (m.deleteSecurityGroupRule(tenant, id), { status: 204 }) };
        return undefined;
      }
      const kind = NETWORK_COLLECTIONS[coll];
      if (!kind) return undefined;
      if (kind === 'router' && id !== undefined && method === 'PUT' && (sub === 'add_router_interface' || sub === 'remove_router_interface') && subId === undefined) {
        return { service: 'network', stat: `router.${sub}`, run: (b) => afterAction({ status: 200, body: sub === 'add_router_interface' ? m.addRouterInterface(tenant, id, b) : m.removeRouterInterface(tenant, id, b) }) };
      }
      if (sub === 'tags' && id !== undefined) return this.tagsRoute(kind, id, subId, method, tenant);
      if (sub !== undefined) return undefined;
      return collection(kind, [id]);
    }
    if (s0 === 'volume' && s1 === 'v3' && coll === 'volumes') {
      if (id === 'detail') return collection('volume', []);
      if (sub === 'metadata' && id !== undefined) return this.metadataRoute('volume', id, subId, method, tenant);
      if (sub === 'action' && id !== undefined && method === 'POST' && subId === undefined) {
        return {
          service: 'volume',
          stat: 'volume.action',
          run: (b) => {
            if (!b['os-extend']) throw new ApiError(400, 'BadRequest', `Unsupported volume action: ${Object.keys(b).join(', ') || '(none)'} (supported: os-extend).`);
            m.extendVolume(tenant, id, b['os-extend'].new_size);
            return { status: 202 };
          },
        };
      }
      if (sub !== undefined) return undefined;
      return collection('volume', [id]);
    }
    if (s0 === 'load-balancer' && s1 === 'v2' && coll === 'lbaas' && id !== undefined) {
      // segs: load-balancer v2 lbaas <collection> [<id> [members [<member id>]]]
      if (id === 'pools' && subId === 'members') {
        if (extra === undefined) return this.collection('member', method, [segs[6]], url, tenant, key, sub);
        return this.collection('member', method, [extra, segs[7]], url, tenant, key, sub);
      }
      const kind = LB_COLLECTIONS[id];
      if (!kind || subId !== undefined) return undefined;
      return collection(kind, [sub]);
    }
    return undefined;

    function imageRoute(service: Service, imageId: string | undefined) {
      if (imageId === undefined || imageId === 'detail') return { service, stat: 'image.list', run: () => ({ status: 200, body: { images: [...IMAGES] } }) };
      return { service, stat: 'image.get', run: () => ({ status: 200, body: { image: findStatic(IMAGES, imageId, 'Image') } }) };
    }
  }

  /** CRUD on one collection: rest is [id?] (anything more is not found). */
  private collection(kind: Kind, method: string, rest: (string | undefined)[], url: URL, tenant: string, key: string | undefined, parent?: string) {
    const m = this.model;
    const api = KIND_API[kind];
    const [id, more] = rest;
    if (more !== undefined) return undefined;
    const service = api.service;
    if (id === undefined) {
      if (method === 'GET') return { service, stat: `${kind}.list`, run: () => ({ status: 200, body: { [api.plural]: m.list(kind, tenant, url.searchParams, parent) } }) };
      if (method === 'POST') {
        return {
          service,
          stat: `${kind}.create`,
          run: (b: Doc): Reply => {
            const body = { ...wrapped(b, api.singular) };
            if (parent !== undefined) body.pool_id = parent;
            const { json, replay } = m.create(kind, tenant, body, key);
            if (!replay) {
              const fail = m.failAfter('create');
              if (fail) throw fail;
            }
            return { status: api.createStatus, json: `{${JSON.stringify(api.singular)}:${json}}`, headers: replay ? { 'x-idempotent-replay': 'true' } : {} };
          },
        };
      }
      return undefined;
    }
    const check = () => {
      const o = m.find(kind, tenant, id);
      if (parent !== undefined && o.doc.pool_id !== parent) throw new ApiError(404, 'MemberNotFound', `Member ${id} could not be found in pool ${parent}.`);
      return o;
    };
    if (method === 'GET') return { service, stat: `${kind}.get`, run: () => ({ status: 200, body: { [api.singular]: m.render(check()) } }) };
    if (method === 'PUT') return { service, stat: `${kind}.update`, run: (b: Doc) => (check(), { status: 200, body: { [api.singular]: m.update(kind, tenant, id, wrapped(b, api.singular)) } }) };
    if (method === 'DELETE') {
      const cascade = url.searchParams.get('cascade') === 'true';
      return { service, stat: `${kind}.delete`, run: () => (check(), m.delete(kind, tenant, id, { cascade }), { status: kind === 'volume' ? 202 : 204 }) };
    }
    return undefined;
  }

  private metadataRoute(kind: 'server' | 'volume', id: string, item: string | undefined, method: string, tenant: string) {
    const m = this.model;
    const service = KIND_API[kind].service;
    const stat = `${kind}.metadata`;
    if (item === undefined) {
      if (method === 'GET') return { service, stat, run: () => ({ status: 200, body: { metadata: m.find(kind, tenant, id).doc.metadata } }) };
      if (method === 'PUT' || method === 'POST') return { service, stat, run: (b: Doc) => ({ status: 200, body: { metadata: m.setMetadata(kind, tenant, id, stringMap(b.metadata), method === 'PUT') } }) };
      return undefined;
    }
    if (method === 'GET') {
      return { service, stat, run: () => {
        const md = m.find(kind, tenant, id).doc.metadata ?? {};
        if (!(item in md)) throw new ApiError(404, 'MetadataNotFound', `Metadata item was not found: ${item}`);
        return { status: 200, body: { meta: { [item]: md[item] } } };
      } };
    }
    if (method === 'PUT') return { service, stat, run: (b: Doc) => ({ status: 200, body: { meta: pick(m.setMetadata(kind, tenant, id, stringMap(b.meta), false), item) } }) };
    if (method === 'DELETE') return { service, stat, run: () => (m.deleteMetadataKey(kind, tenant, id, item), { status: 204 }) };
    return undefined;
  }

  private tagsRoute(kind: Kind, id: string, tag: string | undefined, method: string, tenant: string) {
    const m = this.model;
    const service = KIND_API[kind].service;
    const stat = `${kind}.tags`;
    const current = (): string[] => m.find(kind, tenant, id).doc.tags ?? [];
    if (tag === undefined) {
      if (method === 'GET') return { service, stat, run: () => ({ status: 200, body: { tags: current() } }) };
      if (method === 'PUT') return { service, stat, run: (b: Doc) => ({ status: 200, body: { tags: m.setTags(kind, tenant, id, Array.isArray(b.tags) ? b.tags : []) } }) };
      return undefined;
    }
    let t: string;
    try {
      t = decodeURIComponent(tag);
    } catch {
      throw new ApiError(400, 'BadRequest', `Malformed tag in path: ${tag}`);
    }
    if (method === 'GET') return { service, stat, run: () => { if (!current().includes(t)) throw new ApiError(404, 'TagNotFound', `Tag ${t} could not be found.`); return { status: 204 }; } };
    if (method === 'PUT') return { service, stat, run: () => (m.setTags(kind, tenant, id, [...current(), t]), { status: 201 }) };
    if (method === 'DELETE') {
      return { service, stat, run: () => {
        if (!current().includes(t)) throw new ApiError(404, 'TagNotFound', `Tag ${t} could not be found.`);
        m.setTags(kind, tenant, id, current().filter((x) => x !== t));
        return { status: 204 };
      } };
    }
    return undefined;
  }

  // ---- control plane (no faults, no rate limits) ---------------------------------------------

  private control(method: string, path: string, url: URL, raw: string): Reply | undefined {
    const m = this.model;
    const body = () => (raw === '' ? {} : parseJson(raw));
    const q = url.searchParams;
    if (path === '/healthz' && method === 'GET') return { status: 200, body: { ok: true, seq: m.lastSeq } };
    if (path === '/inventory' && method === 'GET') {
      const filter: { tenant?: string; kind?: string } = {};
      if (q.get('tenant')) filter.tenant = q.get('tenant')!;
      if (q.get('kind')) filter.kind = q.get('kind')!;
      const objects = m.inventory(filter);
      return { status: 200, body: { objects, count: objects.length, seq: m.lastSeq } };
    }
    if (!path.startsWith('/control/')) return undefined;
    const what = path.slice('/control/'.length);
    switch (`${method} ${what}`) {
      case 'GET faults':
        return { status: 200, body: m.settings.faults };
      case 'PUT faults':
        m.setSettings({ faults: { ...m.settings.faults, ...validateFaults(body()) } });
        return { status: 200, body: m.settings.faults };
      case 'GET latency':
        return { status: 200, body: m.settings.latency };
      case 'PUT latency':
        m.setSettings({ latency: { ...m.settings.latency, ...validateLatency(body()) } });
        return { status: 200, body: m.settings.latency };
      case 'GET quotas':
        return { status: 200, body: q.get('tenant') ? { tenant: q.get('tenant'), quota: m.quotaReport(q.get('tenant')!) } : m.settings.quotas };
      case 'PUT quotas':
        m.setSettings({ quotas: validateQuotas(body()) });
        return { status: 200, body: m.settings.quotas };
      case 'GET rate-limits':
        return { status: 200, body: m.settings.rateLimits };
      case 'PUT rate-limits':
        m.setSettings({ rateLimits: validateRateLimits(body()) });
        return { status: 200, body: m.settings.rateLimits };
      case 'POST reset':
        m.reset();
        return { status: 200, body: { ok: true, seq: m.lastSeq } };
      case 'GET stats':
        return { status: 200, body: { ...m.stats, objects: m.counts(), seq: m.lastSeq } };
      case 'DELETE stats':
        m.resetStats();
        return { status: 204 };
      default:
        break;
    }
    const obj = /^objects\/([^/]+)$/.exec(what);
    if (obj) {
      const id = obj[1]!;
      if (method === 'DELETE') {
        if (!m.vanish(id)) throw new KilnError('RESOURCE_NOT_FOUND', `no object ${id}`);
        return { status: 204 };
      }
      if (method === 'PUT') {
        const b = objectBody(body(), 'body');
        const patch: { status?: string; operating_status?: string } = {};
        if (typeof b.status === 'string') patch.status = b.status;
        if (typeof b.operating_status === 'string') patch.operating_status = b.operating_status;
        if (Object.keys(patch).length === 0) throw new KilnError('REQUEST_INVALID', 'give status and/or operating_status', { path: 'body' });
        const doc = m.force(id, patch);
        if (!doc) throw new KilnError('RESOURCE_NOT_FOUND', `no object ${id}`);
        return { status: 200, body: { object: doc } };
      }
    }
    throw new KilnError('RESOURCE_NOT_FOUND', `no control endpoint ${method} ${path}`);
  }

  // ---- change feed ------------------------------------------------------------------------

  private events(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const q = url.searchParams;
    const sinceText = q.get('since') ?? (req.headers['last-event-id'] as string | undefined);
    // The backlog is read after the pending changes reached every follower, so none comes twice.
    this.model.flush();
    const since = sinceText === undefined || sinceText === '' ? this.model.lastSeq : Number(sinceText);
    if (!Number.isInteger(since) || since < 0) throw new KilnError('REQUEST_INVALID', 'since must be a non-negative integer', { path: 'since' });
    const kinds = q.get('kind')?.split(',').filter(Boolean);
    const tenant = q.get('tenant') ?? undefined;
    const wanted = (e: FeedEvent) => e.type === 'reset' || ((!kinds || kinds.includes(e.kind!)) && (!tenant || e.tenant === tenant));
    const backlog = this.model.eventsSince(since);
    const jsonList = (list: FeedEvent[]) => `[${list.map((e) => e.json).join(',')}]`;

    if (q.get('format') === 'json') {
      // Long poll: answer at once when something is there, else wait for the next change.
      const events = backlog.gap ? [] : backlog.events.filter(wanted);
      if (events.length > 0 || backlog.gap) return this.send(res, { status: 200, json: `{"events":${jsonList(events)},"gap":${backlog.gap},"seq":${backlog.seq}}` });
      const waitMs = Math.min(Number(q.get('wait') ?? 25_000) || 0, 60_000);
      let timer: NodeJS.Timeout | undefined = undefined;
      const done = (list: FeedEvent[]) => {
        unsubscribe();
        if (timer) clearTimeout(timer);
        this.streams.delete(res);
        if (!res.writableEnded) this.send(res, { status: 200, json: `{"events":${jsonList(list)},"gap":false,"seq":${this.model.lastSeq}}` });
      };
      const unsubscribe = this.model.subscribe((batch) => {
        const list = batch.filter(wanted);
        if (list.length > 0) done(list);
      });
      timer = setTimeout(() => done([]), waitMs);
      this.streams.add(res);
      res.on('close', () => {
        unsubscribe();
        if (timer) clearTimeout(timer);
        this.streams.delete(res);
      });
      return;
    }

    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    // The follower knows it is connected at once, not only with the first event.
    res.flushHeaders();
    // One write per flush: the events of a tick go out together.
    const write = (list: FeedEvent[]) => {
      let text = '';
      for (const e of list) if (wanted(e)) text += `id: ${e.seq}\nevent: ${e.type}\ndata: ${e.json}\n\n`;
      if (text !== '') res.write(text);
    };
    if (backlog.gap) res.write(`id: ${backlog.seq}\nevent: gap\ndata: ${JSON.stringify({ seq: backlog.seq })}\n\n`);
    else write(backlog.events);
    const unsubscribe = this.model.subscribe(write);
    const ping = setInterval(() => res.write(': ping\n\n'), this.keepAliveMs);
    this.streams.add(res);
    res.on('close', () => {
      unsubscribe();
      clearInterval(ping);
      this.streams.delete(res);
    });
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new ApiError(413, 'RequestEntityTooLarge', 'Request body too large.'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseJson(raw: string): Doc {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (e) {
    throw new ApiError(400, 'BadRequest', `Malformed request body: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ApiError(400, 'BadRequest', 'The request body must be a JSON object.');
  return v as Doc;
}

function wrapped(b: Doc, name: string): Doc {
  const inner = b[name];
  if (typeof inner !== 'object' || inner === null || Array.isArray(inner)) throw new ApiError(400, 'BadRequest', `Malformed request body: expected an object under '${name}'.`);
  return inner as Doc;
}

function objectBody(b: Doc, path: string): Doc {
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new KilnError('REQUEST_INVALID', 'expected a JSON object', { path });
  return b;
}

function stringMap(v: unknown): Record<string, string> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ApiError(400, 'BadRequest', 'Malformed request body: metadata must be an object.');
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, String(x)]));
}

function pick(md: Record<string, string>, key: string): Record<string, string> {
  return { [key]: md[key] ?? '' };
}

function findStatic<T extends { id: string; name: string }>(list: readonly T[], idOrName: string, what: string): T {
  const found = list.find((x) => x.id === idOrName || x.name === idOrName);
  if (!found) throw new ApiError(404, `${what}NotFound`, `${what} ${idOrName} could not be found.`);
  return found;
}

function oneOf<T>(v: T | undefined, what: string, id: string): T {
  if (v === undefined) throw new ApiError(404, `${what}NotFound`, `${what} ${id} could not be found.`);
  return v;
}

/** Each service answers errors in its own OpenStack shape; the client reads all of them. */
function errorBody(service: Service | 'control', status: number, type: string, message: string, path?: string): Doc {
  switch (service) {
    case 'network':
      return { NeutronError: { type, message, detail: '' } };
    case 'load-balancer':
      return { faultcode: status < 500 ? 'Client' : 'Server', faultstring: message, debuginfo: null, type };
    case 'compute':
    case 'volume': {
      const name = status === 400 ? 'badRequest' : status === 403 ? 'forbidden' : status === 404 ? 'itemNotFound' : status === 409 ? 'conflictingRequest' : status === 413 || status === 429 ? 'overLimit' : service === 'compute' ? 'computeFault' : 'serviceFault';
      return { [name]: { message, code: status, type } };
    }
    case 'control':
      return { error: { code: type, message, status, ...(path ? { path } : {}) } };
  }
}
