/**
 * Autoscaling: OS::Heat::AutoScalingGroup is a group (the ResourceGroup machinery: a child stack
 * in group mode whose members are numbered and spread over the shard tree) sized by
 * `desired_capacity` within [min_size, max_size]; OS::Heat::ScalingPolicy turns a signal into a
 * new desired capacity. A scaling decision is an ordinary write of desired state (the group's
 * capacity override, as `setGroupCapacity`): newest wins, it never waits for a scale in flight,
 * and a parent stack update that leaves the group's template size alone keeps it.
 *
 * Scale-in picks the members to remove by `removal_policy`: `newest` (highest indices, the
 * default), `oldest`, `unhealthy_first` (failed or repairing members, then the oldest: Heat's
 * AutoScalingGroup removes FAILED members first), and named ones before any of these
 * (`removal_policies: [{resource_list: [...]}]`, as ResourceGroup). Failed members are replaced
 * by heal whatever the cooldown.
 */
import type { NestedType, PureType } from './provider.js';
import { resourceGroupType, scaleInPolicy, SCALE_IN_POLICIES, type GroupMemberData } from './builtins.js';
import { memberExists, shapeExtent } from './shard.js';
import type { GroupShape, ScaleInPolicy } from './types.js';

export const AUTOSCALING_GROUP = 'OS::Heat::AutoScalingGroup';
export const SCALING_POLICY = 'OS::Heat::ScalingPolicy';

/** The group's size from its properties: desired_capacity (else min_size) clamped to [min, max]. */
export function asgCapacity(props: Record<string, unknown>): number {
  const min = Number(props.min_size ?? 0);
  const max = Number(props.max_size ?? min);
  const want = props.desired_capacity === undefined || props.desired_capacity === null ? min : Number(props.desired_capacity);
  return Math.max(min, Math.min(max, Math.round(want)));
}

/** Live member indices of a shape, in index order (oldest first). */
export function liveMembers(shape: GroupShape): number[] {
  const out: number[] = [];
  const extent = shapeExtent(shape);
  for (let i = 0; i < extent; i++) if (memberExists(i, shape)) out.push(i);
  return out;
}

/**
 * The indices to remove (added to the group's cumulative removal list) when going from `prev` to
 * `count` members: named members first, then for `unhealthy_first` the `unhealthy` ones (failed
 * or repairing, as the shards last reported them) and then the oldest; for `oldest` the oldest;
 * `newest` needs none (a smaller count drops the highest indices).
 */
export function scaleInRemovals(prev: GroupShape, count: number, policy: ScaleInPolicy | string, named: readonly number[], unhealthy: readonly number[] = []): number[] {
  const live = liveMembers(prev);
  const excess = live.length - count;
  if (excess <= 0) return [];
  const isLive = new Set(live);
  const out = new Set(named.filter((i) => isLive.has(i)).slice(0, excess));
  const take = (candidates: Iterable<number>) => {
    for (const i of candidates) if (out.size < excess && isLive.has(i)) out.add(i);
  };
  if (policy === 'unhealthy_first') take([...unhealthy].sort((a, b) => a - b));
  if (policy === 'oldest' || policy === 'unhealthy_first') take(live);
  return [...out];
}


export const autoScalingGroupType: NestedType = {
  kind: 'nested',
  name: AUTOSCALING_GROUP,
  properties: {
    min_size: { type: 'integer', required: true, updateAllowed: true },
    max_size: { type: 'integer', required: true, updateAllowed: true },
    desired_capacity: { type: 'integer', updateAllowed: true },
    cooldown: { type: 'integer', updateAllowed: true },
    resource: { type: 'map', required: true, updateAllowed: true },
    // Heat's default: a changed member definition is rolled out one member at a time.
    rolling_updates: { type: 'map', default: { min_in_service: 0, max_batch_size: 1, pause_time: 0 }, updateAllowed: true },
    removal_policy: { type: 'string', default: 'newest', updateAllowed: true },
    removal_policies: { type: 'list', default: [], updateAllowed: true },
  },
  attributes: ['outputs', 'outputs_list', 'current_size', 'refs', 'refs_map'],
  child(req, nested) {
    const p = req.properties;
    const min = Number(p.min_size);
    const max = Number(p.max_size);
    if (min < 0 || max < min) return { error: { code: 'PROPERTY_INVALID', message: `max_size (${max}) must be >= min_size (${min}) >= 0`, transient: false } };
    const policy = scaleInPolicy(p.removal_policy ?? 'newest');
    if (!policy) return { error: { code: 'PROPERTY_INVALID', message: `removal_policy: "${String(p.removal_policy)}" is not one of ${SCALE_IN_POLICIES.join(', ')}`, transient: false } };
    const count = asgCapacity(p);
    const named: number[] = [];
    for (const pol of (p.removal_policies as Array<{ resource_list?: unknown[] }>) ?? []) for (const r of pol.resource_list ?? []) if (Number.isInteger(Number(r))) named.push(Number(r));
    // The member definition goes through ResourceGroup's (`resource` as resource_def); the
    // group's supervisor picks the members to remove on scale-in against its actual shape.
    const made = resourceGroupType.child(
      { ...req, properties: { count, resource_def: p.resource, removal_policies: [], removal_policies_mode: 'append' }, updatePolicy: { rolling_update: p.rolling_updates } },
      nested,
    );
    if (!('group' in made) || !made.group) return made;
    return { group: { ...made.group, scaleIn: { policy, named } } };
  },
  attrsFromOutputs(outputs) {
    const attrs = resourceGroupType.attrsFromOutputs(outputs);
    return { ...attrs, current_size: ((outputs.members as unknown[] | undefined) ?? []).length };
  },
  attribute(attrs, attr, path) {
    const members = (attrs.members as GroupMemberData[] | undefined) ?? [];
    const [name, ...rest] = path;
    const pick = (v: unknown) => {
      for (const k of rest) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[String(k)] : undefined;
      return v ?? null;
    };
    if (attr === 'outputs_list') return members.map((m) => pick(m.attrs[String(name)]));
    if (attr === 'outputs') return Object.fromEntries(members.map((m) => [m.ref as string, pick(m.attrs[String(name)])]));
    if (attr === 'current_size') return attrs.current_size ?? members.length;
    return resourceGroupType.attribute!(attrs, attr, path);
  },
};

/** The new capacity a scaling policy asks for (Heat's `_calculate_new_capacity`), clamped to [min, max]. */
export function scaledCapacity(
  current: number,
  policy: { adjustment_type?: unknown; scaling_adjustment?: unknown; min_adjustment_step?: unknown },
  min: number,
  max: number,
): number {
  const adj = Number(policy.scaling_adjustment ?? 0);
  let next: number;
  switch (policy.adjustment_type) {
    case 'exact_capacity':
      next = adj;
      break;
    case 'percent_change_in_capacity': {
      const delta = (current * adj) / 100;
      // Heat: at least min_adjustment_step, rounded away from zero when below one.
      let step = Math.abs(delta) < 1 ? Math.sign(delta) : Math.trunc(delta);
      const minStep = Number(policy.min_adjustment_step ?? 0);
      if (minStep > 0 && Math.abs(step) < minStep) step = Math.sign(adj) * minStep;
      next = current + step;
      break;
    }
    default:
      next = current + adj;
  }
  return Math.max(min, Math.min(max, next));
}

/**
 * OS::Heat::ScalingPolicy. Its signals are handled by the engine (`Engine.signal` on a policy
 * sets the group's capacity); the resource itself records the last adjustment for the cooldown.
 */
export const scalingPolicyType: PureType = {
  kind: 'pure',
  name: SCALING_POLICY,
  properties: {
    auto_scaling_group_id: { type: 'string', required: true, updateAllowed: true },
    adjustment_type: { type: 'string', required: true, updateAllowed: true },
    scaling_adjustment: { type: 'number', required: true, updateAllowed: true },
    cooldown: { type: 'integer', updateAllowed: true },
    min_adjustment_step: { type: 'integer', updateAllowed: true },
  },
  attributes: ['signal_url', 'alarm_url'],
  create(req) {
    // The URL names the policy through the signal API (NATS subject of the stack's resource signal).
    const url = `kiln://signal/${req.stackId}/${req.name}`;
    return { ok: true, physicalId: req.physicalName, attrs: { signal_url: url, alarm_url: url } };
  },
  update(req) {
    return { ok: true, physicalId: req.physicalId ?? req.physicalName, attrs: { ...req.attrs } };
  },
  delete() {
    return { ok: true, physicalId: null, attrs: {} };
  },
  signal(attrs, data) {
    const at = (data as { scaledAt?: unknown } | null)?.scaledAt;
    return typeof at === 'number' ? { ...attrs, last_adjustment_at: at } : attrs;
  },
};

/** The autoscaling types (registered by the engine beside the built-ins). */
export const autoscalingTypes: readonly (NestedType | PureType)[] = [autoScalingGroupType, scalingPolicyType];
