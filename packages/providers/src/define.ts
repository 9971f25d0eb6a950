/**
 * Builds an engine TaskType from a small description of one cloud resource type: how to make the
 * create body, when the object is settled, how to apply an update, its attributes and health.
 * Create, delete and observe follow one pattern for every type:
 * - create: look the incarnation's idempotency key up first (a create that may have happened
 *   before a crash is found again), create with the key otherwise (the cloud's create is
 *   idempotent too), then wait until the object settles. An object that settles in a failed
 *   state is deleted and reported as RESOURCE_ERROR (transient): the retry makes a fresh one.
 * - delete: delete (the physical id, or the key's object when the id was never stored) and wait
 *   until it is gone, so dependants can go next and the key is free again.
 * - observe: read the object; null when gone; attributes plus `health` for drift detection.
 */
import { KilnError } from '@kiln/core';
import type { ActionRequest, PropertySchema, TaskActionResult, TaskType } from '@kiln/engine';
import type { CallOptions, CreateBody, Kind, ObjectOf } from '@kiln/sim-cloud';

/** The runtime's task context (self, idempotency key, abort signal), as the engine passes it. */
export type TaskContext = Parameters<TaskType['create']>[1];
import { CloudResourceError, ResourceGoneError, classifyCloudError } from './errors.js';
import { type CloudGateway, type Settle, statusOf } from './gateway.js';
import type { KeyInterest } from './watcher.js';

/**
 * What observe() found, beyond the attributes:
 * - `ok`: as desired.
 * - `pending`: a transition is in flight (BUILD, PENDING_UPDATE); look again later.
 * - `error`: the object is broken (server ERROR, volume error, port unreachable, LB member not
 *   forwarding, attachment lost); `repair` says what would fix it.
 * - `drifted`: an update-allowed property differs from the desired value (`drifted` names them);
 *   an update with the same properties sets them back.
 */
export interface Health {
  readonly state: 'ok' | 'pending' | 'error' | 'drifted';
  readonly reason?: string;
  readonly drifted?: readonly string[];
  /** What would repair it: nothing, an in-place update with the desired properties, or a replacement. */
  readonly repair: 'none' | 'update' | 'replace';
}

export interface ObservedResource extends TaskActionResult {
  readonly physicalId: string;
  readonly health: Health;
}

/** A cloud TaskType: observe always exists and reports health. */
export interface CloudTaskType extends TaskType {
  observe(req: ActionRequest, ctx: TaskContext): Promise<ObservedResource | null>;
}

/** What a type's hooks get: the gateway, the abort signal and the incarnation's idempotency key. */
export interface Io {
  readonly gw: CloudGateway;
  readonly signal: AbortSignal;
  readonly key: string;
}

export interface CloudTypeDef<K extends Kind> {
  readonly name: string;
  readonly kind: K;
  readonly properties: Readonly<Record<string, PropertySchema>>;
  readonly attributes: readonly string[];
  needsReplace?(oldProps: Record<string, unknown>, newProps: Record<string, unknown>): boolean;
  /** Call options for this object (members live under their pool). */
  callOpts?(req: ActionRequest): CallOptions;
  /** The create body; resolves references (names to ids) through io. */
  body(req: ActionRequest, io: Io): Promise<CreateBody>;
  /** Whether a freshly created/updated object is usable; default: done at once. */
  settle?(obj: ObjectOf[K]): Settle;
  /** Extra work after the object settled (e.g. tags); true when it changed the object (re-read it). */
  afterCreate?(req: ActionRequest, obj: ObjectOf[K], io: Io): Promise<boolean>;
  /** Applies the desired update-allowed properties to the live object (idempotent: also repairs drift). */
  update?(req: ActionRequest, obj: ObjectOf[K], io: Io): Promise<void>;
  /** Related objects the attributes and health need (a server's ports), read once per action. */
  related?(obj: ObjectOf[K], io: Io): Promise<unknown>;
  attrs(obj: ObjectOf[K], req: ActionRequest, related: unknown): Record<string, unknown>;
  /** Health of a live object against the desired properties. */
  health?(obj: ObjectOf[K], req: ActionRequest, related: unknown): Health;
  /** Custom delete (detach first, delete internal objects...); default: delete the object. */
  remove?(req: ActionRequest, id: string, io: Io): Promise<void>;
  /** Runs after the object is gone on delete, even when it never existed (internal objects made by create). */
  cleanup?(req: ActionRequest, io: Io): Promise<void>;
  /** get_resource value; the physical id when absent. */
  reference?(physicalId: string | null, attrs: Record<string, unknown>): unknown;
}

export const OK: Health = { state: 'ok', repair: 'none' };

/** Health from a list of drifted property names. */
export function driftHealth(drifted: string[]): Health {
  return drifted.length === 0 ? OK : { state: 'drifted', drifted, reason: `Properties changed outside Kiln: ${drifted.join(', ')}`, repair: 'update' };
}

export function cloudType<K extends Kind>(def: CloudTypeDef<K>, gw: CloudGateway): CloudTaskType {
  const kind = def.kind;
  const optsOf = (req: ActionRequest): CallOptions => def.callOpts?.(req) ?? {};
  const settle = (o: ObjectOf[K] | undefined): Settle => (o === undefined ? { failed: 'it disappeared' } : def.settle ? def.settle(o) : 'done');
  const io = (req: ActionRequest, ctx: TaskContext): Io => ({ gw, signal: ctx.signal, key: req.idempotencyKey });

  /** Deletes a failed object (best effort within the task) so the retry's create makes a fresh one. */
  const discard = async (req: ActionRequest, id: string, x: Io): Promise<void> => {
    try {
      await gw.call(`${kind}.delete`, x.signal, (o) => gw.client.delete(kind, id, { ...optsOf(req), ...o }));
      await gw.waitGone(kind, id, x.signal, optsOf(req));
    } catch (e) {
      gw.log.warn({ kind, id, err: (e as Error).message }, 'could not clean up a failed object; the retry will');
    }
  };

  /**
   * Waits until the object settles; a failed new object is discarded, a failed existing one is
   * left to the engine's replace. `made`: the object a create (or look-up by key) returned, with
   * the create's key interest; without it the wait looks by GET first.
   */
  const waitSettled = async (req: ActionRequest, id: string, x: Io, made?: { obj: ObjectOf[K]; early: KeyInterest | undefined }): Promise<ObjectOf[K]> => {
    const done = await gw.waitFor(kind, id, x.signal, settle, {
      ...(made ? { first: made.obj, early: made.early } : {}),
      call: optsOf(req),
      onFail: (reason) => new CloudResourceError(`${def.name} ${id} (${req.name}) failed: ${reason}`, kind, id),
    }).catch(async (e: unknown) => {
      if (made && e instanceof CloudResourceError) await discard(req, id, x);
      throw e;
    });
    return done!;
  };

  const findExisting = async (req: ActionRequest, x: Io): Promise<ObjectOf[K] | undefined> =>
    gw.call(`${kind}.findByKey`, x.signal, (o) => gw.client.findByKey(kind, x.key, { ...optsOf(req), ...o }));

  const type: CloudTaskType = {
    kind: 'task',
    name: def.name,
    properties: def.properties,
    attributes: [...def.attributes, 'show'],
    ...(def.needsReplace ? { needsReplace: def.needsReplace } : {}),
    ...(def.reference ? { reference: def.reference } : {}),
    classify: classifyCloudError,

    async create(req, ctx) {
      const x = io(req, ctx);
      // The events of the key's objects count from now on: the wait for what the create returns
      // then misses no change that the feed delivered before the create's answer.
      const early = gw.watchKey(x.key);
      let ready: ObjectOf[K];
      try {
        let obj = gw.idempotentCreates ? undefined : await findExisting(req, x);
        if (obj) {
          const s = settle(obj);
          // A failed leftover of an earlier attempt with this key: clear it, then make a fresh one.
          if (s !== 'done' && s !== 'pending') {
            await discard(req, obj.id, x);
            obj = undefined;
          }
        }
        const body = obj ? undefined : await def.body(req, x);
        const make = () => gw.call(`${kind}.create`, ctx.signal, (o) => gw.client.create(kind, body!, { ...optsOf(req), ...o, key: x.key }));
        obj ??= await make();
        for (let remade = 0; ; remade++) {
          try {
            ready = await waitSettled(req, obj.id, x, { obj, early });
            break;
          } catch (e) {
            // A failed boot is final for that object: make a new one at once (the discarded one freed
            // the key) rather than fail the task into the engine's backoff. Only when the key is
            // really free, so a clean-up that did not finish never leads to a second object.
            if (!(e instanceof CloudResourceError) || !body || remade >= gw.replaceFailedCreates || (await findExisting(req, x))) throw e;
            gw.log.debug({ kind, key: x.key, err: e.message }, 'failed create replaced in the task');
            obj = await make();
          }
        }
      } finally {
        gw.unwatchKey(x.key, early);
      }
      const changed = (await def.afterCreate?.(req, ready, x)) ?? false;
      const fresh = changed ? ((await gw.get(kind, ready.id, ctx.signal, optsOf(req))) ?? ready) : ready;
      return { physicalId: fresh.id, attrs: def.attrs(fresh, req, await def.related?.(fresh, x)) };
    },

    async update(req, ctx) {
      const x = io(req, ctx);
      const id = req.physicalId;
      const obj = id ? await gw.get(kind, id, ctx.signal, optsOf(req)) : undefined;
      if (!id || !obj) throw new ResourceGoneError(`${def.name} ${id ?? '(none)'} (${req.name}) is gone; it must be recreated`);
      if (def.update) await def.update(req, obj, x);
      const after = await waitSettled(req, id, x);
      return { physicalId: id, attrs: def.attrs(after, req, await def.related?.(after, x)) };
    },

    async delete(req, ctx) {
      const x = io(req, ctx);
      // No stored id: a create may still have happened before a crash; find it by key.
      const id = req.physicalId ?? (await findExisting(req, x))?.id;
      if (id) {
        if (def.remove) await def.remove(req, id, x);
        else await gw.call(`${kind}.delete`, ctx.signal, (o) => gw.client.delete(kind, id, { ...optsOf(req), ...o }));
        await gw.waitGone(kind, id, ctx.signal, optsOf(req));
      }
      await def.cleanup?.(req, x);
    },

    async observe(req, ctx) {
      const id = req.physicalId;
      if (!id) return null;
      const obj = await gw.get(kind, id, ctx.signal, optsOf(req));
      if (!obj) return null;
      const s = settle(obj);
      const related = await def.related?.(obj, io(req, ctx));
      const health: Health =
        s === 'pending'
          ? { state: 'pending', reason: `status ${statusOf(obj)}`, repair: 'none' }
          : s !== 'done'
            ? { state: 'error', reason: s.failed, repair: 'replace' }
            : (def.health?.(obj, req, related) ?? OK);
      return { physicalId: id, attrs: def.attrs(obj, req, related), health };
    },
  };
  return type;
}

// ---- helpers shared by the type families --------------------------------------------------

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * A reference property's cloud id: ids (what get_resource gives) pass as they are; a name is
 * looked up, as Heat's client plugins do (`find_resourceid_by_name_or_id`).
 */
export async function resolveId(io: Io, kind: Kind, value: unknown, prop: string): Promise<string> {
  const v = String(value);
  if (UUID_RE.test(v)) return v;
  const byId = await io.gw.get(kind, v, io.signal);
  if (byId) return byId.id;
  const found = await io.gw.call(`${kind}.list`, io.signal, (o) => io.gw.client.list(kind, { name: v }, o));
  if (found.length === 1) return found[0]!.id;
  throw new KilnError(
    found.length === 0 ? 'RESOURCE_NOT_FOUND' : 'REQUEST_INVALID',
    found.length === 0 ? `Unable to find ${kind} with name or id '${v}'` : `Multiple ${kind} matches found for name '${v}', use an ID to be more specific.`,
    { path: `properties.${prop}` },
  );
}

/** The `name` property, or the Heat-style physical name when it is not given. */
export function nameOf(req: ActionRequest): string {
  return typeof req.properties.name === 'string' && req.properties.name !== '' ? req.properties.name : req.physicalName;
}

/** The user's metadata: the cloud keeps the idempotency key in `kiln:key`, which is bookkeeping, not drift. */
export function userMetadata(m: Record<string, string>): Record<string, string> {
  const { 'kiln:key': _key, ...rest } = m;
  return rest;
}

/** Nova/Cinder metadata values are strings; Heat JSON-encodes other values. */
export function stringMap(m: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (m && typeof m === 'object') for (const [k, v] of Object.entries(m as Record<string, unknown>)) out[k] = typeof v === 'string' ? v : JSON.stringify(v);
  return out;
}

/** Names of the properties whose desired value differs from the live one. */
export function differing(pairs: Record<string, [desired: unknown, actual: unknown]>): string[] {
  const out: string[] = [];
  for (const [name, [want, have]] of Object.entries(pairs)) {
    if (want === undefined || want === null) continue;
    if (JSON.stringify(want) !== JSON.stringify(have)) out.push(name);
  }
  return out;
}

/** Drops undefined and null entries (optional properties not given). */
export function compact(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== null) out[k] = v;
  return out;
}

/** Schema shorthands. */
export const S = {
  str: (extra: Partial<PropertySchema> = {}): PropertySchema => ({ type: 'string', ...extra }),
  int: (extra: Partial<PropertySchema> = {}): PropertySchema => ({ type: 'integer', ...extra }),
  num: (extra: Partial<PropertySchema> = {}): PropertySchema => ({ type: 'number', ...extra }),
  bool: (extra: Partial<PropertySchema> = {}): PropertySchema => ({ type: 'boolean', ...extra }),
  map: (extra: Partial<PropertySchema> = {}): PropertySchema => ({ type: 'map', ...extra }),
  list: (extra: Partial<PropertySchema> = {}): PropertySchema => ({ type: 'list', ...extra }),
};
export const U = { updateAllowed: true } as const;
