/**
 * Faults around the resource actor's actions, through the pure reducers: a re-targeted action's
 * events stay at their generation, a failed create never holds up heal, new dependency data cuts a
 * retry short, a broken resource's first replacement is immediate, group members are replaced
 * without a cap on attempts (template members too, when their child stack failed by broken
 * resources only).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Effect } from '@kiln/runtime';
import { Sim } from './sim.js';
import { builtinTypes, HotTemplateAdapter, reduceResource, RETRY_BASE_MS, TypeRegistry, type EngineEvent, type HealConfig, type ResourceMsg, type ResourceState, type ResourceType } from '../src/index.js';
import { resourceBehavior, type ResourceDeps } from '../src/resource.js';

RETRY_BASE_MS.value = 1_000;

/** No observation (the sims below run to quiescence: a poll would keep them busy for a virtual day). */
const NO_HEAL: HealConfig = { observeIntervalMs: 0, repairsPerSecond: 5, repairBurst: 20 };

const hot = (resources: Record<string, unknown>) => ({ heat_template_version: '2016-10-14', resources });

/** A task type with an update-allowed `size` and a `server` reference (an attachment's). */
function taskType(name: string): ResourceType {
  return {
    kind: 'task',
    name,
    properties: { size: { type: 'integer', default: 1, updateAllowed: true }, server: { type: 'string' } },
    attributes: [],
    create: async () => ({ physicalId: null, attrs: {} }),
    update: async () => ({ physicalId: null, attrs: {} }),
    delete: async () => undefined,
    observe: async () => null,
    classify: () => ({ code: 'INTERNAL', message: 'x', transient: false }),
  };
}

/** One resource actor driven by hand: each message is one reduction; effects are kept per step. */
class Actor {
  state: ResourceState;
  effects: readonly Effect[] = [];
  readonly events: EngineEvent[] = [];
  now = 1_000_000;
  private n = 0;
  private readonly deps: ResourceDeps;

  constructor(
    readonly self: string,
    types: ResourceType[],
  ) {
    this.deps = { types: new TypeRegistry([...builtinTypes, ...types]), template: new HotTemplateAdapter() };
    this.state = resourceBehavior(this.deps).initial(self);
  }

  feed(msg: unknown): readonly Effect[] {
    const r = reduceResource(this.deps, this.state, msg as ResourceMsg, { self: this.self, msgId: `m${++this.n}`, now: this.now });
    assert.ok(r.state, 'the actor keeps its record');
    this.state = r.state!;
    this.effects = r.effects;
    for (const e of r.effects) if (e.type === 'emit') this.events.push(e.event as EngineEvent);
    return r.effects;
  }

  desire(gen: number, type: string, properties: Record<string, unknown>, extra: { requires?: string[]; dependants?: string[]; parent?: string } = {}): readonly Effect[] {
    const [, stackId = ''] = this.self.split('/');
    return this.feed({
      kind: 'desire',
      gen,
      parent: extra.parent ?? `shard/${stackId}/n0`,
      slot: 0,
      tenant: 'default',
      stackId,
      stackName: stackId,
      def: { type, properties, scope: null, deletionPolicy: 'Delete', updatePolicy: null, metadata: null },
      requires: extra.requires ?? [],
      dependants: extra.dependants ?? [],
    });
  }

  /** The provider task the last step started (at most one). */
  task(): { name: string; input: { action: string; request: { idempotencyKey: string; properties: Record<string, unknown> } } } | undefined {
    return this.effects.find((e) => e.type === 'task') as never;
  }

  finish(task: { name: string }, value: unknown = { physicalId: `phys-${this.n}`, attrs: {} }): readonly Effect[] {
    return this.feed({ kind: '$task', name: task.name, ok: true, value, idempotencyKey: 'k' });
  }

  failTask(task: { name: string }, code: string, message = code): readonly Effect[] {
    return this.feed({ kind: '$task', name: task.name, ok: false, error: { code, message }, idempotencyKey: 'k' });
  }

  timers(name: string): Array<Extract<Effect, { type: 'setTimer' }>> {
    return this.effects.filter((e): e is Extract<Effect, { type: 'setTimer' }> => e.type === 'setTimer' && e.name === name);
  }
}

/**
 * The order a follower of a resource's events relies on (the chaos suite's check): generations
 * never go back, and within one generation no IN_PROGRESS follows a COMPLETE of the same action
 * (a CHECK, i.e. a repair, starts over).
 */
function eventOrderViolations(events: readonly EngineEvent[]): string[] {
  const out: string[] = [];
  const last = new Map<string, { gen: number; completed: Set<string> }>();
  for (const e of events) {
    if (!e.resource) continue;
    const cur = last.get(e.resource);
    const show = `${e.resource} gen ${e.gen} ${e.action}_${e.status} "${e.reason}"`;
    if (cur && e.gen < cur.gen) {
      out.push(`${show}: after generation ${cur.gen}`);
      continue;
    }
    const at = cur && cur.gen === e.gen ? cur : { gen: e.gen, completed: new Set<string>() };
    last.set(e.resource, at);
    if (e.action === 'CHECK') {
      at.completed.clear();
      continue;
    }
    if (e.status === 'IN_PROGRESS' && at.completed.has(e.action)) out.push(`${show}: after its ${e.action}_COMPLETE`);
    if (e.status === 'COMPLETE') at.completed.add(e.action);
  }
  return out;
}

// ---- 1. a re-targeted action reports at its own generation --------------------------------

test('an update re-targeted while it runs completes at its own generation; the newer one follows as IN_PROGRESS then COMPLETE', () => {
  const a = new Actor('res/s/r', [taskType('Test::Server')]);
  a.desire(1, 'Test::Server', { size: 1 });
  a.finish(a.task()!);
  assert.is(a.state.status, 'COMPLETE');
  a.desire(2, 'Test::Server', { size: 2 });
  const update2 = a.task()!;
  assert.is(update2.input.action, 'update');
  a.desire(3, 'Test::Server', { size: 3 });
  assert.is(a.task(), undefined, 'a provider call is never interrupted');
  a.finish(update2);
  const update3 = a.task()!;
  assert.is(update3.input.request.properties.size, 3, 'generation 3 is worked on at once');
  a.finish(update3);
  const seen = a.events.map((e) => `${e.gen}:${e.action}_${e.status}`);
  assert.equal(seen, ['1:CREATE_IN_PROGRESS', '1:CREATE_COMPLETE', '2:UPDATE_IN_PROGRESS', '2:UPDATE_COMPLETE', '3:UPDATE_IN_PROGRESS', '3:UPDATE_COMPLETE']);
  assert.equal(eventOrderViolations(a.events), []);
});

test('a create re-targeted while it runs completes as CREATE at its generation, before the newer update starts', () => {
  const a = new Actor('res/s/r', [taskType('Test::Server')]);
  a.desire(1, 'Test::Server', { size: 1 });
  const create1 = a.task()!;
  a.desire(2, 'Test::Server', { size: 2 });
  a.finish(create1);
  assert.equal(
    a.events.map((e) => `${e.gen}:${e.action}_${e.status}`),
    ['1:CREATE_IN_PROGRESS', '1:CREATE_COMPLETE', '2:UPDATE_IN_PROGRESS'],
  );
  assert.is(a.state.status, 'IN_PROGRESS', 'generation 2 is not done');
});

test('overlapping updates of slow cloud resources: every resource\'s events stay in order (no COMPLETE at a generation before its work)', () => {
  for (const seed of ['e1', 'e2', 'e3', 'e4', 'e5']) {
    const sim = new Sim({
      seed,
      tree: { leaf: 4, fanout: 3 },
      heal: NO_HEAL,
      extraTypes: [taskType('Test::Server')],
      task: (input) => ({ physicalId: `id-${(input as { request: { idempotencyKey: string } }).request.idempotencyKey}`, attrs: {} }),
      taskMs: () => 1_000,
    });
    const spec = (size: number) => ({
      template: hot(Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`r${i}`, { type: 'Test::Server', properties: { size }, ...(i > 0 ? { depends_on: [`r${i - 1}`] } : {}) }]))),
    });
    sim.setDesired('s', { op: 'create', name: 's', spec: spec(1) });
    sim.run(2_500);
    sim.setDesired('s', { op: 'update', name: 's', spec: spec(2) });
    sim.run(1_500);
    sim.setDesired('s', { op: 'update', name: 's', spec: spec(3) });
    sim.run(700);
    sim.setDesired('s', { op: 'update', name: 's', spec: spec(4) });
    sim.run();
    assert.is(sim.stack('s').status, 'READY', seed);
    assert.is(sim.stack('s').gen, 4);
    for (let i = 0; i < 8; i++) assert.is(sim.resource('s', `r${i}`)!.current!.props.size, 4);
    assert.equal(eventOrderViolations(sim.events), [], seed);
    assert.ok(sim.events.some((e) => e.resource && e.status === 'COMPLETE' && e.gen === 4), 'the last generation completes');
  }
});

test('an update that fails permanently after it was re-targeted fails its own generation; the newer one is still attempted', () => {
  const a = new Actor('res/s/r', [taskType('Test::Server')]);
  a.desire(1, 'Test::Server', { size: 1 });
  a.finish(a.task()!, { physicalId: 'srv-0', attrs: {} });
  a.desire(2, 'Test::Server', { size: 2 });
  const update2 = a.task()!;
  a.desire(3, 'Test::Server', { size: 3 });
  a.failTask(update2, 'REQUEST_INVALID', 'size 2 is not offered');
  assert.is(a.state.failedGen, 0, 'generation 3 is not failed unattempted');
  const next = a.task()!;
  assert.is(next.input.action, 'create', 'the failed incarnation is replaced for generation 3');
  assert.is(next.input.request.properties.size, 3);
  a.finish(next, { physicalId: 'srv-1', attrs: {} });
  assert.equal(
    a.events.filter((e) => e.gen >= 2).map((e) => `${e.gen}:${e.action}_${e.status}`),
    ['2:UPDATE_IN_PROGRESS', '2:UPDATE_FAILED', '3:UPDATE_IN_PROGRESS', '3:UPDATE_COMPLETE'],
  );
  assert.equal(eventOrderViolations(a.events), []);
});

test('marked unhealthy while a re-targeted update runs: every event stays in order, the repair is announced again before it starts', () => {
  const a = new Actor('res/s/r', [taskType('Test::Server')]);
  a.desire(1, 'Test::Server', { size: 1 });
  a.finish(a.task()!, { physicalId: 'srv-0', attrs: {} });
  a.desire(2, 'Test::Server', { size: 2 });
  const update2 = a.task()!;
  a.desire(3, 'Test::Server', { size: 3 });
  a.feed({ kind: 'unhealthy', reason: 'disk' });
  a.feed({ kind: 'permit' });
  a.finish(update2, { physicalId: 'srv-0', attrs: {} });
  const replacement = a.task()!;
  assert.is(replacement.input.action, 'create', 'the granted repair replaces it, with generation 3\'s properties');
  assert.is(replacement.input.request.properties.size, 3);
  a.finish(replacement, { physicalId: 'srv-1', attrs: {} });
  assert.equal(
    a.events.filter((e) => e.gen >= 2).map((e) => `${e.gen}:${e.action}_${e.status}`),
    ['2:UPDATE_IN_PROGRESS', '2:CHECK_FAILED', '2:UPDATE_COMPLETE', '3:CHECK_FAILED', '3:UPDATE_IN_PROGRESS', '3:UPDATE_COMPLETE'],
  );
  assert.equal(eventOrderViolations(a.events), []);
});

// ---- 2. a failed create never holds up heal -------------------------------------------------

test('a failed create (no physical id) is deleted by key at once, without waiting for dependants; the current incarnation is observed meanwhile', () => {
  const a = new Actor('res/s/srv', [taskType('Test::Server')]);
  a.desire(1, 'Test::Server', { size: 1 }, { dependants: ['att'] });
  a.failTask(a.task()!, 'RESOURCE_ERROR', 'server went to ERROR');
  let t = a.task()!;
  assert.is(t.input.action, 'create');
  assert.is(t.input.request.idempotencyKey, 'res/s/srv#1', 'a new incarnation');
  a.finish(t, { physicalId: 'srv-1', attrs: {} });
  t = a.task()!;
  assert.ok(t, 'the failed create is cleaned up before any dependant moved');
  assert.is(t.input.action, 'delete');
  assert.is(t.input.request.idempotencyKey, 'res/s/srv#0', 'found by its key');
  a.finish(t, null);
  assert.equal(a.state.old, []);
  assert.ok(a.state.observeAt !== null, 'the current one is watched');
});

test('while a replaced incarnation waits for its dependants, the current one is still observed (and repaired when gone)', () => {
  const a = new Actor('res/s/srv', [taskType('Test::Server')]);
  a.desire(1, 'Test::Server', { server: 'a' }, { dependants: ['att'] });
  a.finish(a.task()!, { physicalId: 'srv-0', attrs: {} });
  // Generation 2 replaces it (`server` is not update-allowed); the dependant has not moved yet.
  a.desire(2, 'Test::Server', { server: 'b' }, { dependants: ['att'] });
  a.finish(a.task()!, { physicalId: 'srv-1', attrs: {} });
  assert.is(a.state.old.length, 1);
  assert.is(a.task(), undefined, 'the old incarnation waits for the dependant');
  assert.ok(a.state.observeAt !== null, 'an observation is armed');
  a.feed({ kind: 'check' });
  const observe = a.task()!;
  assert.is(observe.input.action, 'observe');
  a.finish(observe, null);
  assert.is(a.state.repair?.kind, 'recreate', 'the vanished current incarnation is to be recreated');
});

test('deadlock: a server whose first create failed vanishes before its attachment is made; it is recreated and the attachment made against the new one', () => {
  const objects = new Map<string, string>(); // key -> physical id
  let serverCreates = 0;
  const calls: string[] = [];
  const task = (input: unknown) => {
    const i = input as { type: string; action: string; request: { idempotencyKey: string; properties: Record<string, unknown> } };
    const key = i.request.idempotencyKey;
    calls.push(`${i.action}:${key}`);
    if (i.type === 'Test::Server') {
      if (i.action === 'create') {
        serverCreates++;
        objects.set(key, `srv-${key}`);
        // The first create breaks (the object exists, in ERROR); the second one vanishes at once.
        if (serverCreates === 1) throw Object.assign(new Error('server went to ERROR'), { code: 'RESOURCE_ERROR' });
        if (serverCreates === 2) objects.delete(key);
        return { physicalId: `srv-${key}`, attrs: {} };
      }
      if (i.action === 'delete') {
        objects.delete(key);
        return null;
      }
      if (i.action === 'observe') return objects.has(key) ? { physicalId: objects.get(key), attrs: {}, health: { state: 'ok', repair: 'none' } } : null;
    }
    if (i.action === 'create') {
      const server = String(i.request.properties.server);
      if (![...objects.values()].includes(server)) throw Object.assign(new Error(`server ${server} is gone`), { code: 'TRANSIENT' });
      objects.set(key, `att-${server}`);
      return { physicalId: `att-${server}`, attrs: {} };
    }
    if (i.action === 'delete') objects.delete(key);
    return { physicalId: null, attrs: {} };
  };
  const heal: HealConfig = { observeIntervalMs: 10_000, repairsPerSecond: 5, repairBurst: 20 };
  const sim = new Sim({ extraTypes: [taskType('Test::Server'), taskType('Test::Attachment')], task, heal, taskMs: () => 200 });
  sim.setDesired('s', {
    op: 'create',
    name: 's',
    spec: { template: hot({ srv: { type: 'Test::Server' }, att: { type: 'Test::Attachment', properties: { server: { get_resource: 'srv' } } } }) },
  });
  sim.run(120_000);
  assert.is(sim.stack('s').status, 'READY', `stack ${sim.stack('s').status}: ${calls.join(' ')}`);
  const srv = sim.resource('s', 'srv')!;
  assert.is(srv.current!.physicalId, 'srv-res/s/srv#2', 'recreated as a third incarnation');
  assert.equal(srv.old, []);
  assert.is(sim.resource('s', 'att')!.current!.physicalId, 'att-srv-res/s/srv#2', 'attached to the new server');
  assert.equal([...objects.keys()].sort(), ['res/s/att#0', 'res/s/srv#2'], 'nothing leaked');
});

// ---- 3. new dependency data cuts a retry short ----------------------------------------------

test('new data from a dependency cuts a pending retry short: the retry runs at once; the same data again does not', () => {
  const a = new Actor('res/s/att', [taskType('Test::Attachment')]);
  const ready = (ref: string) => ({ kind: 'ready', from: 'srv', data: { gen: 1, ref, attrs: {}, type: 'Test::Server' } });
  a.feed(ready('srv-0'));
  a.desire(1, 'Test::Attachment', { server: 'x' }, { requires: ['srv'] });
  let t = a.task()!;
  for (let i = 0; i < 5; i++) {
    a.failTask(t, 'TRANSIENT', 'server gone');
    assert.is(a.task(), undefined, 'waiting for the retry timer');
    assert.is(a.timers('retry').length, 1);
    a.now = a.state.retryAt!;
    a.feed({ kind: '$timer', name: 'retry', msg: undefined });
    t = a.task()!;
  }
  a.failTask(t, 'TRANSIENT', 'server gone');
  assert.ok(a.state.retryAt! - a.now >= 16_000, 'a long backoff by now');
  a.feed(ready('srv-0'));
  assert.ok(a.state.retryAt !== null, 'the same data again: the backoff stands');
  assert.is(a.task(), undefined);
  a.feed(ready('srv-1'));
  assert.ok(a.effects.some((e) => e.type === 'cancelTimer' && e.name === 'retry'), 'the retry timer is cancelled');
  assert.is(a.state.retryAt, null);
  assert.is(a.task()?.input.action, 'create', 'retried at once');
  a.finish(a.task()!);
  assert.is(a.state.status, 'COMPLETE');
});

// ---- 4. the first replacement of a broken resource is immediate -----------------------------

test('a broken create (RESOURCE_ERROR) is replaced at once the first time; the backoff applies from the second', () => {
  const a = new Actor('res/s/srv', [taskType('Test::Server')]);
  a.desire(1, 'Test::Server', { size: 1 });
  a.failTask(a.task()!, 'RESOURCE_ERROR', 'status ERROR');
  assert.equal(a.timers('retry'), [], 'no retry timer');
  assert.is(a.task()?.input.request.idempotencyKey, 'res/s/srv#1', 'the replacement started in the same step');
  assert.ok(a.events.some((e) => e.reason === 'Replacing after: status ERROR'), 'the failure is in the events');
  a.failTask(a.task()!, 'RESOURCE_ERROR', 'status ERROR');
  assert.is(a.timers('retry').length, 1, 'the second waits');
  const wait = a.timers('retry')[0]!.at - a.now;
  assert.ok(wait >= 500 && wait <= 1_000, `first backoff step: ${wait} ms`);
});

test('a broken in-place update (RESOURCE_ERROR) is replaced at once', () => {
  const a = new Actor('res/s/srv', [taskType('Test::Server')]);
  a.desire(1, 'Test::Server', { size: 1 });
  a.finish(a.task()!, { physicalId: 'srv-0', attrs: {} });
  a.desire(2, 'Test::Server', { size: 2 });
  assert.is(a.task()?.input.action, 'update');
  a.failTask(a.task()!, 'RESOURCE_ERROR', 'status ERROR');
  assert.equal(a.timers('retry'), []);
  assert.is(a.task()?.input.action, 'create');
  assert.is(a.task()?.input.request.idempotencyKey, 'res/s/srv#1');
});

// ---- 5. group members are replaced without a cap on attempts --------------------------------

test('a group member that keeps failing to boot is replaced past the attempt cap (backoff capped); a plain resource still gives up', () => {
  const failures = new Map<string, number>();
  const task = (input: unknown) => {
    const i = input as { action: string; request: { idempotencyKey: string; name: string } };
    if (i.action === 'create') {
      // Member 1 and the plain resource fail their first 10 boots.
      const who = i.request.idempotencyKey.replace(/#\d+$/, '');
      const n = (failures.get(who) ?? 0) + 1;
      failures.set(who, n);
      if ((who.endsWith('/1') || who.endsWith('/plain')) && n <= 10) throw Object.assign(new Error('boot failed'), { code: 'RESOURCE_ERROR' });
    }
    return { physicalId: i.action === 'delete' ? null : `id-${i.request.idempotencyKey}`, attrs: {} };
  };
  const sim = new Sim({ extraTypes: [taskType('Test::Server')], task, heal: NO_HEAL });
  sim.setDesired('s', { op: 'create', name: 's', spec: { template: hot({ g: { type: 'OS::Heat::ResourceGroup', properties: { count: 3, resource_def: { type: 'Test::Server' } } } }) } });
  sim.run();
  assert.is(sim.stack('s').status, 'READY', sim.stack('s').reason);
  const child = sim.resource('s', 'g')!.current!.child!;
  assert.is(sim.resource(child, '1')!.current!.physicalId, `id-res/${child}/1#10`, 'the eleventh incarnation');
  assert.equal(sim.resource(child, '1')!.old, [], 'the failed boots were deleted by key');
  const retries = sim.events.filter((e) => e.resource === 'g/1' && e.reason.startsWith('Retrying in'));
  const waits = retries.map((e) => Number(/Retrying in (\d+) ms/.exec(e.reason)![1]));
  assert.ok(waits.length >= 8 && waits.every((w) => w <= 60_000), `backoff capped: ${waits.join(', ')}`);
  assert.ok(waits.some((w) => w >= 30_000), 'and it grew');

  const plain = new Sim({ extraTypes: [taskType('Test::Server')], task, heal: NO_HEAL });
  plain.setDesired('p', { op: 'create', name: 'p', spec: { template: hot({ plain: { type: 'Test::Server' } }) } });
  plain.run();
  assert.is(plain.stack('p').status, 'FAILED');
  assert.match(plain.stack('p').reason, 'gave up after 6 attempts');
});

test('a template member whose child stack failed by a server that never booted is replaced whole; a template error in a member stays permanent', () => {
  const task = (input: unknown) => {
    const i = input as { action: string; request: { idempotencyKey: string } };
    // Every boot in member 1's first child stack fails: its server gives up after 6, the child is FAILED.
    if (i.action === 'create' && /-1-0\/srv#\d+$/.test(i.request.idempotencyKey)) throw Object.assign(new Error('boot failed'), { code: 'RESOURCE_ERROR' });
    return { physicalId: i.action === 'delete' ? null : `id-${i.request.idempotencyKey}`, attrs: {} };
  };
  const spec = (member: Record<string, unknown>) => ({
    template: hot({ g: { type: 'OS::Heat::ResourceGroup', properties: { count: 3, resource_def: { type: 'My::Member' } } } }),
    environment: { resource_registry: { 'My::Member': 'member.yaml' } },
    files: { 'member.yaml': JSON.stringify({ heat_template_version: '2016-10-14', resources: { srv: member } }) },
  });
  const sim = new Sim({ extraTypes: [taskType('Test::Server')], task, heal: NO_HEAL });
  sim.setDesired('s', { op: 'create', name: 's', spec: spec({ type: 'Test::Server' }) });
  sim.run();
  assert.is(sim.stack('s').status, 'READY', sim.stack('s').reason);
  const group = sim.resource('s', 'g')!.current!.child!;
  const m1 = sim.resource(group, '1')!;
  assert.is(m1.current!.n, 1, 'a second child stack');
  assert.equal(m1.old, [], 'the failed child was deleted');
  assert.is(sim.stack(`${group}-1-0`).status, 'DELETED');
  assert.is(sim.physicalCount(`res/${group}-1-0/`), 0, 'nothing left of it');
  assert.is(sim.resource(`${group}-1-1`, 'srv')!.current!.physicalId, `id-res/${group}-1-1/srv#0`);

  // A property error in the member template: no copy can work, the group fails at once.
  const bad = new Sim({ extraTypes: [taskType('Test::Server')], task, heal: NO_HEAL });
  bad.setDesired('b', { op: 'create', name: 'b', spec: spec({ type: 'Test::Server', properties: { size: 'large' } }) });
  bad.run();
  assert.is(bad.stack('b').status, 'FAILED');
  assert.match(bad.stack('b').reason, 'size');
  const badGroup = bad.resource('b', 'g')!.current!.child!;
  assert.is(bad.resource(badGroup, '0')!.current!.n, 0, 'not replaced');
  assert.not.ok(bad.events.some((e) => /^(Replacing|Retrying)/.test(e.reason)), 'nor retried');
});

test('a repaired resource whose new incarnation names the same physical object (an attachment) does not delete it with the old one', () => {
  const objects = new Set<string>(); // physical ids
  const calls: string[] = [];
  const task = (input: unknown) => {
    const i = input as { action: string; request: { physicalId?: string | null } };
    calls.push(`${i.action}:${i.request.physicalId ?? ''}`);
    // The physical id is the pair it joins, not the incarnation: `<server>:<volume>`.
    if (i.action === 'create') {
      objects.add('srv:vol');
      return { physicalId: 'srv:vol', attrs: {} };
    }
    if (i.action === 'delete') {
      objects.delete(String(i.request.physicalId));
      return null;
    }
    if (i.action === 'observe') return objects.has(String(i.request.physicalId)) ? { physicalId: i.request.physicalId, attrs: {}, health: { state: 'ok', repair: 'none' } } : null;
    return { physicalId: i.request.physicalId ?? null, attrs: {} };
  };
  const heal: HealConfig = { observeIntervalMs: 5_000, repairsPerSecond: 5, repairBurst: 20 };
  const sim = new Sim({ extraTypes: [taskType('Test::Attachment')], task, heal, taskMs: () => 100 });
  sim.setDesired('s', { op: 'create', name: 's', spec: { template: hot({ att: { type: 'Test::Attachment' } }) } });
  sim.run(3_000);
  assert.is(sim.stack('s').status, 'READY');
  objects.delete('srv:vol'); // detached behind Kiln's back
  sim.run(30_000);
  assert.ok(objects.has('srv:vol'), `re-attached and kept: ${calls.join(' ')}`);
  assert.is(calls.filter((c) => c.startsWith('delete')).length, 0, `the old incarnation is forgotten, not deleted: ${calls.join(' ')}`);
  assert.ok(calls.filter((c) => c.startsWith('create')).length >= 2, 'the repair re-made it');
  assert.equal(sim.resource('s', 'att')!.old, []);
});

test.run();
