import { KilnError } from '@kiln/core';

/**
 * Scaling policies as pure decisions: `decide(policy, state, sample, now) -> {state, decision}`.
 * No IO, no clock: the runner supplies the metric sample and the time, and sets the capacity the
 * decision names. Capacities are desired capacities: the runner never waits for a group to reach
 * one before deciding the next (the newest desired state wins in Kiln).
 */

/**
 * Keeps a per-member metric (CPU %, requests per member…) near `target`: the capacity becomes
 * ceil(capacity × metric / target), clamped to [min, max].
 */
export interface TargetTrackingPolicy {
  kind: 'target_tracking';
  target: number;
  min: number;
  max: number;
  /** After a scale-out, no further scale-out for this long (capacity added is still booting). */
  scaleOutCooldownMs: number;
  /** No scale-in until this long after the last change in either direction (no flapping). */
  scaleInCooldownMs: number;
  /** No change while metric/target is within 1 ± tolerance. Default 0.1. */
  tolerance?: number;
  /** Only ever scale out (another process scales in). */
  disableScaleIn?: boolean;
}

export type AdjustmentType = 'change_in_capacity' | 'exact_capacity' | 'percent_change_in_capacity';

/** A metric interval [lower, upper) and what to do when the sample falls in it. */
export interface ScalingStep {
  /** Inclusive; absent: -∞. */
  lower?: number;
  /** Exclusive; absent: +∞. */
  upper?: number;
  /** Members to add/remove, the capacity itself, or a percentage of the capacity (by `adjustmentType`). */
  adjustment: number;
}

/**
 * Heat's OS::Heat::ScalingPolicy (adjustment_type, scaling_adjustment, min_adjustment_step,
 * cooldown) with the adjustment chosen by the metric's step, like a step-scaling alarm.
 */
export interface StepPolicy {
  kind: 'step';
  adjustmentType: AdjustmentType;
  steps: ScalingStep[];
  /** For percent changes: the smallest number of members a change moves. */
  minAdjustmentStep?: number;
  /** After any change, no further change for this long. */
  cooldownMs: number;
  min: number;
  max: number;
}

export type ScalingPolicy = TargetTrackingPolicy | StepPolicy;

export interface PolicyState {
  /** The desired capacity last set (or read from the group at start). */
  capacity: number;
  /** When the last increase / decrease was set (ms since the epoch). */
  lastScaleOutAt?: number;
  lastScaleInAt?: number;
}

export type Decision =
  | { action: 'set'; capacity: number; from: number; reason: string }
  | { action: 'none'; capacity: number; reason: string };

function invalid(path: string, message: string): KilnError {
  return new KilnError('REQUEST_INVALID', message, { path });
}

function nonNegativeInt(v: unknown, path: string): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw invalid(path, `must be an integer >= 0, got ${String(v)}`);
}

function nonNegative(v: unknown, path: string): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw invalid(path, `must be a number >= 0, got ${String(v)}`);
}

/** Throws REQUEST_INVALID with the offending field (`policy.steps[1].lower`); returns the policy. */
export function checkPolicy<P extends ScalingPolicy>(p: P): P {
  nonNegativeInt(p.min, 'policy.min');
  nonNegativeInt(p.max, 'policy.max');
  if (p.max < p.min) throw invalid('policy.max', `must be >= min (${p.min}), got ${p.max}`);
  if (p.kind === 'target_tracking') {
    if (typeof p.target !== 'number' || !Number.isFinite(p.target) || p.target <= 0) throw invalid('policy.target', `must be a number > 0, got ${String(p.target)}`);
    nonNegative(p.scaleOutCooldownMs, 'policy.scaleOutCooldownMs');
    nonNegative(p.scaleInCooldownMs, 'policy.scaleInCooldownMs');
    if (p.tolerance !== undefined && (!(p.tolerance >= 0) || p.tolerance >= 1)) throw invalid('policy.tolerance', `must be in [0, 1), got ${p.tolerance}`);
    return p;
  }
  if (p.kind !== 'step') throw invalid('policy.kind', `must be target_tracking or step, got ${String((p as { kind: unknown }).kind)}`);
  if (!['change_in_capacity', 'exact_capacity', 'percent_change_in_capacity'].includes(p.adjustmentType)) {
    throw invalid('policy.adjustmentType', `must be change_in_capacity, exact_capacity or percent_change_in_capacity, got ${String(p.adjustmentType)}`);
  }
  nonNegative(p.cooldownMs, 'policy.cooldownMs');
  if (p.minAdjustmentStep !== undefined) nonNegativeInt(p.minAdjustmentStep, 'policy.minAdjustmentStep');
  if (!Array.isArray(p.steps) || p.steps.length === 0) throw invalid('policy.steps', 'at least one step is required');
  const sorted = p.steps.map((s, i) => ({ s, i })).sort((a, b) => (a.s.lower ?? -Infinity) - (b.s.lower ?? -Infinity));
  for (const { s, i } of sorted) {
    const path = `policy.steps[${i}]`;
    if (typeof s.adjustment !== 'number' || !Number.isFinite(s.adjustment)) throw invalid(`${path}.adjustment`, `must be a number, got ${String(s.adjustment)}`);
    if (p.adjustmentType !== 'percent_change_in_capacity' && !Number.isSafeInteger(s.adjustment)) throw invalid(`${path}.adjustment`, `must be an integer, got ${s.adjustment}`);
    if (p.adjustmentType === 'exact_capacity') nonNegativeInt(s.adjustment, `${path}.adjustment`);
    if (s.lower !== undefined && !Number.isFinite(s.lower)) throw invalid(`${path}.lower`, 'must be a finite number');
    if (s.upper !== undefined && !Number.isFinite(s.upper)) throw invalid(`${path}.upper`, 'must be a finite number');
    if ((s.lower ?? -Infinity) >= (s.upper ?? Infinity)) throw invalid(`${path}.upper`, `must be above lower (${s.lower})`);
  }
  for (let k = 1; k < sorted.length; k++) {
    const prev = sorted[k - 1]!;
    const cur = sorted[k]!;
    if ((cur.s.lower ?? -Infinity) < (prev.s.upper ?? Infinity)) throw invalid(`policy.steps[${cur.i}].lower`, `overlaps steps[${prev.i}]`);
  }
  return p;
}

/**
 * Heat's scalingutil.calculate_new_capacity: the capacity after an adjustment, clamped to
 * [min, max]. Percent changes round toward zero, except that a change smaller than one member
 * rounds away from zero (so +10% of 3 is +1, not 0); `minAdjustmentStep` then raises the size
 * of a percent change. One deliberate difference: the direction of that minimum step follows the
 * sign of the configured percentage — Heat takes the sign of the rounded change, so a +50% of
 * a group of 0 with min_adjustment_step 1 would scale *in* there.
 */
export function newCapacity(current: number, adjustment: number, type: AdjustmentType, minAdjustmentStep: number | undefined, min: number, max: number): number {
  let next: number;
  if (type === 'change_in_capacity') next = current + adjustment;
  else if (type === 'exact_capacity') next = adjustment;
  else {
    const delta = (current * adjustment) / 100;
    let rounded = Math.abs(delta) < 1 ? (delta > 0 ? Math.ceil(delta) : Math.floor(delta)) : delta > 0 ? Math.floor(delta) : Math.ceil(delta);
    if (minAdjustmentStep && adjustment !== 0 && minAdjustmentStep > Math.abs(rounded)) rounded = adjustment > 0 ? minAdjustmentStep : -minAdjustmentStep;
    next = current + rounded;
  }
  return Math.min(max, Math.max(min, next));
}

/** The step whose [lower, upper) holds the sample. */
export function stepFor(steps: readonly ScalingStep[], sample: number): ScalingStep | undefined {
  return steps.find((s) => sample >= (s.lower ?? -Infinity) && sample < (s.upper ?? Infinity));
}

function remaining(lastAt: number | undefined, cooldownMs: number, now: number): number {
  return lastAt === undefined ? 0 : Math.max(0, lastAt + cooldownMs - now);
}

function apply(state: PolicyState, next: number, now: number, reason: string): { state: PolicyState; decision: Decision } {
  const from = state.capacity;
  const s: PolicyState = { ...state, capacity: next };
  if (next > from) s.lastScaleOutAt = now;
  else s.lastScaleInAt = now;
  return { state: s, decision: { action: 'set', capacity: next, from, reason } };
}

function none(state: PolicyState, reason: string): { state: PolicyState; decision: Decision } {
  return { state, decision: { action: 'none', capacity: state.capacity, reason } };
}

/**
 * The decision for one metric sample at time `now` (ms). Bounds come first: a capacity outside
 * [min, max] (a policy changed under a running group) is brought inside whatever the cooldowns.
 */
export function decide(policy: ScalingPolicy, state: PolicyState, sample: number, now: number): { state: PolicyState; decision: Decision } {
  const cur = state.capacity;
  if (cur < policy.min) return apply(state, policy.min, now, `capacity ${cur} below minimum ${policy.min}`);
  if (cur > policy.max) return apply(state, policy.max, now, `capacity ${cur} above maximum ${policy.max}`);
  if (typeof sample !== 'number' || !Number.isFinite(sample)) return none(state, `metric sample ${String(sample)} is not a finite number`);
  return policy.kind === 'target_tracking' ? targetTracking(policy, state, sample, now) : step(policy, state, sample, now);
}

function targetTracking(p: TargetTrackingPolicy, state: PolicyState, sample: number, now: number): { state: PolicyState; decision: Decision } {
  const cur = state.capacity;
  const ratio = sample / p.target;
  const tolerance = p.tolerance ?? 0.1;
  // The epsilon keeps a sample exactly on the edge (55 for 50 ± 10%) inside despite float error.
  if (Math.abs(ratio - 1) <= tolerance + 1e-9) return none(state, `metric ${sample} within ${tolerance * 100}% of target ${p.target}`);
  // An empty group has no per-member metric: any load above target needs a first member.
  const raw = cur === 0 ? (ratio > 1 ? 1 : 0) : Math.ceil(cur * ratio - 1e-9);
  const wanted = Math.min(p.max, Math.max(p.min, raw));
  if (wanted === cur) return none(state, `metric ${sample} vs target ${p.target} wants ${raw}, capacity stays ${cur} within [${p.min}, ${p.max}]`);
  if (wanted > cur) {
    const wait = remaining(state.lastScaleOutAt, p.scaleOutCooldownMs, now);
    if (wait > 0) return none(state, `scale-out to ${wanted} held by cooldown (${wait} ms left)`);
    return apply(state, wanted, now, `metric ${sample} above target ${p.target}: ${cur} -> ${wanted}`);
  }
  if (p.disableScaleIn) return none(state, `scale-in to ${wanted} disabled`);
  const lastChange = Math.max(state.lastScaleInAt ?? -Infinity, state.lastScaleOutAt ?? -Infinity);
  const wait = remaining(Number.isFinite(lastChange) ? lastChange : undefined, p.scaleInCooldownMs, now);
  if (wait > 0) return none(state, `scale-in to ${wanted} held by cooldown (${wait} ms left)`);
  return apply(state, wanted, now, `metric ${sample} below target ${p.target}: ${cur} -> ${wanted}`);
}

function step(p: StepPolicy, state: PolicyState, sample: number, now: number): { state: PolicyState; decision: Decision } {
  const cur = state.capacity;
  const s = stepFor(p.steps, sample);
  if (!s) return none(state, `metric ${sample} matches no step`);
  const next = newCapacity(cur, s.adjustment, p.adjustmentType, p.minAdjustmentStep, p.min, p.max);
  if (next === cur) return none(state, `metric ${sample}: ${p.adjustmentType} ${s.adjustment} leaves capacity at ${cur}`);
  // Heat's cooldown: one change per cooldown window, whatever its direction.
  const lastChange = Math.max(state.lastScaleInAt ?? -Infinity, state.lastScaleOutAt ?? -Infinity);
  const wait = remaining(Number.isFinite(lastChange) ? lastChange : undefined, p.cooldownMs, now);
  if (wait > 0) return none(state, `change to ${next} held by cooldown (${wait} ms left)`);
  return apply(state, next, now, `metric ${sample}: ${p.adjustmentType} ${s.adjustment}: ${cur} -> ${next}`);
}
