/** Autoscaling through the pure reducers: group sizing, capacity overrides, scale-in policies, policy arithmetic. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Sim } from './sim.js';
import { scaledCapacity, scaleInRemovals } from '../src/index.js';

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
