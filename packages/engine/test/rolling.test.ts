/**
 * Group update policies through the pure reducers: ResourceGroup rolling_update and batch_create
 * (update_policy), AutoScalingGroup rolling_updates. Batches are observed through the members'
 * events (virtual time): how many act at once, in which order, with which pauses.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Sim } from './sim.js';
import type { EngineEvent } from '../src/index.js';

const hot = (resources: Record<string, unknown>) => ({ heat_template_version: '2016-10-14', resources });

/** A ResourceGroup of TestResources whose creates and updates take 5 s. */
const group = (value: string, count: number, updatePolicy: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  hot({
    g: {
      type: 'OS::Heat::ResourceGroup',
      properties: { count, resource_def: { type: 'OS::Heat::TestResource', properties: { value, action_wait_secs: { create: 5, update: 5 }, ...extra } } },
      update_policy: updatePolicy,
    },
  });

interface Span {
  member: number;
  start: number;
  end: number;
}

/** The members' actions (`action`) since event `from`, as time spans, by start time. */
function spans(events: readonly EngineEvent[], from: number, action: 'CREATE' | 'UPDATE'): Span[] {
  const open = new Map<number, number>();
  const out: Span[] = [];
  for (const e of events.slice(from)) {
    const m = /^g\/(\d+)$/.exec(e.resource ?? '');
    if (!m || e.action !== action) continue;
    const member = Number(m[1]);
    if (e.status === 'IN_PROGRESS') open.set(member, e.ts);
    else if (e.status === 'COMPLETE' && open.has(member)) {
      out.push({ member, start: open.get(member)!, end: e.ts });
      open.delete(member);
    }
  }
  return out.sort((a, b) => a.start - b.start || a.member - b.member);
}

/** The most spans open at once. */
function maxConcurrent(s: readonly Span[]): number {
  let most = 0;
  for (const x of s) most = Math.max(most, s.filter((y) => y.start <= x.start && y.end > x.start).length);
  return most;
}

/** Spans grouped by start time: the batches. */
function batches(s: readonly Span[]): Span[][] {
  const out: Span[][] = [];
  for (const x of s) {
    const last = out.at(-1);
    if (last && last[0]!.start === x.start) last.push(x);
    else out.push([x]);
  }
  return out;
}

function values(sim: Sim): string[] {
  const child = sim.resource('s', 'g')!.current!.child!;
  return Object.keys(sim.live(child))
    .sort((a, b) => Number(a) - Number(b))
    .map((i) => String(sim.resource(child, i)!.current!.props.value));
}

test('rolling_update: a changed member definition reaches the members max_batch_size at a time, in index order, pausing between batches', () => {
  const sim = new Sim();
  const policy = { rolling_update: { max_batch_size: 2, pause_time: 10 } };
  sim.setDesired('s', { op: 'create', name: 's', spec: { template: group('v1', 6, policy) } });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  const from = sim.events.length;
  sim.setDesired('s', { op: 'update', name: 's', spec: { template: group('v2', 6, policy) } });
  let sawConverging = false;
  sim.run(24 * 3600_000, 2_000_000, () => {
    if (values(sim).some((v) => v === 'v1')) sawConverging ||= sim.stack('s').status === 'CONVERGING';
  });
  assert.ok(sawConverging, 'CONVERGING while members still had the old definition');
  assert.is(sim.stack('s').status, 'READY');
  assert.equal(values(sim), ['v2', 'v2', 'v2', 'v2', 'v2', 'v2']);
  const s = spans(sim.events, from, 'UPDATE');
  assert.is(s.length, 6, 'every member updated once');
  assert.is(maxConcurrent(s), 2);
  const b = batches(s);
  assert.equal(b.map((x) => x.map((y) => y.member)), [[0, 1], [2, 3], [4, 5]]);
  for (let k = 1; k < b.length; k++) {
    const prevEnd = Math.max(...b[k - 1]!.map((x) => x.end));
    assert.ok(b[k]![0]!.start - prevEnd >= 10_000, `pause of 10 s before batch ${k}: ${b[k]![0]!.start - prevEnd} ms`);
  }
});

test('rolling_update: min_in_service bounds the batch (4 members, at least 3 in service: one at a time)', () => {
  const sim = new Sim();
  const policy = { rolling_update: { max_batch_size: 3, min_in_service: 3 } };
  sim.setDesired('s', { op: 'create', name: 's', spec: { template: group('v1', 4, policy) } });
  sim.run();
  const from = sim.events.length;
  sim.setDesired('s', { op: 'update', name: 's', spec: { template: group('v2', 4, policy) } });
  sim.run();
  const s = spans(sim.events, from, 'UPDATE');
  assert.is(s.length, 4);
  assert.is(maxConcurrent(s), 1);
  assert.equal(values(sim), ['v2', 'v2', 'v2', 'v2']);
});

test('rolling_update: a newer generation mid-rollout re-targets (newest wins, no lock); the new rollout is batched too', () => {
  const sim = new Sim();
  const policy = { rolling_update: { max_batch_size: 2, pause_time: 10 } };
  sim.setDesired('s', { op: 'create', name: 's', spec: { template: group('v1', 6, policy) } });
  sim.run();
  sim.setDesired('s', { op: 'update', name: 's', spec: { template: group('v2', 6, policy) } });
  sim.run(8_000);
  assert.equal(values(sim), ['v2', 'v2', 'v1', 'v1', 'v1', 'v1'], 'the first batch is done, the rest wait');
  const from = sim.events.length;
  sim.setDesired('s', { op: 'update', name: 's', spec: { template: group('v3', 6, policy) } });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  assert.equal(values(sim), ['v3', 'v3', 'v3', 'v3', 'v3', 'v3'], 'no member was left at v1 or v2');
  const s = spans(sim.events, from, 'UPDATE');
  assert.is(maxConcurrent(s), 2);
  assert.equal(batches(s).map((x) => x.map((y) => y.member)), [[0, 1], [2, 3], [4, 5]]);
});

test('rolling_update: a failing batch stops the rollout; the rest keep the old definition until a newer generation', () => {
  const sim = new Sim();
  const policy = { rolling_update: { max_batch_size: 2 } };
  sim.setDesired('s', { op: 'create', name: 's', spec: { template: group('v1', 6, policy) } });
  sim.run();
  sim.setDesired('s', { op: 'update', name: 's', spec: { template: group('v2', 6, policy, { fail: true }) } });
  sim.run();
  assert.is(sim.stack('s').status, 'FAILED');
  const child = sim.resource('s', 'g')!.current!.child!;
  const untouched = ['2', '3', '4', '5'].map((i) => sim.resource(child, i)!.current!.props.value);
  assert.equal(untouched, ['v1', 'v1', 'v1', 'v1'], 'only the first batch tried the failing definition');
  const from = sim.events.length;
  sim.setDesired('s', { op: 'update', name: 's', spec: { template: group('v3', 6, policy) } });
  sim.run();
  assert.is(sim.stack('s').status, 'READY', sim.stack('s').reason);
  assert.is(sim.resource('s', 'g')!.current!.child, child, 'the group is updated again, not replaced whole');
  assert.equal(values(sim), ['v3', 'v3', 'v3', 'v3', 'v3', 'v3']);
  assert.is(maxConcurrent(spans(sim.events, from, 'UPDATE')), 2, 'and rolled out in batches again');
});

test('rolling_update: a change of the count alone is not rolled (new members are made at once, none is touched)', () => {
  const sim = new Sim();
  const policy = { rolling_update: { max_batch_size: 1 } };
  sim.setDesired('s', { op: 'create', name: 's', spec: { template: group('v1', 2, policy) } });
  sim.run();
  const from = sim.events.length;
  sim.setDesired('s', { op: 'update', name: 's', spec: { template: group('v1', 5, policy) } });
  sim.run();
  assert.equal(spans(sim.events, from, 'UPDATE'), []);
  const created = spans(sim.events, from, 'CREATE');
  assert.is(created.length, 3);
  assert.is(maxConcurrent(created), 3);
});

test('rolling_update with a member removed in the same generation: the batch passes over it and leaves no record of it', () => {
  const sim = new Sim();
  const policy = { rolling_update: { max_batch_size: 10 } };
  sim.setDesired('s', { op: 'create', name: 's', spec: { template: group('v1', 4, policy) } });
  sim.run();
  const shrunk = group('v2', 3, policy);
  ((shrunk.resources.g as { properties: Record<string, unknown> }).properties).removal_policies = [{ resource_list: ['1'] }];
  sim.setDesired('s', { op: 'update', name: 's', spec: { template: shrunk } });
  sim.run();
  assert.is(sim.stack('s').status, 'READY', sim.stack('s').reason);
  assert.equal(values(sim), ['v2', 'v2', 'v2']);
  const child = sim.resource('s', 'g')!.current!.child!;
  assert.equal(Object.keys(sim.live(child)).sort(), ['0', '2', '3']);
  assert.is(sim.states.has(`res/${child}/1`), false, 'the removed member left no record');
});

test('batch_create: the first create makes max_batch_size members at a time with pauses; a later scale-up is not batched', () => {
  const sim = new Sim();
  const policy = { batch_create: { max_batch_size: 2, pause_time: 5 } };
  sim.setDesired('s', { op: 'create', name: 's', spec: { template: group('v1', 5, policy) } });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  const s = spans(sim.events, 0, 'CREATE');
  assert.is(s.length, 5);
  assert.is(maxConcurrent(s), 2);
  const b = batches(s);
  assert.equal(b.map((x) => x.map((y) => y.member)), [[0, 1], [2, 3], [4]]);
  for (let k = 1; k < b.length; k++) assert.ok(b[k]![0]!.start - Math.max(...b[k - 1]!.map((x) => x.end)) >= 5_000, 'paused');
});

test('AutoScalingGroup rolling_updates: members are replaced one at a time', () => {
  const sim = new Sim();
  const asg = (value: string) =>
    hot({
      g: {
        type: 'OS::Heat::AutoScalingGroup',
        properties: {
          min_size: 3,
          max_size: 5,
          rolling_updates: { max_batch_size: 1, min_in_service: 1 },
          resource: { type: 'OS::Heat::TestResource', properties: { value, update_replace: true, action_wait_secs: { create: 5 } } },
        },
      },
    });
  sim.setDesired('s', { op: 'create', name: 's', spec: { template: asg('v1') } });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  const from = sim.events.length;
  sim.setDesired('s', { op: 'update', name: 's', spec: { template: asg('v2') } });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  assert.equal(values(sim), ['v2', 'v2', 'v2']);
  // A replacement is a create of a new incarnation (create before delete), reported as UPDATE.
  const s = spans(sim.events, from, 'UPDATE');
  assert.is(s.length, 3);
  assert.is(maxConcurrent(s), 1);
});

test("AutoScalingGroup without rolling_updates: Heat's default rolls a changed member definition out one at a time", () => {
  const sim = new Sim();
  const asg = (value: string) =>
    hot({ g: { type: 'OS::Heat::AutoScalingGroup', properties: { min_size: 3, max_size: 5, resource: { type: 'OS::Heat::TestResource', properties: { value, action_wait_secs: { update: 5 } } } } } });
  sim.setDesired('s', { op: 'create', name: 's', spec: { template: asg('v1') } });
  sim.run();
  const from = sim.events.length;
  sim.setDesired('s', { op: 'update', name: 's', spec: { template: asg('v2') } });
  sim.run();
  assert.equal(values(sim), ['v2', 'v2', 'v2']);
  const s = spans(sim.events, from, 'UPDATE');
  assert.is(s.length, 3);
  assert.is(maxConcurrent(s), 1);
});

test('update_policy values are checked', () => {
  const sim = new Sim();
  sim.setDesired('s', { op: 'create', name: 's', spec: { template: group('v1', 2, { rolling_update: { max_batch_size: 0 } }) } });
  sim.run();
  assert.is(sim.stack('s').status, 'FAILED');
  assert.match(sim.stack('s').reason, 'rolling_update.max_batch_size');
});

test.run();
