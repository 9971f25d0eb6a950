/**
 * Heat's own resource types (heat/engine/resources/openstack/heat/*), with Heat's semantics.
 * All are pure or nested: they need no cloud.
 */
import { derivedUuid, seededRandom } from './hash.js';
import type { ActionOutcome, ActionRequest, NestedType, PureType, ResourceType } from './provider.js';
import type { RollingPolicy, ScaleInPolicy, StackSpec } from './types.js';

const done = (physicalId: string | null, attrs: Record<string, unknown> = {}, waitMs?: number): ActionOutcome =>
  waitMs ? { ok: true, physicalId, attrs, waitMs } : { ok: true, physicalId, attrs };

/** OS::Heat::None: accepts any property, does nothing; updates never replace. */
export const noneType: PureType = {
  kind: 'pure',
  name: 'OS::Heat::None',
  properties: {},
  attributes: [],
  anyProperties: true,
  create: (req) => done(derivedUuid(req.idempotencyKey)),
  update: (req) => done(req.physicalId ?? null, req.attrs ?? {}),
  delete: () => done(null),
};

/** OS::Heat::Value: holds a value (attribute `value`), updated in place. */
export const valueType: PureType = {
  kind: 'pure',
  name: 'OS::Heat::Value',
  properties: { value: { type: 'any', required: true, updateAllowed: true }, type: { type: 'string', updateAllowed: true } },
  attributes: ['value'],
  create: (req) => done(req.physicalName, { value: req.properties.value }),
  update: (req) => done(req.physicalId ?? req.physicalName, { value: req.properties.value }),
  delete: () => done(null),
};

const CLASSES: Record<string, string> = {
  lettersdigits: 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789',
  letters: 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz',
  lowercase: 'abcdefghijklmnopqrstuvwxyz',
  uppercase: 'ABCDEFGHIJKLMNOPQRSTUVWXYZ',
  digits: '0123456789',
  hexdigits: '0123456789abcdefABCDEF',
  octdigits: '01234567',
};

/**
 * The RandomString algorithm: satisfy each class/sequence minimum, fill the rest from the union of
 * all allowed characters, shuffle. Seeded by the idempotency key and salt, so a replayed create
 * yields the same string, and a new incarnation (salt change => replacement) a new one.
 */
export function randomString(props: Record<string, unknown>, seed: string): string | { error: string } {
  const length = Number(props.length ?? 32);
  const classes = (props.character_classes as Array<{ class?: string; min?: number }> | undefined) ?? [];
  const sequences = (props.character_sequences as Array<{ sequence?: string; min?: number }> | undefined) ?? [];
  const pools: Array<{ chars: string; min: number }> = [];
  if (typeof props.sequence === 'string') pools.push({ chars: CLASSES[props.sequence] ?? CLASSES.lettersdigits!, min: 0 });
  for (const c of classes) pools.push({ chars: CLASSES[c.class ?? 'lettersdigits'] ?? CLASSES.lettersdigits!, min: Number(c.min ?? 1) });
  for (const s of sequences) if (s.sequence) pools.push({ chars: s.sequence, min: Number(s.min ?? 1) });
  if (pools.length === 0) pools.push({ chars: CLASSES.lettersdigits!, min: 1 });
  const minTotal = pools.reduce((n, p) => n + p.min, 0);
  if (minTotal > length) return { error: `Length property cannot be smaller than combined character class and character sequence minimums` };
  const rnd = seededRandom(`${seed}|${String(props.salt ?? '')}`);
  const pick = (chars: string) => chars[Math.floor(rnd() * chars.length)]!;
  const out: string[] = [];
  for (const p of pools) for (let i = 0; i < p.min; i++) out.push(pick(p.chars));
  const all = [...new Set(pools.map((p) => p.chars).join(''))].join('');
  while (out.length < length) out.push(pick(all));
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out.join('');
}

/** OS::Heat::RandomString: no property is update_allowed, so any change (e.g. salt) replaces it. */
export const randomStringType: PureType = {
  kind: 'pure',
  name: 'OS::Heat::RandomString',
  properties: {
    length: { type: 'integer', default: 32 },
    sequence: { type: 'string' },
    character_classes: { type: 'list' },
    character_sequences: { type: 'list' },
    salt: { type: 'string' },
  },
  attributes: ['value'],
  create(req) {
    const v = randomString(req.properties, req.idempotencyKey);
    if (typeof v !== 'string') return { ok: false, error: { code: 'PROPERTY_INVALID', message: v.error, transient: false } };
    return done(req.physicalName, { value: v });
  },
  update: (req) => done(req.physicalId ?? null, req.attrs ?? {}),
  delete: () => done(null),
  reference: (physicalId, attrs) => attrs.value ?? physicalId,
};

function waitSecs(props: Record<string, unknown>, action: 'create' | 'update' | 'delete'): number {
  const per = props.action_wait_secs as Record<string, unknown> | undefined;
  const v = per && per[action] !== undefined && per[action] !== null ? Number(per[action]) : Number(props.wait_secs ?? 0);
  return Number.isFinite(v) ? v : 0;
}

const secsToMs = (s: number) => (s < 0 ? -1 : Math.round(s * 1000));

/**
 * OS::Heat::TestResource: stores `value` (attribute `output`), waits action_wait_secs, fails when
 * `fail` is set (after the wait, never on delete). update_replace: a value change replaces;
 * update_replace_value is not update_allowed, so any change replaces.
 */
export const testResourceType: PureType = {
  kind: 'pure',
  name: 'OS::Heat::TestResource',
  properties: {
    value: { type: 'string', default: 'test_string', updateAllowed: true },
    update_replace: { type: 'boolean', default: false, updateAllowed: true },
    update_replace_value: { type: 'string' },
    fail: { type: 'boolean', default: false, updateAllowed: true },
    wait_secs: { type: 'number', default: 0, updateAllowed: true },
    action_wait_secs: { type: 'map', updateAllowed: true },
    attr_wait_secs: { type: 'number', default: 0, updateAllowed: true },
    client_name: { type: 'string', default: '', updateAllowed: true },
    entity_name: { type: 'string', default: '', updateAllowed: true },
    constraint_prop_secs: { type: 'number', default: 0, updateAllowed: true },
  },
  attributes: ['output'],
  needsReplace: (o, n) => n.update_replace === true && o.value !== n.value,
  create(req) {
    const wait = secsToMs(waitSecs(req.properties, 'create'));
    if (req.properties.fail) return { ok: false, error: { code: 'RESOURCE_FAILED', message: `Test Resource failed ${req.name}`, transient: false }, waitMs: wait };
    return done(req.physicalName, { output: req.properties.value }, wait);
  },
  update(req) {
    const wait = secsToMs(waitSecs(req.properties, 'update'));
    if (req.properties.fail) return { ok: false, error: { code: 'RESOURCE_FAILED', message: `Test Resource failed ${req.name}`, transient: false }, waitMs: wait };
    return done(req.physicalId ?? req.physicalName, { output: req.properties.value }, wait);
  },
  delete: (req) => done(null, {}, secsToMs(waitSecs(req.properties, 'delete'))),
};

/** OS::Heat::WaitConditionHandle: collects signals (see Engine.signal); attributes carry them. */
export const waitConditionHandleType: PureType = {
  kind: 'pure',
  name: 'OS::Heat::WaitConditionHandle',
  properties: { signal_transport: { type: 'string', default: 'TOKEN_SIGNAL' } },
  attributes: ['token', 'endpoint', 'curl_cli', 'signal'],
  create: (req) =>
    done(req.physicalName, {
      token: derivedUuid(`${req.idempotencyKey}#token`),
      endpoint: `kiln.signal.${req.stackId}.${req.name}`,
      curl_cli: `kiln signal ${req.stackId} ${req.name}`,
      signals: {},
    }),
  update: (req) => done(req.physicalId ?? null, req.attrs ?? {}),
  delete: () => done(null),
  signal(attrs, data, signalId) {
    const signals = { ...((attrs.signals as Record<string, unknown>) ?? {}) };
    const d = (data && typeof data === 'object' ? data : { data }) as Record<string, unknown>;
    const id = d.id !== undefined ? String(d.id) : String(Object.keys(signals).length + 1);
    signals[signals[id] === undefined ? id : `${id}.${signalId}`] = {
      status: d.status ?? 'SUCCESS',
      reason: d.reason ?? 'Signal received',
      data: d.data ?? null,
    };
    return { ...attrs, signals };
  },
};

/**
 * OS::Heat::WaitCondition: complete when its handle has `count` SUCCESS signals; fails on a
 * FAILURE signal or after `timeout` seconds.
 */
export const waitConditionType: PureType = {
  kind: 'pure',
  name: 'OS::Heat::WaitCondition',
  properties: {
    handle: { type: 'string', required: true },
    count: { type: 'integer', default: 1, updateAllowed: true },
    timeout: { type: 'number', required: true },
  },
  attributes: ['data'],
  create: (req) => evaluateWait(req),
  update: (req) => evaluateWait(req),
  delete: () => done(null),
};

function evaluateWait(req: ActionRequest): ActionOutcome {
  const handle = Object.values(req.deps ?? {}).find((d) => d.type === waitConditionHandleType.name && d.ref === req.properties.handle);
  const signals = (handle?.attrs.signals as Record<string, { status: string; reason: string; data: unknown }> | undefined) ?? {};
  const failure = Object.values(signals).find((s) => s.status === 'FAILURE');
  if (failure) return { ok: false, error: { code: 'RESOURCE_FAILED', message: `WaitCondition signalled FAILURE: ${failure.reason}`, transient: false } };
  const ok = Object.entries(signals).filter(([, s]) => s.status === 'SUCCESS');
  const data = JSON.stringify(Object.fromEntries(ok.map(([id, s]) => [id, s.data])));
  if (ok.length >= Number(req.properties.count ?? 1)) return done(req.physicalName, { data });
  return { ok: true, physicalId: req.physicalName, attrs: { data }, awaitDeps: { timeoutMs: Number(req.properties.timeout) * 1000 } };
}

function outputsAsAttrs(outputs: Record<string, unknown>): Record<string, unknown> {
  return { ...outputs, outputs };
}

/** OS::Heat::Stack: a nested stack from an inline template. */
export const stackType: NestedType = {
  kind: 'nested',
  name: 'OS::Heat::Stack',
  properties: {
    template: { type: 'any', required: true, updateAllowed: true },
    parameters: { type: 'map', default: {}, updateAllowed: true },
    timeout: { type: 'number', updateAllowed: true },
    context: { type: 'map' },
  },
  attributes: ['outputs', 'stack_name'],
  child(req) {
    const spec: StackSpec = {
      template: req.properties.template,
      parameters: (req.properties.parameters as Record<string, unknown>) ?? {},
      ...(req.properties.timeout ? { timeoutMins: Number(req.properties.timeout) } : {}),
    };
    return { spec };
  },
  attrsFromOutputs: outputsAsAttrs,
  attribute(attrs, attr, path) {
    // get_attr [stack, outputs, name] is the common form.
    let v: unknown = attrs[attr];
    for (const p of path) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[String(p)] : undefined;
    return v ?? null;
  },
};

/** A type mapped to a template file (resource_registry or a `.yaml` type): properties are parameters. */
export const templateResourceType: NestedType = {
  kind: 'nested',
  name: '$template',
  properties: {},
  attributes: [],
  anyProperties: true,
  child(req, nested) {
    if (!nested) return { error: { code: 'RESOURCE_TYPE_UNKNOWN', message: `No template for ${req.name}`, transient: false } };
    return { spec: { template: nested.template, files: nested.files, environment: nested.environment, parameters: req.properties } };
  },
  attrsFromOutputs: outputsAsAttrs,
};

/** Member data a group collects (in member order) for its attributes. */
export type GroupMemberData = { readonly name: string; readonly ref: unknown; readonly attrs: Record<string, unknown> };

/**
 * OS::Heat::ResourceGroup: a child stack in group mode (members "0".."n-1", %index%,
 * removal_policies with a cumulative skip list), spread over a tree of shards.
 */
/** Scale-in policies (a group's Kiln property `removal_policy`); see ScaleInPolicy. */
export const SCALE_IN_POLICIES: readonly ScaleInPolicy[] = ['newest', 'oldest', 'unhealthy_first'];

/** A removal_policy property value as a scale-in policy; null when it names none. */
export function scaleInPolicy(v: unknown): ScaleInPolicy | null {
  return SCALE_IN_POLICIES.find((p) => p === v) ?? null;
}

/**
 * Heat's rolling_update / batch_create / rolling_updates map (max_batch_size, min_in_service,
 * pause_time in seconds); undefined when absent, a message when invalid.
 */
export function rollingPolicy(v: unknown, what: string): RollingPolicy | string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) return `${what}: must be a map`;
  const m = v as Record<string, unknown>;
  const num = (k: string, dflt: number, min: number): number | string => {
    const x = m[k] === undefined || m[k] === null ? dflt : Number(m[k]);
    return Number.isFinite(x) && x >= min ? x : `${what}.${k}: "${String(m[k])}" must be a number >= ${min}`;
  };
  const maxBatchSize = num('max_batch_size', 1, 1);
  const minInService = num('min_in_service', 0, 0);
  const pause = num('pause_time', 0, 0);
  for (const x of [maxBatchSize, minInService, pause]) if (typeof x === 'string') return x;
  return { maxBatchSize: Math.floor(maxBatchSize as number), minInService: Math.floor(minInService as number), pauseMs: Math.round((pause as number) * 1000) };
}

export const resourceGroupType: NestedType = {
  kind: 'nested',
  name: 'OS::Heat::ResourceGroup',
  properties: {
    count: { type: 'integer', default: 1, updateAllowed: true },
    resource_def: { type: 'map', required: true, updateAllowed: true },
    removal_policies: { type: 'list', default: [], updateAllowed: true },
    removal_policies_mode: { type: 'string', default: 'append', updateAllowed: true },
    index_var: { type: 'string', default: '%index%' },
    /** Kiln: which members go when count drops (default: the highest indices, as Heat). */
    removal_policy: { type: 'string', updateAllowed: true },
    /** Heat has these in update_policy (read from there first); accepted as properties too. */
    rolling_update: { type: 'map', updateAllowed: true },
    batch_create: { type: 'map', updateAllowed: true },
  },
  attributes: ['refs', 'refs_map', 'attributes', 'removed_rsrc_list'],
  child(req) {
    const def = req.properties.resource_def as Record<string, unknown>;
    if (typeof def.type !== 'string') return { error: { code: 'PROPERTY_INVALID', message: 'resource_def: Property type not assigned', transient: false } };
    const count = Number(req.properties.count);
    if (!Number.isInteger(count) || count < 0) return { error: { code: 'PROPERTY_INVALID', message: `count: Value '${count}' is not an integer >= 0`, transient: false } };
    const given = req.properties.removal_policy;
    const policy = given === undefined || given === null ? null : scaleInPolicy(given);
    if (given !== undefined && given !== null && !policy) {
      return { error: { code: 'PROPERTY_INVALID', message: `removal_policy: "${String(given)}" is not one of ${SCALE_IN_POLICIES.join(', ')}`, transient: false } };
    }
    // Scale-in removals accumulate in the group's removal list, which the `update` mode replaces.
    if (policy && req.properties.removal_policies_mode === 'update') {
      return { error: { code: 'PROPERTY_INVALID', message: 'removal_policy needs removal_policies_mode append', transient: false } };
    }
    const up = (req.updatePolicy && typeof req.updatePolicy === 'object' ? req.updatePolicy : {}) as Record<string, unknown>;
    const rolling = rollingPolicy(up.rolling_update ?? req.properties.rolling_update, 'rolling_update');
    const batchCreate = rollingPolicy(up.batch_create ?? req.properties.batch_create, 'batch_create');
    for (const x of [rolling, batchCreate]) if (typeof x === 'string') return { error: { code: 'PROPERTY_INVALID', message: x, transient: false } };
    const removed: number[] = [];
    for (const pol of (req.properties.removal_policies as Array<{ resource_list?: unknown[] }>) ?? []) {
      for (const r of pol.resource_list ?? []) {
        const n = Number(r);
        if (Number.isInteger(n) && n >= 0) removed.push(n);
      }
    }
    return {
      group: {
        shape: { count, removed: [...new Set(removed)].sort((a, b) => a - b) },
        member: {
          type: req.groupMember?.nestedTemplate ? templateResourceType.name : (req.groupMember?.type ?? def.type),
          properties: (def.properties as Record<string, unknown>) ?? {},
          ...(def.metadata !== undefined ? { metadata: def.metadata } : {}),
          ...(req.groupMember?.nestedTemplate ? { nestedTemplate: req.groupMember.nestedTemplate } : {}),
        },
        indexVar: String(req.properties.index_var ?? '%index%'),
        collect: req.attributesRead && count <= GROUP_COLLECT_LIMIT,
        mode: req.properties.removal_policies_mode === 'update' ? 'update' : 'append',
        ...(policy ? { scaleIn: { policy, named: [] } } : {}),
        ...(rolling ? { rolling: rolling as RollingPolicy } : {}),
        ...(batchCreate ? { batchCreate: batchCreate as RollingPolicy } : {}),
      },
    };
  },
  attrsFromOutputs(outputs) {
    const members = (outputs.members as GroupMemberData[] | undefined) ?? [];
    const refs = members.map((m) => m.ref);
    return {
      refs,
      refs_map: Object.fromEntries(members.map((m) => [m.name, m.ref])),
      removed_rsrc_list: outputs.removed ?? [],
      members,
    };
  },
  attribute(attrs, attr, path) {
    const members = (attrs.members as GroupMemberData[] | undefined) ?? [];
    const pick = (v: unknown, p: readonly unknown[]) => {
      for (const k of p) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[String(k)] : undefined;
      return v ?? null;
    };
    if (attr === 'attributes') {
      const [name, ...rest] = path;
      return Object.fromEntries(members.map((m) => [m.name, pick(m.attrs[String(name)], rest)]));
    }
    const m = /^resource\.(\d+)(?:\.(.+))?$/.exec(attr);
    if (m) {
      const member = members.find((x) => x.name === m[1]);
      if (!member) return null;
      if (m[2] === undefined && path.length === 0) return member.ref;
      const [a, ...rest] = m[2] !== undefined ? [m[2], ...path] : path;
      return pick(member.attrs[String(a)], rest);
    }
    if (attr in attrs) return pick(attrs[attr], path);
    // Heat: any other attribute name is looked up on every member (a list, member order).
    return members.map((x) => pick(x.attrs[attr], path));
  },
};

/** Above this many members a group does not collect member refs/attributes (no million-entry lists). */
export const GROUP_COLLECT_LIMIT = 10_000;

export const builtinTypes: readonly ResourceType[] = [
  noneType,
  valueType,
  randomStringType,
  testResourceType,
  waitConditionHandleType,
  waitConditionType,
  stackType,
  templateResourceType,
  resourceGroupType,
];
