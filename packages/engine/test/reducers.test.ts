import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Sim } from './sim.js';
import { encode } from '@kiln/core';
import {
  builtinTypes,
  DEFAULT_TREE,
  HotTemplateAdapter,
  reduceShard,
  reduceStack,
  RETRY_BASE_MS,
  shardBehavior,
  stackBehavior,
  TypeRegistry,
  type GroupSpec,
  type ResourceType,
  type ShardMsg,
  type StackSpec,
} from '../src/index.js';
import { memberExists, shapeExtent } from '../src/shard.js';
import { withImplicitDependencies } from '../src/implicit-deps.js';

RETRY_BASE_MS.value = 100;

const hot = (resources: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  heat_template_version: '2016-10-14',
  resources,
  ...extra,
});

function create(sim: Sim, id: string, spec: StackSpec, gen?: number): void {
  sim.setDesired(id, { op: 'create', name: id, spec, ...(gen ? { gen } : {}) });
}
function update(sim: Sim, id: string, spec: StackSpec): void {
  sim.setDesired(id, { op: 'update', name: id, spec });
}

const chain = (value = 'v1', replace = false) =>
  hot(
    {
      a: { type: 'OS::Heat::RandomString', properties: { length: 8 } },
      b: { type: 'OS::Heat::TestResource', properties: { value: { get_attr: ['a', 'value'] }, update_replace: replace } },
      c: { type: 'OS::Heat::TestResource', properties: { value: { list_join: ['-', [{ get_attr: ['b', 'output'] }, value]] } } },
    },
    { outputs: { c_out: { value: { get_attr: ['c', 'output'] } }, a_ref: { value: { get_resource: 'a' } } } },
  );

test('create: dependency order, attributes flow to dependants, outputs resolved', () => {
  const sim = new Sim();
  create(sim, 's1', { template: chain() });
  sim.run();
  const st = sim.stack('s1');
  assert.is(st.status, 'READY');
  assert.is(st.action, 'CREATE');
  assert.is(st.heatStatus, 'COMPLETE');
  const a = sim.resource('s1', 'a')!.current!;
  const value = a.attrs.value as string;
  assert.is(value.length, 8);
  assert.is(sim.resource('s1', 'b')!.current!.props.value, value);
  assert.equal(st.outputs, { c_out: `${value}-v1`, a_ref: value });
  const completes = sim.events.filter((e) => e.resource && e.status === 'COMPLETE').map((e) => e.resource);
  assert.equal(completes, ['a', 'b', 'c']);
  const stackEvents = sim.events.filter((e) => !e.resource).map((e) => `${e.action}_${e.status}`);
  assert.equal(stackEvents, ['CREATE_IN_PROGRESS', 'CREATE_COMPLETE']);
});

test('RandomString is deterministic per incarnation (a replayed create yields the same string)', () => {
  const s1 = new Sim({ seed: 'x' });
  const s2 = new Sim({ seed: 'y' });
  for (const s of [s1, s2]) {
    create(s, 'same', { template: chain() });
    s.run();
  }
  assert.is(s1.resource('same', 'a')!.current!.attrs.value, s2.resource('same', 'a')!.current!.attrs.value);
});

test('update in place keeps the physical id; update_replace gives a new one, created before the old is deleted', () => {
  const sim = new Sim();
  create(sim, 's', { template: chain('v1') });
  sim.run();
  const before = sim.live('s');
  update(sim, 's', { template: chain('v2') });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  assert.is(sim.stack('s').gen, 2);
  assert.equal(sim.live('s'), before, 'in place');
  assert.is(sim.resource('s', 'c')!.current!.props.value, `${sim.resource('s', 'a')!.current!.attrs.value}-v2`);

  // Replacement: b's value changes only when a changes; force it through salt on a (RandomString replaces on any change).
  const t = chain('v2', true) as { resources: Record<string, { properties: Record<string, unknown> }> };
  t.resources.a!.properties.salt = 'new';
  sim.events.length = 0;
  update(sim, 's', { template: t });
  sim.run();
  const after = sim.live('s');
  assert.is(sim.stack('s').status, 'READY');
  assert.is.not(after.a, before.a);
  assert.is.not(after.b, before.b);
  assert.is(after.c, before.c, 'c updated in place');
  assert.is(sim.physicalCount('res/s/'), 3, 'old incarnations deleted');
  const seq = sim.events.filter((e) => e.resource).map((e) => `${e.resource}:${e.action}_${e.status}`);
  // a's replacement is created, then its dependants move, and only then is the old a deleted.
  const newA = seq.indexOf('a:UPDATE_COMPLETE');
  const cMoved = seq.indexOf('c:UPDATE_COMPLETE');
  const oldADeleted = seq.lastIndexOf('a:DELETE_IN_PROGRESS');
  assert.ok(newA >= 0 && cMoved > newA, seq.join(' '));
  assert.ok(oldADeleted === -1 || oldADeleted > cMoved, seq.join(' '));
});

test('delete: dependants are deleted before what they reference; the stack ends DELETED', () => {
  const sim = new Sim();
  create(sim, 's', { template: chain() });
  sim.run();
  sim.events.length = 0;
  sim.setDesired('s', { op: 'delete', name: 's' });
  sim.run();
  assert.is(sim.stack('s').status, 'DELETED');
  assert.equal(sim.live('s'), {});
  const deletes = sim.events.filter((e) => e.resource && e.action === 'DELETE' && e.status === 'COMPLETE').map((e) => e.resource);
  assert.equal(deletes, ['c', 'b', 'a']);
  assert.is(sim.states.has('res/s/a'), false, 'deleted resources keep no state');
});

const wide = (names: string[], value: string) =>
  hot(Object.fromEntries(names.map((n, i) => [n, { type: 'OS::Heat::TestResource', properties: { value, ...(i > 0 ? { } : {}) } }])));

test('overlapping generations: gen 2 mid-way through gen 1, gen 3 mid-way through gen 2 -> exactly gen 3', () => {
  for (const seed of ['o1', 'o2', 'o3', 'o4']) {
    const sim = new Sim({ seed, tree: { leaf: 4, fanout: 3 } });
    const g1 = Array.from({ length: 20 }, (_, i) => `r${i}`);
    const g2 = Array.from({ length: 20 }, (_, i) => `r${i + 10}`);
    const g3 = Array.from({ length: 15 }, (_, i) => `r${i * 2}`);
    // g2's resources depend on each other in a chain to make ordering matter.
    const chained = (names: string[], v: string) =>
      hot(
        Object.fromEntries(
          names.map((n, i) => [n, { type: 'OS::Heat::TestResource', properties: { value: v }, ...(i > 0 ? { depends_on: [names[i - 1]] } : {}) }]),
        ),
      );
    create(sim, 's', { template: wide(g1, 'one') });
    sim.step(40);
    update(sim, 's', { template: chained(g2, 'two') });
    sim.step(60);
    update(sim, 's', { template: chained(g3, 'three') });
    sim.run();
    const st = sim.stack('s');
    assert.is(st.status, 'READY', seed);
    assert.is(st.gen, 3);
    assert.equal(Object.keys(sim.live('s')).sort(), [...g3].sort(), seed);
    for (const n of g3) assert.is(sim.resource('s', n)!.current!.props.value, 'three');
    assert.is(sim.physicalCount('res/s/'), g3.length, 'no leftovers from gen 1/2');
  }
});

/**
 * Generation g of a 60-resource stack (as bench/overlap.ts): values change every 4 generations,
 * a tenth of the names are absent in turn, and `slow` waits an hour in its update of `slowGen`.
 */
const overlapping = (g: number, slowGen = 2) =>
  hot({
    ...Object.fromEntries(
      Array.from({ length: 60 }, (_, i) => i)
        .filter((i) => i % 10 !== g % 10)
        .map((i) => [`r${i}`, { type: 'OS::Heat::TestResource', properties: { value: `${Math.floor((g + (i % 4)) / 4)}-${i}` } }]),
    ),
    slow: { type: 'OS::Heat::TestResource', properties: { value: `s${g}`, ...(g === slowGen ? { action_wait_secs: { update: 3600 } } : {}) } },
  });

/** Records the generation of every desire a resource is sent. */
function desireGens(sim: Sim): Set<number> {
  const gens = new Set<number>();
  const send = sim.send.bind(sim);
  sim.send = (to, msg) => {
    if ((msg as { kind?: string }).kind === 'desire') gens.add((msg as { gen: number }).gen);
    send(to, msg);
  };
  return gens;
}

test('overlapping updates collapse: generations queued while the shards work are never fanned out, the result is the last one', () => {
  for (const seed of ['c1', 'c2', 'c3']) {
    const sim = new Sim({ seed, tree: { leaf: 8, fanout: 4 } });
    create(sim, 's', { template: overlapping(1) });
    sim.run();
    const gens = desireGens(sim);
    // Generation 2 is fanned out and stays busy (slow's hour-long wait); 3..12 arrive meanwhile.
    for (let g = 2; g <= 12; g++) update(sim, 's', { template: overlapping(g) });
    sim.run();
    const st = sim.stack('s');
    assert.is(st.status, 'READY', seed);
    assert.is(st.gen, 12);
    assert.equal([...gens].sort((a, b) => a - b), [2, 12], `${seed}: only the fanned generation and the newest reach resources`);
    assert.ok(sim.events.filter((e) => e.resource).every((e) => [1, 2, 12].includes(e.gen)), 'no resource event of a skipped generation');
    const stackEvents = sim.events.filter((e) => !e.resource && e.gen > 1);
    assert.equal(stackEvents.filter((e) => e.status === 'IN_PROGRESS').map((e) => e.gen), [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 'every generation starts');
    assert.equal(stackEvents.filter((e) => e.status !== 'IN_PROGRESS').map((e) => `${e.gen} ${e.status}`), ['12 COMPLETE'], 'only the newest completes');
    // The same as a direct create of generation 12.
    const direct = new Sim({ seed, tree: { leaf: 8, fanout: 4 } });
    create(direct, 's', { template: overlapping(12) });
    direct.run();
    const view = (x: Sim) => Object.fromEntries(Object.keys(x.live('s')).sort().map((n) => [n, x.resource('s', n)!.current!.props]));
    assert.equal(view(sim), view(direct), seed);
    assert.is(sim.physicalCount('res/s/'), Object.keys(direct.live('s')).length, 'no leftovers');
  }
});

test('a held generation goes out as soon as the fanned one finishes, and a delete is never held', () => {
  const sim = new Sim({ tree: { leaf: 8, fanout: 4 }, fanoutHold: { perResourceMs: 3_600_000, maxMs: 3_600_000 * 24 } });
  create(sim, 's', { template: overlapping(1) });
  sim.run();
  const slowGen2 = (g: number) => {
    const t = overlapping(g, 2) as { resources: Record<string, { properties: Record<string, unknown> }> };
    if (g === 2) t.resources.slow!.properties.action_wait_secs = { update: 30 };
    return t;
  };
  const t0 = sim.now;
  for (let g = 2; g <= 5; g++) update(sim, 's', { template: slowGen2(g) });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  assert.is(sim.stack('s').gen, 5);
  assert.ok(sim.now - t0 < 60_000, `generation 5 went out when 2 finished (30 s), not after the hold: ${sim.now - t0} ms`);
  assert.is(sim.resource('s', 'slow')!.current!.props.value, 's5');
  // A failing generation is superseded at once, even with another resource of it still waiting.
  const failing = overlapping(6, 6) as { resources: Record<string, unknown> };
  failing.resources.bad = { type: 'OS::Heat::TestResource', properties: { fail: true } };
  const tf = sim.now;
  update(sim, 's', { template: failing });
  update(sim, 's', { template: overlapping(7) });
  sim.run();
  assert.is(sim.stack('s').status, 'READY', sim.stack('s').reason);
  assert.is(sim.stack('s').gen, 7);
  assert.ok(sim.now - tf < 60_000, `generation 7 went out when 6 failed: ${sim.now - tf} ms`);
  assert.is(sim.resource('s', 'bad'), undefined, 'the failed resource of generation 6 is gone');
  // An update stuck in a wait, then a delete: gone at once, nothing left.
  update(sim, 's', { template: overlapping(8, 8) });
  sim.step(20);
  update(sim, 's', { template: overlapping(9) });
  const t1 = sim.now;
  sim.setDesired('s', { op: 'delete', name: 's' });
  sim.run();
  assert.is(sim.stack('s').status, 'DELETED');
  assert.ok(sim.now - t1 < 60_000, 'the delete was not held');
  assert.is(sim.physicalCount('res/s/'), 0);
});

test('delete during create ends deleted with nothing left', () => {
  for (const seed of ['d1', 'd2', 'd3']) {
    const sim = new Sim({ seed, tree: { leaf: 3, fanout: 2 } });
    create(sim, 's', { template: chain() });
    sim.step(5);
    sim.setDesired('s', { op: 'delete', name: 's' });
    sim.run();
    assert.is(sim.stack('s').status, 'DELETED', seed);
    assert.is(sim.physicalCount('res/s/'), 0);
  }
});

test('update during create (test_simultaneous_update): a long create wait is re-targeted', () => {
  const sim = new Sim();
  const t1 = hot({ r: { type: 'OS::Heat::TestResource', properties: { value: 'a', action_wait_secs: { create: 3600 } } } });
  const t2 = hot({ r: { type: 'OS::Heat::TestResource', properties: { value: 'b' } } });
  create(sim, 's', { template: t1 });
  sim.step(10);
  assert.is(sim.stack('s').status, 'CONVERGING');
  update(sim, 's', { template: t2 });
  sim.run(1000); // far less than the create wait
  assert.is(sim.stack('s').status, 'READY');
  assert.is(sim.resource('s', 'r')!.current!.props.value, 'b');
});

test('a failing TestResource fails the stack with its reason; a later update fixes it', () => {
  const sim = new Sim();
  create(sim, 's', { template: hot({ ok: { type: 'OS::Heat::None' }, bad: { type: 'OS::Heat::TestResource', properties: { fail: true } } }) });
  sim.run();
  const st = sim.stack('s');
  assert.is(st.status, 'FAILED');
  assert.is(st.heatStatus, 'FAILED');
  assert.match(st.reason, 'Test Resource failed bad');
  update(sim, 's', { template: hot({ ok: { type: 'OS::Heat::None' }, bad: { type: 'OS::Heat::TestResource', properties: { fail: false } } }) });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  assert.is(sim.stack('s').action, 'UPDATE');
});

test('failed in-place update is replaced on the next update; reverting keeps the original (manual rollback)', () => {
  const sim = new Sim();
  const t = (v: string, fail: boolean) => hot({ r: { type: 'OS::Heat::TestResource', properties: { value: 'x', update_replace_value: v, fail } } });
  create(sim, 's', { template: t('1', false) });
  sim.run();
  const orig = sim.live('s').r;
  update(sim, 's', { template: t('2', true) });
  sim.run();
  assert.is(sim.stack('s').status, 'FAILED');
  update(sim, 's', { template: t('1', false) });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  assert.is(sim.live('s').r, orig, 'the replacement never completed: the original stays');
});

/** A task-backed type failing transiently a given number of times per key (a flaky cloud). */
function flakyType(failures: number, code = 'UNAVAILABLE'): { type: ResourceType; calls: Map<string, number>; task: (input: unknown) => unknown } {
  const calls = new Map<string, number>();
  const type: ResourceType = {
    kind: 'task',
    name: 'Test::Flaky',
    properties: { size: { type: 'integer', default: 1, updateAllowed: true } },
    attributes: [],
    create: async () => ({ physicalId: 'x', attrs: {} }),
    update: async () => ({ physicalId: 'x', attrs: {} }),
    delete: async () => undefined,
    classify: () => ({ code: 'UNAVAILABLE', message: 'x', transient: true }),
  };
  const task = (input: unknown) => {
    const i = input as { action: string; request: { idempotencyKey: string } };
    const k = `${i.action}:${i.request.idempotencyKey}`;
    const n = (calls.get(k) ?? 0) + 1;
    calls.set(k, n);
    if (i.action !== 'delete' && n <= failures) throw Object.assign(new Error('cloud unavailable'), { code });
    return { physicalId: `phys-${i.request.idempotencyKey}`, attrs: {} };
  };
  return { type, calls, task };
}

test('transient failures are retried with backoff, reusing the idempotency key', () => {
  const f = flakyType(3);
  const sim = new Sim({ extraTypes: [f.type], task: f.task });
  create(sim, 's', { template: hot({ r: { type: 'Test::Flaky' } }) });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  assert.equal([...f.calls.values()], [4], 'one key, four attempts');
  const retries = sim.events.filter((e) => e.reason.startsWith('Retrying'));
  assert.is(retries.length, 3);
});

test('an outage never fails a stack: retried without limit with capped backoff, then it converges', () => {
  const f = flakyType(200);
  const sim = new Sim({ extraTypes: [f.type], task: f.task });
  create(sim, 's', { template: hot({ r: { type: 'Test::Flaky' } }) });
  sim.run(30 * 60_000);
  assert.is(sim.stack('s').status, 'CONVERGING', 'half an hour of outage: still waiting, not FAILED');
  assert.ok(sim.resource('s', 'r')!.attempt > 6);
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  assert.equal([...f.calls.values()], [201], 'one key throughout the outage');
});

test('a broken physical resource (RESOURCE_ERROR) is replaced by new incarnations, then gives up; failed ones are deleted by key', () => {
  const f = flakyType(1000, 'RESOURCE_ERROR');
  const sim = new Sim({ extraTypes: [f.type], task: f.task });
  create(sim, 's', { template: hot({ r: { type: 'Test::Flaky' } }) });
  sim.run();
  assert.is(sim.stack('s').status, 'FAILED');
  assert.match(sim.stack('s').reason, 'gave up after');
  const creates = [...f.calls.keys()].filter((k) => k.startsWith('create:'));
  assert.is(creates.length, 6, 'each attempt is a new incarnation with its own key');
  sim.setDesired('s', { op: 'delete', name: 's' });
  sim.run();
  const deletes = [...f.calls.keys()].filter((k) => k.startsWith('delete:')).sort();
  assert.equal(deletes, creates.map((k) => k.replace('create:', 'delete:')).sort(), 'every started create is deleted by its key (no physical id)');
  assert.is(sim.stack('s').status, 'DELETED');
});

test("implicit dependencies (Heat's add_dependencies): servers, ports and routers wait for their network's subnets", () => {
  const template = hot({
    net: { type: 'OS::Neutron::Net' },
    other: { type: 'OS::Neutron::Net' },
    sub: { type: 'OS::Neutron::Subnet', properties: { network: { get_resource: 'net' }, cidr: '10.0.0.0/24' } },
    sub2: { type: 'OS::Neutron::Subnet', properties: { network_id: { get_resource: 'net' }, cidr: '10.0.1.0/24' } },
    osub: { type: 'OS::Neutron::Subnet', properties: { network: { get_resource: 'other' }, cidr: '10.1.0.0/24' } },
    port: { type: 'OS::Neutron::Port', properties: { network: { get_resource: 'net' } } },
    server: { type: 'OS::Nova::Server', properties: { networks: [{ network: { get_resource: 'net' } }, { port: { get_resource: 'port' } }] } },
    router: { type: 'OS::Neutron::Router', properties: { external_gateway_info: { network: { get_resource: 'other' } } } },
    ri: { type: 'OS::Neutron::RouterInterface', properties: { router: { get_resource: 'router' }, subnet: { get_resource: 'sub' } } },
    fip: { type: 'OS::Neutron::FloatingIP', properties: { floating_network: { get_resource: 'other' }, port_id: { get_resource: 'port' } } },
    // A subnet that references the server: the implicit edge would close a cycle and is skipped.
    weird: { type: 'OS::Neutron::Subnet', properties: { network: { get_resource: 'net' }, name: { get_attr: ['server', 'name'] } } },
  });
  const plan = new HotTemplateAdapter().plan({ template }, { stackId: 's', stackName: 's' });
  const out = Object.fromEntries(withImplicitDependencies(plan.resources, new TypeRegistry()).map((r) => [r.name, [...r.requires].sort()]));
  assert.equal(out['port'], ['net', 'sub', 'sub2']);
  assert.equal(out['server'], ['net', 'port', 'sub', 'sub2']);
  assert.equal(out['router'], ['osub', 'other']);
  assert.equal(out['fip'], ['other', 'port', 'ri', 'router']);
  assert.equal(out['sub'], ['net']);
});

test('a broken create is retried as a replacement and converges', () => {
  const f = flakyType(1, 'RESOURCE_ERROR');
  let broken = 1; // only the first create breaks
  const task = (input: unknown) => {
    const i = input as { action: string; request: { idempotencyKey: string } };
    if (i.action === 'create' && broken-- > 0) return f.task(input);
    f.calls.set(`${i.action}:${i.request.idempotencyKey}`, 1);
    return { physicalId: `phys-${i.request.idempotencyKey}`, attrs: {} };
  };
  const sim = new Sim({ extraTypes: [f.type], task });
  create(sim, 's', { template: hot({ r: { type: 'Test::Flaky' } }) });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  assert.is(sim.live('s').r, 'phys-res/s/r#1', 'the second incarnation');
  assert.ok(f.calls.has('delete:res/s/r#0'), 'the failed first incarnation was deleted by key');
  assert.equal(sim.resource('s', 'r')!.old, []);
});

test('conditions: a parameter change adds and removes conditional resources; outputs follow', () => {
  const sim = new Sim();
  const template = {
    heat_template_version: '2016-10-14',
    parameters: { env: { type: 'string', default: 'test' } },
    conditions: { prod: { equals: [{ get_param: 'env' }, 'prod'] } },
    resources: {
      always: { type: 'OS::Heat::TestResource', properties: { value: { if: ['prod', 'big', 'small'] } } },
      prod_only: { type: 'OS::Heat::None', condition: 'prod' },
    },
    outputs: { size: { value: { get_attr: ['always', 'output'] } }, p: { value: { get_resource: 'prod_only' }, condition: 'prod' } },
  };
  create(sim, 's', { template });
  sim.run();
  assert.equal(Object.keys(sim.live('s')).sort(), ['always']);
  assert.equal(sim.stack('s').outputs, { size: 'small', p: null });
  sim.setDesired('s', { op: 'patch', name: 's', spec: { template, parameters: { env: 'prod' } } });
  sim.run();
  assert.equal(Object.keys(sim.live('s')).sort(), ['always', 'prod_only']);
  assert.is(sim.stack('s').outputs!.size, 'big');
  assert.ok(typeof sim.stack('s').outputs!.p === 'string');
  sim.setDesired('s', { op: 'patch', name: 's', spec: { template, parameters: { env: 'test' } } });
  sim.run();
  assert.equal(Object.keys(sim.live('s')).sort(), ['always']);
});

test('abandon: the stack winds down (nested groups too) without a single provider delete; resources are forgotten', () => {
  const f = flakyType(0);
  const sim = new Sim({ extraTypes: [f.type], task: f.task });
  const template = hot({
    r: { type: 'Test::Flaky' },
    g: { type: 'OS::Heat::ResourceGroup', properties: { count: 3, resource_def: { type: 'Test::Flaky' } } },
  });
  create(sim, 's', { template });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  const creates = [...f.calls.keys()].filter((k) => k.startsWith('create:')).length;
  assert.is(creates, 4);
  sim.events.length = 0;
  sim.setDesired('s', { op: 'abandon', name: 's' });
  sim.run();
  assert.is(sim.stack('s').status, 'DELETED');
  assert.is(sim.stack('s').action, 'ABANDON');
  assert.equal([...f.calls.keys()].filter((k) => k.startsWith('delete:')), [], 'nothing deleted in the cloud');
  assert.is(sim.physicalCount(), 0, 'no actor keeps a resource');
  assert.ok(sim.events.some((e) => e.resource === 'r' && e.action === 'ABANDON' && e.status === 'COMPLETE'));
  assert.not.ok(sim.events.some((e) => e.action === 'DELETE'), 'no delete events');
});

test('adopt: resources named in the adoption data are taken over (ids, attributes), the others created', () => {
  const f = flakyType(0);
  const sim = new Sim({ extraTypes: [f.type], task: f.task });
  const template = hot({ r: { type: 'Test::Flaky' }, n: { type: 'Test::Flaky' }, v: { type: 'OS::Heat::TestResource', properties: { value: { get_resource: 'r' } } } });
  sim.setDesired('s', { op: 'adopt', name: 's', spec: { template }, adopt: { r: { physicalId: 'old-r', attrs: { a: 1 } } } });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  assert.is(sim.stack('s').action, 'ADOPT');
  assert.equal(sim.resource('s', 'r')!.current!.physicalId, 'old-r');
  assert.equal(sim.resource('s', 'r')!.current!.attrs, { a: 1 });
  assert.is(sim.resource('s', 'v')!.current!.props.value, 'old-r', 'dependants see the adopted id');
  assert.equal([...f.calls.keys()].filter((k) => k.startsWith('create:')).length, 1, 'only n created');
  assert.is(sim.resource('s', 'r')!.action, 'ADOPT');
});

test('capacity overrides replace a group count for the generation that carries them', () => {
  const sim = new Sim();
  const template = hot(
    { g: { type: 'OS::Heat::ResourceGroup', properties: { count: { get_param: 'n' }, resource_def: { type: 'OS::Heat::None' } } } },
    { parameters: { n: { type: 'number', default: 2 } } },
  );
  create(sim, 's', { template });
  sim.run();
  const child = sim.resource('s', 'g')!.current!.child!;
  assert.is(Object.keys(sim.live(child)).length, 2);
  sim.setDesired('s', { op: 'update', name: 's', spec: { template }, overrides: { g: 5 } });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  assert.is(Object.keys(sim.live(child)).length, 5);
  update(sim, 's', { template });
  sim.run();
  assert.is(Object.keys(sim.live(child)).length, 2, 'a generation without the override has the template count');
  // Members' events go to the top-level stack, named by their path.
  const member = sim.events.filter((e) => e.resource === 'g/4');
  assert.ok(member.length > 0 && member.every((e) => e.stackId === 's' && e.nestedStackId === child && e.stackName === 's'));
  assert.ok(sim.events.some((e) => e.resource === 'g/4' && e.action === 'DELETE' && e.status === 'COMPLETE'));
});

test('mark unhealthy: the resource is replaced at once (create before delete); dependants get the new data', () => {
  const f = flakyType(0);
  const sim = new Sim({ extraTypes: [f.type], task: f.task });
  create(sim, 's', { template: hot({ r: { type: 'Test::Flaky' }, v: { type: 'OS::Heat::TestResource', properties: { value: { get_resource: 'r' } } } }) });
  sim.run();
  const before = sim.resource('s', 'r')!.current!.physicalId;
  sim.send('res/s/r', { kind: 'unhealthy', reason: 'disk' });
  sim.run();
  const r = sim.resource('s', 'r')!;
  assert.is.not(r.current!.physicalId, before);
  assert.is(r.old.length, 0, 'the old one deleted');
  assert.is(r.status, 'COMPLETE');
  assert.ok(sim.events.some((e) => e.resource === 'r' && e.action === 'CHECK' && e.status === 'FAILED' && e.reason.includes('disk')));
  assert.equal([...f.calls.keys()].filter((k) => k.startsWith('delete:')).length, 1);
  assert.is(sim.resource('s', 'v')!.deps.r!.ref, r.current!.physicalId);
  assert.is(sim.stack('s').status, 'READY');
});

test('an invalid template fails the generation at once with the template error', () => {
  const sim = new Sim();
  create(sim, 's', { template: hot({ a: { type: 'OS::Heat::None', properties: { x: { get_resource: 'nope' } } } }) });
  sim.run();
  assert.is(sim.stack('s').status, 'FAILED');
  assert.match(sim.stack('s').reason, 'nope');
});

test('the stack timeout fires from the supervisor timer even with work still waiting', () => {
  const sim = new Sim();
  create(sim, 's', { template: hot({ r: { type: 'OS::Heat::TestResource', properties: { action_wait_secs: { create: 7200 } } } }), timeoutMins: 1 });
  sim.run(120_000);
  assert.is(sim.stack('s').status, 'FAILED');
  assert.is(sim.stack('s').reason, 'Timed out');
});

test('deletion_policy Retain: removing the resource forgets it without deleting it', () => {
  const sim = new Sim();
  create(sim, 's', { template: hot({ keep: { type: 'OS::Heat::TestResource', deletion_policy: 'Retain', properties: { action_wait_secs: { delete: 5 } } }, x: { type: 'OS::Heat::None' } }) });
  sim.run();
  sim.events.length = 0;
  update(sim, 's', { template: hot({ x: { type: 'OS::Heat::None' } }) });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  assert.equal(Object.keys(sim.live('s')), ['x']);
  assert.is(sim.now, 1_000_000, 'no delete wait ran: the provider delete was skipped');
});

const groupTemplate = (count: number, extra: Record<string, unknown> = {}) =>
  hot(
    {
      g: {
        type: 'OS::Heat::ResourceGroup',
        properties: { count, resource_def: { type: 'OS::Heat::TestResource', properties: { value: 'member-%index%' } }, ...extra },
      },
    },
    {
      outputs: {
        refs: { value: { get_attr: ['g', 'refs'] } },
        values: { value: { get_attr: ['g', 'output'] } },
        first: { value: { get_attr: ['g', 'resource.0', 'output'] } },
      },
    },
  );

test('ResourceGroup: members through a shard tree, scale up and down, group attributes', () => {
  const sim = new Sim({ tree: { leaf: 4, fanout: 2 } });
  create(sim, 's', { template: groupTemplate(5) });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  const child = sim.resource('s', 'g')!.current!.child!;
  assert.equal(Object.keys(sim.live(child)).sort((a, b) => +a - +b), ['0', '1', '2', '3', '4']);
  assert.is(sim.resource(child, '3')!.current!.props.value, 'member-3');
  const out = sim.stack('s').outputs!;
  assert.is((out.refs as string[]).length, 5);
  assert.equal(out.values, ['member-0', 'member-1', 'member-2', 'member-3', 'member-4']);
  assert.is(out.first, 'member-0');

  // 21 members need 6 leaves: more than the fanout, so an inner level appears.
  update(sim, 's', { template: groupTemplate(21) });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  assert.is(Object.keys(sim.live(child)).length, 21);
  assert.ok([...sim.states.keys()].some((k) => k.startsWith(`shard/${child}/g1.`)), 'inner shard level used');
  assert.ok(sim.physicalCount(`res/${child}/`) === 21);

  update(sim, 's', { template: groupTemplate(2) });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  assert.equal(Object.keys(sim.live(child)).sort(), ['0', '1']);
  assert.is(sim.physicalCount(`res/${child}/`), 2);
});

test('ResourceGroup removal_policies skip removed indices; new members get new indices', () => {
  const sim = new Sim({ tree: { leaf: 4, fanout: 4 } });
  create(sim, 's', { template: groupTemplate(3) });
  sim.run();
  update(sim, 's', { template: groupTemplate(3, { removal_policies: [{ resource_list: ['1'] }] }) });
  sim.run();
  const child = sim.resource('s', 'g')!.current!.child!;
  assert.equal(Object.keys(sim.live(child)).sort(), ['0', '2', '3']);
  assert.is(sim.stack('s').status, 'READY');
});

test('group attributes are collected only when read, and from the generation that starts reading them', () => {
  const sim = new Sim({ tree: { leaf: 4, fanout: 2 } });
  const noOutputs = { ...groupTemplate(6), outputs: {} };
  create(sim, 's', { template: noOutputs });
  sim.run();
  const child = sim.resource('s', 'g')!.current!.child!;
  assert.equal(sim.stack(child).collected, {}, 'nothing collected when nobody reads the attributes');
  update(sim, 's', { template: groupTemplate(6) });
  sim.run();
  assert.is((sim.stack('s').outputs!.refs as unknown[]).length, 6);
  assert.is(sim.resource('s', 'g')!.current!.child, child, 'same group stack');
});

test('group members of a template type from resource_registry are nested stacks', () => {
  const sim = new Sim({ tree: { leaf: 4, fanout: 2 } });
  const member = JSON.stringify({
    heat_template_version: '2016-10-14',
    parameters: { idx: { type: 'string' } },
    resources: { r: { type: 'OS::Heat::Value', properties: { value: { get_param: 'idx' } } } },
    outputs: { v: { value: { get_attr: ['r', 'value'] } } },
  });
  create(sim, 's', {
    template: hot(
      { g: { type: 'OS::Heat::ResourceGroup', properties: { count: 3, resource_def: { type: 'My::Member', properties: { idx: 'i%index%' } } } } },
      { outputs: { vs: { value: { get_attr: ['g', 'v'] } } } },
    ),
    environment: { resource_registry: { 'My::Member': 'member.yaml' } },
    files: { 'member.yaml': member },
  });
  sim.run();
  assert.is(sim.stack('s').status, 'READY', sim.stack('s').reason);
  assert.equal(sim.stack('s').outputs!.vs, ['i0', 'i1', 'i2']);
});

test('group of 0 members and deleting a group stack', () => {
  const sim = new Sim({ tree: { leaf: 4, fanout: 2 } });
  create(sim, 's', { template: groupTemplate(0) });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  update(sim, 's', { template: groupTemplate(9) });
  sim.run();
  sim.setDesired('s', { op: 'delete', name: 's' });
  sim.run();
  assert.is(sim.stack('s').status, 'DELETED');
  assert.is(sim.physicalCount('res/'), 0);
});

test('OS::Heat::Stack: nested stack outputs reach the parent; update in place keeps the child', () => {
  const sim = new Sim();
  const inner = (v: string) => ({
    heat_template_version: '2016-10-14',
    parameters: { p: { type: 'string' } },
    resources: { r: { type: 'OS::Heat::TestResource', properties: { value: { list_join: ['', [{ get_param: 'p' }, v]] } } } },
    outputs: { o: { value: { get_attr: ['r', 'output'] } } },
  });
  const outer = (v: string) => hot({ n: { type: 'OS::Heat::Stack', properties: { template: JSON.stringify(inner(v)), parameters: { p: 'x' } } } }, { outputs: { o: { value: { get_attr: ['n', 'outputs', 'o'] } } } });
  create(sim, 's', { template: outer('1') });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  assert.equal(sim.stack('s').outputs, { o: 'x1' });
  const child = sim.resource('s', 'n')!.current!.child!;
  update(sim, 's', { template: outer('2') });
  sim.run();
  assert.equal(sim.stack('s').outputs, { o: 'x2' });
  assert.is(sim.resource('s', 'n')!.current!.child, child);
  sim.setDesired('s', { op: 'delete', name: 's' });
  sim.run();
  assert.is(sim.physicalCount('res/'), 0);
  assert.is(sim.stack(child).status, 'DELETED');
});

test('a nested stack whose create failed keeps what it made: the next generation updates it in place, a delete removes it all', () => {
  const failing = new Set(['1']);
  const member: ResourceType = {
    kind: 'task',
    name: 'Test::Member',
    properties: { size: { type: 'integer', default: 1, updateAllowed: true } },
    attributes: [],
    create: async () => ({ physicalId: null, attrs: {} }),
    update: async () => ({ physicalId: null, attrs: {} }),
    delete: async () => undefined,
    classify: () => ({ code: 'INTERNAL', message: 'x', transient: false }),
  };
  const sim = new Sim({
    extraTypes: [member],
    task: (input) => {
      const i = input as { action: string; request: { idempotencyKey: string } };
      const index = /\/(\d+)#/.exec(i.request.idempotencyKey)?.[1] ?? '';
      if (i.action === 'create' && failing.has(index)) throw Object.assign(new Error(`member ${index} refused`), { code: 'QUOTA_EXCEEDED' });
      return { physicalId: `id-${i.request.idempotencyKey}`, attrs: {} };
    },
  });
  const group = (size: number) => hot({ g: { type: 'OS::Heat::ResourceGroup', properties: { count: 3, resource_def: { type: 'Test::Member', properties: { size } } } } });
  create(sim, 's', { template: group(1) });
  sim.run();
  assert.is(sim.stack('s').status, 'FAILED');
  const child = sim.resource('s', 'g')!.current?.child;
  assert.ok(child, "the failed child stack is still the resource's");
  assert.equal(Object.keys(sim.live(child!)).sort(), ['0', '2'], 'members 0 and 2 were made');
  failing.clear();
  update(sim, 's', { template: group(2) });
  sim.run();
  assert.is(sim.stack('s').status, 'READY', sim.stack('s').reason);
  assert.is(sim.resource('s', 'g')!.current!.child, child, 'updated in place, not a second child');
  assert.equal(Object.keys(sim.live(child!)).sort(), ['0', '1', '2']);
  sim.setDesired('s', { op: 'delete', name: 's' });
  sim.run();
  assert.is(sim.stack('s').status, 'DELETED');
  assert.is(sim.physicalCount('res/'), 0, 'nothing left anywhere');
});

test('resource_facade in a nested stack returns the parent resource\'s metadata, deletion_policy and update_policy (Heat defaults when absent)', () => {
  const sim = new Sim();
  const provider = JSON.stringify({
    heat_template_version: '2016-10-14',
    resources: { inner: { type: 'OS::Heat::Value', properties: { value: { resource_facade: 'metadata' } } } },
    outputs: {
      metadata: { value: { resource_facade: 'metadata' } },
      deletion_policy: { value: { resource_facade: 'deletion_policy' } },
      update_policy: { value: { resource_facade: 'update_policy' } },
      inner: { value: { get_attr: ['inner', 'value'] } },
    },
  });
  create(sim, 's', {
    template: hot(
      {
        t: { type: 'My::Thing', metadata: { foo: { get_param: 'p' } }, deletion_policy: 'Retain', update_policy: { pause: 2 } },
        plain: { type: 'My::Thing' },
      },
      {
        parameters: { p: { type: 'string', default: 'bar' } },
        outputs: { t: { value: { get_attr: ['t', 'metadata'] } }, all: { value: { get_attr: ['t'] } }, plain: { value: ['metadata', 'deletion_policy', 'update_policy'].map((a) => ({ get_attr: ['plain', a] })) } },
      },
    ),
    environment: { resource_registry: { 'My::Thing': 'provider.yaml' } },
    files: { 'provider.yaml': provider },
  });
  sim.run();
  assert.is(sim.stack('s').status, 'READY', sim.stack('s').reason);
  const out = sim.stack('s').outputs as Record<string, Record<string, unknown> | unknown[]>;
  assert.equal(out.t, { foo: 'bar' }, 'metadata resolved in the parent');
  const all = out.all as Record<string, unknown>;
  assert.is(all.deletion_policy, 'Retain');
  assert.equal(all.update_policy, { pause: 2 });
  assert.equal(all.inner, { foo: 'bar' }, 'usable in the nested resources too');
  assert.equal(out.plain, [{}, 'Delete', {}], "Heat's defaults for a parent without those sections");
});

test('a change of a template resource\'s metadata or update_policy alone reaches its child stack (resource_facade)', () => {
  const sim = new Sim();
  const provider = JSON.stringify({
    heat_template_version: '2016-10-14',
    resources: { inner: { type: 'OS::Heat::Value', properties: { value: { resource_facade: 'metadata' } } } },
    outputs: { inner: { value: { get_attr: ['inner', 'value'] } }, update_policy: { value: { resource_facade: 'update_policy' } } },
  });
  const spec = (p: string, pause: number): StackSpec => ({
    template: hot(
      { t: { type: 'My::Thing', metadata: { foo: { get_param: 'p' } }, update_policy: { pause } } },
      { parameters: { p: { type: 'string' } }, outputs: { inner: { value: { get_attr: ['t', 'inner'] } }, policy: { value: { get_attr: ['t', 'update_policy'] } } } },
    ),
    environment: { resource_registry: { 'My::Thing': 'provider.yaml' } },
    files: { 'provider.yaml': provider },
    parameters: { p },
  });
  create(sim, 's', spec('bar', 1));
  sim.run();
  const outputs = () => sim.stack('s').outputs as Record<string, unknown>;
  assert.equal(outputs().inner, { foo: 'bar' });
  update(sim, 's', spec('baz', 1));
  sim.run();
  assert.is(sim.stack('s').status, 'READY', sim.stack('s').reason);
  assert.equal(outputs().inner, { foo: 'baz' }, 'the child re-resolved resource_facade: metadata');
  update(sim, 's', spec('baz', 2));
  sim.run();
  assert.equal(outputs().policy, { pause: 2 }, 'the child saw the new update_policy');
  // Nothing changed: the child is not sent its desire again.
  const child = sim.resource('s', 't')!.current!.child!;
  const childGen = sim.stack(child).gen;
  update(sim, 's', spec('baz', 2));
  sim.run();
  assert.is(sim.stack(child).gen, childGen);
});

test('template resource from resource_registry + files', () => {
  const sim = new Sim();
  const provider = JSON.stringify({
    heat_template_version: '2016-10-14',
    parameters: { value: { type: 'string' } },
    resources: { inner: { type: 'OS::Heat::TestResource', properties: { value: { get_param: 'value' } } } },
    outputs: { out: { value: { get_attr: ['inner', 'output'] } } },
  });
  create(sim, 's', {
    template: hot({ t: { type: 'My::Thing', properties: { value: 'hello' } } }, { outputs: { o: { value: { get_attr: ['t', 'out'] } } } }),
    environment: { resource_registry: { 'My::Thing': 'provider.yaml' } },
    files: { 'provider.yaml': provider },
  });
  sim.run();
  assert.is(sim.stack('s').status, 'READY', sim.stack('s').reason);
  assert.equal(sim.stack('s').outputs, { o: 'hello' });
});

test('WaitCondition completes when its handle is signalled', () => {
  const sim = new Sim();
  create(sim, 's', {
    template: hot(
      {
        h: { type: 'OS::Heat::WaitConditionHandle' },
        w: { type: 'OS::Heat::WaitCondition', properties: { handle: { get_resource: 'h' }, count: 2, timeout: 600 } },
      },
      { outputs: { data: { value: { get_attr: ['w', 'data'] } } } },
    ),
  });
  sim.run(1000);
  assert.is(sim.stack('s').status, 'CONVERGING');
  sim.send('res/s/h', { kind: 'signal', data: { id: '1', status: 'SUCCESS', data: 'one' } });
  sim.run(1000);
  assert.is(sim.stack('s').status, 'CONVERGING');
  sim.send('res/s/h', { kind: 'signal', data: { id: '2', status: 'SUCCESS', data: 'two' } });
  sim.run(1000);
  assert.is(sim.stack('s').status, 'READY');
  assert.equal(JSON.parse(sim.stack('s').outputs!.data as string), { 1: 'one', 2: 'two' });
});

test('WaitCondition times out', () => {
  const sim = new Sim();
  create(sim, 's', {
    template: hot({ h: { type: 'OS::Heat::WaitConditionHandle' }, w: { type: 'OS::Heat::WaitCondition', properties: { handle: { get_resource: 'h' }, timeout: 5 } } }),
  });
  sim.run(60_000);
  assert.is(sim.stack('s').status, 'FAILED');
  assert.match(sim.stack('s').reason, 'timed out');
});

test('messages to a shard are bounded: a wide stack is split into leaves', () => {
  const sim = new Sim({ tree: { leaf: 10, fanout: 10 } });
  const names = Array.from({ length: 35 }, (_, i) => `r${i}`);
  create(sim, 's', { template: wide(names, 'x') });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  assert.is(sim.stack('s').shardCount, 4);
});

test('a 1,000,000-member group: bounded fan-out, small states, no member list anywhere', () => {
  const deps = { template: new HotTemplateAdapter(), types: new TypeRegistry(builtinTypes) };
  const group: GroupSpec = { shape: { count: 1_000_000, removed: [] }, member: { type: 'OS::Heat::None', properties: {} }, indexVar: '%index%', collect: false, mode: 'append' };
  const ctx = { self: 'stack/big', msgId: 'm1', now: 0 };
  const r = reduceStack(deps, stackBehavior(deps).initial('stack/big'), { kind: 'setDesired', op: 'create', name: 'big', group }, ctx);
  const sends = r.effects.filter((e) => e.type === 'send');
  assert.is(sends.length, 1000, 'one message per leaf of 1,000');
  assert.ok(encode(r.state).length < 4096, 'supervisor state stays small');
  const leafMsg = (sends[999] as { msg: ShardMsg }).msg;
  const leaf = reduceShard(DEFAULT_TREE, shardBehavior().initial('shard/big/g0.999000'), leafMsg, { self: 'shard/big/g0.999000', msgId: 'm2', now: 0 });
  const memberSends = leaf.effects.filter((e) => e.type === 'send');
  assert.is(memberSends.length, 1000);
  assert.is((memberSends[999] as { to: string }).to, 'res/big/999999');
  assert.ok(encode(leaf.state).length < 4096, 'leaf state stays small');
  // Scale 1M -> 3M: an inner level appears, still <= 1,000 messages per actor.
  const r2 = reduceStack(deps, r.state!, { kind: 'setDesired', op: 'update', name: 'big', group: { ...group, shape: { count: 3_000_000, removed: [] } } }, { ...ctx, msgId: 'm3' });
  assert.is(r2.effects.filter((e) => e.type === 'send').length, 3);
});

test('member reports to a leaf: earlier states are left as they were, one report up when every slot is done', () => {
  const group: GroupSpec = { shape: { count: 3, removed: [] }, member: { type: 'OS::Heat::None', properties: {} }, indexVar: '%index%', collect: false, mode: 'append' };
  const self = 'shard/g/g0.0';
  const desire: ShardMsg = { kind: 'shardDesire', gen: 1, parent: 'stack/g', tenant: 'default', stackId: 'g', stackName: 'g', slot: 0, group: { level: 0, lo: 0, hi: 3, spec: group } };
  let state = reduceShard(DEFAULT_TREE, shardBehavior().initial(self), desire, { self, msgId: 'd', now: 0 }).state!;
  const seen: string[] = [];
  let up: unknown[] = [];
  for (const [slot, st] of [[0, 'settled'], [1, 'failed'], [1, 'settled'], [2, 'settled']] as const) {
    const before = JSON.stringify(state);
    const r = reduceShard(DEFAULT_TREE, state, { kind: 'report', gen: 1, slot, state: st, name: String(slot) }, { self, msgId: `r${seen.length}`, now: 0 });
    assert.is(JSON.stringify(state), before, 'the previous state is not mutated');
    state = r.state!;
    seen.push(`${state.counts.settled}/${state.counts.failed}`);
    up = r.effects.filter((e) => e.type === 'send').map((e) => (e as { msg: unknown }).msg);
  }
  assert.equal(seen, ['1/0', '1/1', '2/0', '3/0']);
  assert.equal(up, [{ kind: 'shardReport', shard: self, slot: 0, gen: 1, settled: 3, failed: 0, gone: 0, total: 3, reason: '1: failed' }]);
  // A report of an older generation changes nothing.
  const stale = reduceShard(DEFAULT_TREE, state, { kind: 'report', gen: 0, slot: 0, state: 'failed', name: '0' }, { self, msgId: 'old', now: 0 });
  assert.is(stale.state, state);
  assert.is(stale.effects.length, 0);
});

test('group shape: removed indices are skipped and the extent grows past them', () => {
  const shape = { count: 3, removed: [1, 4] };
  assert.equal([0, 1, 2, 3, 4, 5].map((i) => memberExists(i, shape)), [true, false, true, true, false, false]);
  assert.is(shapeExtent(shape), 4);
  assert.is(shapeExtent({ count: 3, removed: [0, 1, 2] }), 6);
});

test.run();
