/** Autoscaling through the pure reducers: group sizing, capacity overrides, scale-in policies, policy arithmetic. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Sim } from './sim.js';
import { nestedAsg } from './helpers.js';
import { scaledCapacity, scaleInRemovals, type ResourceType } from '../src/index.js';

const hot = (resources: Record<string, unknown>) => ({ heat_template_version: '2016-10-14', resources });

const asg = (extra: Record<string, unknown> = {}) =>
  hot({
    asg: {
      type: 'OS::Heat::AutoScalingGroup',
      properties: { min_size: 1, max_size: 6, desired_capacity: 2, resource: { type: 'OS::Heat::TestResource', properties: { value: 'm' } }, ...extra },
    },
    up: { type: 'OS::Heat::ScalingPolicy', properties: { auto_scaling_group_id: { get_resource: 'asg' }, adjustment_type: 'change_in_capacity', scaling_adjustment: 1, cooldown: 60 } },
  });

function members(sim: Sim): string[] {
  const child = sim.resource('s', 'asg')!.current!.child!;
  return Object.keys(sim.live(child)).sort((a, b) => Number(a) - Number(b));
}

test('scaledCapacity: Heat arithmetic, clamped to [min, max]', () => {
  assert.is(scaledCapacity(3, { adjustment_type: 'change_in_capacity', scaling_adjustment: 2 }, 1, 10), 5);
  assert.is(scaledCapacity(3, { adjustment_type: 'change_in_capacity', scaling_adjustment: -5 }, 1, 10), 1);
  assert.is(scaledCapacity(3, { adjustment_type: 'exact_capacity', scaling_adjustment: 12 }, 1, 10), 10);
  assert.is(scaledCapacity(10, { adjustment_type: 'percent_change_in_capacity', scaling_adjustment: 25 }, 1, 20), 12);
  assert.is(scaledCapacity(2, { adjustment_type: 'percent_change_in_capacity', scaling_adjustment: 10 }, 1, 20), 3, 'below one step rounds away from zero');
  assert.is(scaledCapacity(10, { adjustment_type: 'percent_change_in_capacity', scaling_adjustment: 10, min_adjustment_step: 3 }, 1, 20), 13);
  assert.is(scaledCapacity(10, { adjustment_type: 'percent_change_in_capacity', scaling_adjustment: -50 }, 1, 20), 5);
});

test('scaleInRemovals: newest needs none, oldest takes the lowest live indices, named first', () => {
  assert.equal(scaleInRemovals({ count: 5, removed: [] }, 3, 'newest', []), []);
  assert.equal(scaleInRemovals({ count: 5, removed: [] }, 3, 'oldest', []), [0, 1]);
  assert.equal(scaleInRemovals({ count: 4, removed: [0] }, 2, 'oldest', []), [1, 2]);
  assert.equal(scaleInRemovals({ count: 5, removed: [] }, 3, 'newest', [2]), [2]);
  assert.equal(scaleInRemovals({ count: 5, removed: [] }, 3, 'oldest', [4]), [4, 0]);
  assert.equal(scaleInRemovals({ count: 5, removed: [] }, 6, 'oldest', [1]), [], 'no scale-in: nothing removed');
  assert.equal(scaleInRemovals({ count: 5, removed: [] }, 3, 'unhealthy_first', [], [3]), [3, 0], 'unhealthy, then the oldest');
  assert.equal(scaleInRemovals({ count: 5, removed: [] }, 3, 'unhealthy_first', [4], [2, 1]), [4, 1], 'named first, then unhealthy in index order');
  assert.equal(scaleInRemovals({ count: 4, removed: [1] }, 3, 'unhealthy_first', [], [1, 9]), [0], 'unhealthy indices that are no members are skipped');
  assert.equal(scaleInRemovals({ count: 5, removed: [] }, 4, 'newest', [], [2]), [], 'newest ignores health');
});

/**
 * Members of a task type whose objects the test breaks: `fail` keys fail their create for good,
 * `broken` keys observe as ERROR (their repair waits for a permit that never comes, so they stay
 * repairing).
 */
function cloudWorld() {
  const fail = new Set<string>();
  const broken = new Set<string>();
  const member: ResourceType = {
    kind: 'task',
    name: 'Test::Member',
    properties: {},
    attributes: [],
    create: async () => ({ physicalId: null, attrs: {} }),
    update: async () => ({ physicalId: null, attrs: {} }),
    delete: async () => undefined,
    observe: async () => null,
    classify: () => ({ code: 'INTERNAL', message: 'x', transient: false }),
  };
  const task = (input: unknown) => {
    const i = input as { action: string; request: { idempotencyKey: string; physicalId?: string } };
    const key = i.request.idempotencyKey;
    const index = /\/(\d+)#/.exec(key)?.[1] ?? '';
    if (i.action === 'create' && fail.has(index)) throw Object.assign(new Error(`member ${index} cannot be made`), { code: 'QUOTA_EXCEEDED' });
    if (i.action === 'observe') return { physicalId: i.request.physicalId, attrs: {}, health: broken.has(index) ? { state: 'error', reason: 'status ERROR', repair: 'replace' } : { state: 'ok', repair: 'none' } };
    return { physicalId: `id-${key}`, attrs: {} };
  };
  const sim = new Sim({ extraTypes: [member], task, heal: { observeIntervalMs: 10_000, repairsPerSecond: 0.000001, repairBurst: 0 } });
  return { sim, fail, broken };
}

const memberGroup = (type: string, extra: Record<string, unknown>) =>
  hot({
    g:
      type === 'OS::Heat::AutoScalingGroup'
        ? { type, properties: { min_size: 0, max_size: 10, desired_capacity: 4, resource: { type: 'Test::Member' }, removal_policy: 'unhealthy_first', ...extra } }
        : { type, properties: { count: 4, resource_def: { type: 'Test::Member' }, removal_policy: 'unhealthy_first', ...extra } },
  });

function groupMembers(sim: Sim): string[] {
  const child = sim.resource('s', 'g')!.current!.child!;
  return Object.keys(sim.live(child)).sort((a, b) => Number(a) - Number(b));
}

for (const type of ['OS::Heat::AutoScalingGroup', 'OS::Heat::ResourceGroup']) {
  const resize = (sim: Sim, n: number) => sim.setDesired('s', { op: 'update', name: 's', spec: { template: memberGroup(type, {}) }, overrides: { g: n } });

  test(`${type} removal_policy unhealthy_first: a member repairing drift goes first on scale-in, then the oldest`, () => {
    const { sim, broken } = cloudWorld();
    sim.setDesired('s', { op: 'create', name: 's', spec: { template: memberGroup(type, {}) } });
    sim.run(1_000);
    assert.is(sim.stack('s').status, 'READY');
    broken.add('2');
    sim.run(15_000);
    const child = sim.resource('s', 'g')!.current!.child!;
    assert.ok(sim.resource(child, '2')!.repair, 'member 2 is waiting to be repaired');
    resize(sim, 3);
    sim.run(1_000);
    assert.equal(groupMembers(sim), ['0', '1', '3'], 'the unhealthy member was removed, not the newest');
    resize(sim, 2);
    sim.run(1_000);
    assert.equal(groupMembers(sim), ['1', '3'], 'none unhealthy left: the oldest');
    assert.is(sim.stack('s').status, 'READY');
  });

  test(`${type} removal_policy unhealthy_first: a member that failed for good is removed on scale-in and the group recovers`, () => {
    const { sim, fail } = cloudWorld();
    fail.add('1');
    sim.setDesired('s', { op: 'create', name: 's', spec: { template: memberGroup(type, {}) } });
    sim.run(1_000);
    assert.is(sim.stack('s').status, 'FAILED');
    assert.match(sim.stack('s').reason, 'member 1 cannot be made');
    resize(sim, 3);
    sim.run(1_000);
    assert.equal(groupMembers(sim), ['0', '2', '3']);
    assert.is(sim.stack('s').status, 'READY', sim.stack('s').reason);
  });
}

test('a capacity override of a group in a nested stack (`app/asg`) travels down through the nesting resource', () => {
  const sim = new Sim();
  sim.setDesired('s', { op: 'create', name: 's', spec: nestedAsg });
  sim.run();
  assert.is(sim.stack('s').status, 'READY', sim.stack('s').reason);
  const app = sim.resource('s', 'app')!.current!.child!;
  const size = () => Object.keys(sim.live(sim.resource(app, 'asg')!.current!.child!)).length;
  assert.is(size(), 1);
  sim.setDesired('s', { op: 'update', name: 's', spec: nestedAsg, overrides: { 'app/asg': 3 } });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  assert.is(size(), 3);
  assert.is(sim.resource('s', 'app')!.current!.child, app, 'the nested stack was updated in place');
  sim.setDesired('s', { op: 'update', name: 's', spec: nestedAsg });
  sim.run();
  assert.is(size(), 1, 'without the override the template size again');
});

test('removal_policy: an unknown policy is a property error', () => {
  const sim = new Sim();
  sim.setDesired('s', { op: 'create', name: 's', spec: { template: hot({ g: { type: 'OS::Heat::ResourceGroup', properties: { count: 1, resource_def: { type: 'OS::Heat::None' }, removal_policy: 'random' } } }) } });
  sim.run();
  assert.is(sim.stack('s').status, 'FAILED');
  assert.match(sim.stack('s').reason, 'removal_policy');
});

test('an AutoScalingGroup sizes by desired_capacity within [min, max]; overrides resize it; attributes follow', () => {
  const sim = new Sim();
  const template = { ...asg(), outputs: { size: { value: { get_attr: ['asg', 'current_size'] } }, outs: { value: { get_attr: ['asg', 'outputs_list', 'output'] } }, url: { value: { get_attr: ['up', 'signal_url'] } } } };
  sim.setDesired('s', { op: 'create', name: 's', spec: { template } });
  sim.run();
  assert.is(sim.stack('s').status, 'READY', sim.stack('s').reason);
  assert.equal(members(sim), ['0', '1']);
  assert.equal(sim.stack('s').outputs, { size: 2, outs: ['m', 'm'], url: 'kiln://signal/s/up' });
  sim.setDesired('s', { op: 'update', name: 's', spec: { template }, overrides: { asg: 5 } });
  sim.run();
  assert.equal(members(sim), ['0', '1', '2', '3', '4']);
  assert.is(sim.stack('s').outputs!.size, 5);
  sim.setDesired('s', { op: 'update', name: 's', spec: { template }, overrides: { asg: 50 } });
  sim.run();
  assert.is(members(sim).length, 6, 'clamped to max_size');
  sim.setDesired('s', { op: 'update', name: 's', spec: { template }, overrides: { asg: 0 } });
  sim.run();
  assert.equal(members(sim), ['0'], 'clamped to min_size; newest removed first');
});

test('scale-in with removal_policy oldest removes the oldest members; newest-wins across quick changes', () => {
  const sim = new Sim();
  const template = asg({ removal_policy: 'oldest' });
  sim.setDesired('s', { op: 'create', name: 's', spec: { template }, overrides: { asg: 5 } });
  sim.run();
  assert.equal(members(sim), ['0', '1', '2', '3', '4']);
  sim.setDesired('s', { op: 'update', name: 's', spec: { template }, overrides: { asg: 3 } });
  sim.run();
  assert.equal(members(sim), ['2', '3', '4']);
  // Several decisions before any completes: the last one wins.
  for (const n of [6, 2, 4, 1, 3]) {
    sim.setDesired('s', { op: 'update', name: 's', spec: { template }, overrides: { asg: n } });
    sim.step(3);
  }
  sim.run();
  assert.is(members(sim).length, 3);
  assert.is(sim.stack('s').status, 'READY');
});

test.run();
