import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { KilnError } from '@kiln/core';
import { checkPolicy, decide, newCapacity, stepFor, type PolicyState, type ScalingPolicy, type StepPolicy, type TargetTrackingPolicy } from '../src/policy.js';

const capacity = suite('newCapacity (Heat ScalingPolicy arithmetic)');

capacity('change_in_capacity adds and clamps to [min, max]', () => {
  assert.is(newCapacity(3, 2, 'change_in_capacity', undefined, 1, 10), 5);
  assert.is(newCapacity(3, -1, 'change_in_capacity', undefined, 1, 10), 2);
  assert.is(newCapacity(9, 5, 'change_in_capacity', undefined, 1, 10), 10);
  assert.is(newCapacity(3, -5, 'change_in_capacity', undefined, 1, 10), 1);
  assert.is(newCapacity(3, 0, 'change_in_capacity', undefined, 1, 10), 3);
});

capacity('exact_capacity replaces and clamps', () => {
  assert.is(newCapacity(3, 7, 'exact_capacity', undefined, 1, 10), 7);
  assert.is(newCapacity(3, 0, 'exact_capacity', undefined, 1, 10), 1);
  assert.is(newCapacity(3, 50, 'exact_capacity', undefined, 1, 10), 10);
  // min_adjustment_step only concerns percentages.
  assert.is(newCapacity(3, 4, 'exact_capacity', 5, 0, 100), 4);
});

capacity('percent_change_in_capacity: at least one member, otherwise rounded toward zero', () => {
  const pct = (cur: number, adj: number, step?: number) => newCapacity(cur, adj, 'percent_change_in_capacity', step, 0, 1000);
  assert.is(pct(10, 33), 13, '+3.3 -> +3');
  assert.is(pct(10, -33), 7, '-3.3 -> -3');
  assert.is(pct(10, 39), 13, '+3.9 -> +3 (floor, not round)');
  assert.is(pct(10, -39), 7, '-3.9 -> -3 (ceil)');
  assert.is(pct(3, 10), 4, '+0.3 -> +1');
  assert.is(pct(3, -10), 2, '-0.3 -> -1');
  assert.is(pct(10, 10), 11, '+1.0 exactly -> +1');
  assert.is(pct(10, -10), 9);
  assert.is(pct(4, 100), 8);
  assert.is(pct(4, -100), 0);
  assert.is(pct(10, 0), 10, 'a 0% change changes nothing');
});

capacity('min_adjustment_step raises small percent changes, in the direction of the percentage', () => {
  const pct = (cur: number, adj: number, step?: number) => newCapacity(cur, adj, 'percent_change_in_capacity', step, 0, 1000);
  assert.is(pct(10, 10, 2), 12, '+1 raised to +2');
  assert.is(pct(10, -10, 2), 8, '-1 raised to -2');
  assert.is(pct(10, 50, 2), 15, 'a change larger than the step is kept');
  assert.is(pct(10, -50, 2), 5);
  assert.is(pct(10, 20, 2), 12, 'equal to the step: kept');
  assert.is(pct(0, 50, 1), 1, 'from an empty group a positive percentage scales out (Heat would scale in)');
  assert.is(pct(0, 50), 0, 'without a minimum step 50% of nothing is nothing');
  assert.is(pct(10, 0, 3), 10, 'a 0% change stays 0 whatever the minimum step');
  // Clamps apply after the minimum step.
  assert.is(newCapacity(9, 10, 'percent_change_in_capacity', 5, 0, 12), 12);
  assert.is(newCapacity(2, -10, 'percent_change_in_capacity', 5, 1, 12), 1);
});

capacity('properties: always within bounds; percent changes move by at least one member and never beyond the exact delta', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 500 }),
      fc.integer({ min: -200, max: 200 }),
      fc.option(fc.integer({ min: 1, max: 20 }), { nil: undefined }),
      fc.integer({ min: 0, max: 50 }),
      fc.integer({ min: 0, max: 500 }),
      (cur, adj, step, lo, span) => {
        const min = lo;
        const max = lo + span;
        for (const type of ['change_in_capacity', 'exact_capacity', 'percent_change_in_capacity'] as const) {
          const n = newCapacity(cur, type === 'exact_capacity' ? Math.abs(adj) : adj, type, step, min, max);
          assert.ok(n >= min && n <= max && Number.isInteger(n), `${type} ${cur} ${adj} -> ${n}`);
        }
        // Unclamped percent change.
        const n = newCapacity(cur, adj, 'percent_change_in_capacity', step, -100_000, 100_000);
        const delta = (cur * adj) / 100;
        const moved = n - cur;
        if (delta === 0) assert.is(moved, adj === 0 || !step ? 0 : Math.sign(adj) * step);
        else {
          assert.is(Math.sign(moved), Math.sign(adj));
          assert.ok(Math.abs(moved) >= 1);
          assert.ok(Math.abs(moved) <= Math.max(Math.abs(delta), 1, step ?? 0));
          if (step) assert.ok(Math.abs(moved) >= step);
        }
      },
    ),
    { numRuns: 2000 },
  );
});

capacity('stepFor picks the interval [lower, upper) holding the sample', () => {
  const steps = [{ upper: 20, adjustment: -2 }, { lower: 20, upper: 40, adjustment: -1 }, { lower: 70, upper: 90, adjustment: 1 }, { lower: 90, adjustment: 3 }];
  assert.is(stepFor(steps, -5)?.adjustment, -2);
  assert.is(stepFor(steps, 19.99)?.adjustment, -2);
  assert.is(stepFor(steps, 20)?.adjustment, -1);
  assert.is(stepFor(steps, 50), undefined);
  assert.is(stepFor(steps, 70)?.adjustment, 1);
  assert.is(stepFor(steps, 90)?.adjustment, 3);
  assert.is(stepFor(steps, 1e9)?.adjustment, 3);
});

const tt = suite('decide: target tracking');
const TT: TargetTrackingPolicy = { kind: 'target_tracking', target: 50, min: 1, max: 10, scaleOutCooldownMs: 60_000, scaleInCooldownMs: 300_000 };
const at = (capacity: number, extra: Partial<PolicyState> = {}): PolicyState => ({ capacity, ...extra });

tt('scales to ceil(capacity × metric / target) and records the time', () => {
  const r = decide(TT, at(3), 80, 1_000);
  assert.equal(r.decision, { action: 'set', capacity: 5, from: 3, reason: r.decision.reason });
  assert.equal(r.state, { capacity: 5, lastScaleOutAt: 1_000 });
  const down = decide(TT, at(6), 20, 1_000);
  assert.is(down.decision.capacity, 3, 'ceil(6 × 0.4) = ceil(2.4)');
  assert.equal(down.state, { capacity: 3, lastScaleInAt: 1_000 });
  assert.is(decide(TT, at(3), 60, 0).decision.capacity, 4, 'ceil(3.6)');
  assert.is(decide({ ...TT, target: 0.7 }, at(3), 0.7 * 1.5, 0).decision.capacity, 5, 'floating error does not add a member (4.5 -> 5, not 6)');
  assert.is(decide({ ...TT, target: 0.1, tolerance: 0 }, at(3), 0.1 * 2, 0).decision.capacity, 6, '3 × 0.2/0.1 is 6, not 7');
});

tt('within the tolerance nothing changes; tolerance is configurable', () => {
  for (const m of [45, 50, 55]) assert.is(decide(TT, at(4), m, 0).decision.action, 'none', String(m));
  assert.is(decide(TT, at(4), 56, 0).decision.action, 'set');
  assert.is(decide({ ...TT, tolerance: 0 }, at(4), 51, 0).decision.capacity, 5);
  assert.is(decide({ ...TT, tolerance: 0.5 }, at(4), 74, 0).decision.action, 'none');
});

tt('min and max clamp the wanted capacity', () => {
  assert.is(decide(TT, at(8), 500, 0).decision.capacity, 10);
  assert.is(decide(TT, at(2), 1, 0).decision.capacity, 1);
  const atMax = decide(TT, at(10), 500, 0);
  assert.is(atMax.decision.action, 'none', 'already at max');
  assert.equal(atMax.state, at(10), 'no cooldown starts when nothing changes');
  assert.is(decide(TT, at(1), 1, 0).decision.action, 'none', 'already at min');
});

tt('a capacity outside [min, max] is brought inside at once, cooldowns notwithstanding', () => {
  const r = decide(TT, at(0, { lastScaleInAt: 0 }), 50, 1);
  assert.equal([r.decision.action, r.decision.capacity], ['set', 1]);
  const high = decide(TT, at(14, { lastScaleOutAt: 0 }), 50, 1);
  assert.equal([high.decision.action, high.decision.capacity], ['set', 10]);
  assert.is(high.state.lastScaleInAt, 1);
});

tt('scale-out cooldown holds further scale-outs, not the first', () => {
  const s1 = decide(TT, at(2), 100, 0);
  assert.is(s1.decision.capacity, 4);
  const held = decide(TT, s1.state, 100, 59_999);
  assert.is(held.decision.action, 'none');
  assert.match(held.decision.reason, /cooldown \(1 ms left\)/);
  assert.is(decide(TT, s1.state, 100, 60_000).decision.capacity, 8);
});

tt('scale-in waits for the scale-in cooldown after any change; scale-out after a scale-in does not wait', () => {
  const out = decide(TT, at(4), 100, 0).state; // 8 at t=0
  assert.is(decide(TT, out, 10, 299_999).decision.action, 'none', 'scale-in right after a scale-out is flapping');
  const inn = decide(TT, out, 10, 300_000);
  assert.is(inn.decision.capacity, 2);
  assert.is(decide(TT, inn.state, 10, 300_001).decision.action, 'none', 'a second scale-in waits');
  assert.is(decide(TT, inn.state, 200, 300_001).decision.capacity, 8, 'scale-out is never held by a scale-in');
});

tt('disableScaleIn, an empty group, and bad samples', () => {
  assert.is(decide({ ...TT, disableScaleIn: true }, at(6), 10, 0).decision.action, 'none');
  const empty = { ...TT, min: 0 };
  assert.is(decide(empty, at(0), 80, 0).decision.capacity, 1, 'load on an empty group needs a first member');
  assert.is(decide(empty, at(0), 10, 0).decision.action, 'none');
  for (const bad of [NaN, Infinity, -Infinity]) {
    const r = decide(TT, at(3), bad, 0);
    assert.is(r.decision.action, 'none');
    assert.match(r.decision.reason, /not a finite number/);
  }
});

const step = suite('decide: step policy');
const STEP: StepPolicy = {
  kind: 'step',
  adjustmentType: 'change_in_capacity',
  steps: [{ upper: 30, adjustment: -1 }, { lower: 70, upper: 90, adjustment: 2 }, { lower: 90, adjustment: 4 }],
  cooldownMs: 60_000,
  min: 1,
  max: 12,
};

step('the matching step adjusts; between steps nothing happens', () => {
  assert.is(decide(STEP, at(3), 75, 0).decision.capacity, 5);
  assert.is(decide(STEP, at(3), 95, 0).decision.capacity, 7);
  assert.is(decide(STEP, at(3), 10, 0).decision.capacity, 2);
  const mid = decide(STEP, at(3), 50, 0);
  assert.is(mid.decision.action, 'none');
  assert.match(mid.decision.reason, /no step/);
});

step('one change per cooldown, in either direction (Heat cooldown)', () => {
  const s1 = decide(STEP, at(3), 95, 0).state;
  assert.is(decide(STEP, s1, 95, 59_999).decision.action, 'none');
  assert.is(decide(STEP, s1, 10, 59_999).decision.action, 'none', 'a scale-in is held too');
  assert.is(decide(STEP, s1, 10, 60_000).decision.capacity, 6);
  assert.is(decide(STEP, s1, 95, 60_000).decision.capacity, 11);
});

step('a step that changes nothing does not start a cooldown; clamps apply', () => {
  const s = decide(STEP, at(12), 95, 0);
  assert.is(s.decision.action, 'none');
  assert.equal(s.state, at(12));
  assert.is(decide(STEP, at(11), 95, 0).decision.capacity, 12);
  assert.is(decide(STEP, at(1), 10, 0).decision.action, 'none');
});

step('exact and percent adjustments with min_adjustment_step', () => {
  const exact: StepPolicy = { ...STEP, adjustmentType: 'exact_capacity', steps: [{ upper: 30, adjustment: 2 }, { lower: 70, adjustment: 8 }] };
  assert.is(decide(exact, at(3), 80, 0).decision.capacity, 8);
  assert.is(decide(exact, at(3), 10, 0).decision.capacity, 2);
  const pct: StepPolicy = { ...STEP, adjustmentType: 'percent_change_in_capacity', minAdjustmentStep: 2, steps: [{ upper: 30, adjustment: -10 }, { lower: 70, adjustment: 50 }] };
  assert.is(decide(pct, at(10), 80, 0).decision.capacity, 12, '+50% of 10 = 5, clamped to max 12');
  assert.is(decide(pct, at(4), 80, 0).decision.capacity, 6, '+50% of 4 = 2');
  assert.is(decide(pct, at(3), 80, 0).decision.capacity, 5, '+1.5 -> +1 -> min step 2');
  assert.is(decide(pct, at(5), 10, 0).decision.capacity, 3, '-0.5 -> -1 -> min step -2');
});

const props = suite('decide: invariants over random metric series');

function runSeries(p: ScalingPolicy, start: number, ticks: Array<[number, number]>) {
  let state: PolicyState = { capacity: start };
  let now = 0;
  const changes: Array<{ at: number; from: number; to: number }> = [];
  for (const [dt, sample] of ticks) {
    now += dt;
    const r = decide(p, state, sample, now);
    if (r.decision.action === 'set') {
      assert.is.not(r.decision.capacity, state.capacity, 'a set changes the capacity');
      changes.push({ at: now, from: state.capacity, to: r.decision.capacity });
    } else assert.equal(r.state, state, 'no decision, no state change');
    state = r.state;
    assert.ok(state.capacity >= p.min && state.capacity <= p.max, `capacity ${state.capacity} within bounds`);
  }
  return changes;
}

props('target tracking: bounds and both cooldowns hold for any series', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 20 }),
      fc.array(fc.tuple(fc.integer({ min: 0, max: 120_000 }), fc.double({ min: 0, max: 400, noNaN: true })), { maxLength: 60 }),
      (start, ticks) => {
        const p: TargetTrackingPolicy = { kind: 'target_tracking', target: 50, min: 2, max: 15, scaleOutCooldownMs: 30_000, scaleInCooldownMs: 90_000 };
        const inBounds = start >= p.min && start <= p.max;
        const changes = runSeries(p, start, ticks).slice(inBounds ? 0 : 1);
        let lastOut: number | undefined;
        let lastAny: number | undefined;
        for (const c of changes) {
          if (c.to > c.from) {
            if (lastOut !== undefined) assert.ok(c.at - lastOut >= p.scaleOutCooldownMs, 'scale-out cooldown');
            lastOut = c.at;
          } else if (lastAny !== undefined) assert.ok(c.at - lastAny >= p.scaleInCooldownMs, 'scale-in cooldown');
          lastAny = c.at;
        }
      },
    ),
    { numRuns: 500 },
  );
});

props('step: bounds and the single cooldown hold for any series', () => {
  fc.assert(
    fc.property(
      fc.constantFrom('change_in_capacity', 'exact_capacity', 'percent_change_in_capacity'),
      fc.array(fc.tuple(fc.integer({ min: 0, max: 120_000 }), fc.double({ min: 0, max: 100, noNaN: true })), { maxLength: 60 }),
      (type, ticks) => {
        const adj = type === 'exact_capacity' ? [1, 9] : type === 'percent_change_in_capacity' ? [-25, 60] : [-1, 2];
        const p: StepPolicy = { kind: 'step', adjustmentType: type, minAdjustmentStep: 1, cooldownMs: 45_000, min: 1, max: 9, steps: [{ upper: 30, adjustment: adj[0]! }, { lower: 70, adjustment: adj[1]! }] };
        const changes = runSeries(p, 4, ticks);
        for (let i = 1; i < changes.length; i++) assert.ok(changes[i]!.at - changes[i - 1]!.at >= p.cooldownMs, 'cooldown');
      },
    ),
    { numRuns: 500 },
  );
});

const valid = suite('checkPolicy');

function refused(p: unknown, path: string): void {
  try {
    checkPolicy(p as ScalingPolicy);
  } catch (e) {
    assert.instance(e, KilnError);
    assert.is((e as KilnError).code, 'REQUEST_INVALID');
    assert.is((e as KilnError).path, path);
    return;
  }
  assert.unreachable(`accepted, expected an error at ${path}`);
}

valid('good policies pass; each bad field is named', () => {
  assert.is(checkPolicy(TT), TT);
  assert.is(checkPolicy(STEP), STEP);
  refused({ ...TT, min: -1 }, 'policy.min');
  refused({ ...TT, min: 1.5 }, 'policy.min');
  refused({ ...TT, min: 5, max: 4 }, 'policy.max');
  refused({ ...TT, target: 0 }, 'policy.target');
  refused({ ...TT, scaleOutCooldownMs: -1 }, 'policy.scaleOutCooldownMs');
  refused({ ...TT, tolerance: 1 }, 'policy.tolerance');
  refused({ ...TT, kind: 'magic' }, 'policy.kind');
  refused({ ...STEP, adjustmentType: 'double' }, 'policy.adjustmentType');
  refused({ ...STEP, steps: [] }, 'policy.steps');
  refused({ ...STEP, steps: [{ lower: 10, upper: 5, adjustment: 1 }] }, 'policy.steps[0].upper');
  refused({ ...STEP, steps: [{ lower: 50, adjustment: 1 }, { lower: 10, upper: 60, adjustment: 2 }] }, 'policy.steps[0].lower');
  refused({ ...STEP, steps: [{ adjustment: 1.5 }] }, 'policy.steps[0].adjustment');
  refused({ ...STEP, adjustmentType: 'exact_capacity', steps: [{ adjustment: -1 }] }, 'policy.steps[0].adjustment');
  refused({ ...STEP, minAdjustmentStep: -2 }, 'policy.minAdjustmentStep');
  // Percentages may be fractional.
  checkPolicy({ ...STEP, adjustmentType: 'percent_change_in_capacity', steps: [{ adjustment: 12.5 }] });
});

capacity.run();
tt.run();
step.run();
props.run();
valid.run();
