/**
 * Heal decisions through the pure reducers: observe on a timer, gone -> recreate, broken ->
 * replace, drifted -> update, data-holding types outside groups -> FAILED with the reason, group
 * members always replaced, repairs rate-limited per stack, check and mark-unhealthy on the same path.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Sim } from './sim.js';
import { RETRY_BASE_MS, type HealConfig, type ResourceType } from '../src/index.js';
import { DEFAULT_RESEND } from '../src/stack.js';
import { PERMIT_ASK_MS } from '../src/resource.js';
import { resourceOfKey } from '../src/changes.js';

RETRY_BASE_MS.value = 100;

const HEAL: HealConfig = { observeIntervalMs: 10_000, repairsPerSecond: 1, repairBurst: 2 };

type Health = 'ok' | 'gone' | 'error' | 'drifted';

/** A fake cloud behind a task type: objects by idempotency key, with a health the test sets. */
function cloud(sim: () => Sim) {
  const objects = new Map<string, { id: string; health: Health }>();
  const calls: Array<{ action: string; key: string; at: number }> = [];
  const type = (name: string): ResourceType => ({
    kind: 'task',
    name,
    properties: { size: { type: 'integer', default: 1, updateAllowed: true } },
    attributes: [],
    create: async () => ({ physicalId: null, attrs: {} }),
    update: async () => ({ physicalId: null, attrs: {} }),
    delete: async () => undefined,
    observe: async () => null,
    classify: () => ({ code: 'INTERNAL', message: 'x', transient: false }),
  });
  const task = (input: unknown) => {
    const i = input as { action: string; request: { idempotencyKey: string; physicalId?: string | null } };
    const key = i.request.idempotencyKey;
    calls.push({ action: i.action, key, at: sim().now });
    switch (i.action) {
      case 'create':
        objects.set(key, { id: `id-${key}`, health: 'ok' });
        return { physicalId: `id-${key}`, attrs: {} };
      case 'update': {
        const o = objects.get(key);
        if (!o || o.health === 'gone') throw Object.assign(new Error('gone'), { code: 'RESOURCE_GONE' });
        o.health = 'ok';
        return { physicalId: o.id, attrs: {} };
      }
      case 'delete':
        objects.delete(key);
        return { physicalId: null, attrs: {} };
      case 'observe': {
        const o = objects.get(key);
        if (!o || o.health === 'gone') return null;
        const health =
          o.health === 'error'
            ? { state: 'error', reason: 'status ERROR', repair: 'replace' }
            : o.health === 'drifted'
              ? { state: 'drifted', drifted: ['name'], repair: 'update' }
              : { state: 'ok', repair: 'none' };
        return { physicalId: o.id, attrs: {}, health };
      }
    }
    throw new Error(`unknown action ${i.action}`);
  };
  /** Sets the health of the live object of a resource (by its key prefix). */
  const set = (resource: string, health: Health) => {
    for (const [k, o] of objects) if (k.startsWith(`res/${resource}#`)) o.health = health;
  };
  return { objects, calls, type, task, set };
}

function world(types: string[] = ['Test::Server'], taskMs?: (input: unknown) => number) {
  let sim: Sim;
  const c = cloud(() => sim);
  sim = new Sim({ extraTypes: types.map((t) => c.type(t)), task: c.task, heal: HEAL, ...(taskMs ? { taskMs } : {}) });
  return { sim, c };
}

/** Cloud calls that take a while (2 s), observations at once. */
const slowActions = (input: unknown) => ((input as { action: string }).action === 'observe' ? 0 : 2_000);

/** What is still being repaired, over every stack of the sim (nested ones too). */
function repairsInFlight(sim: Sim): string[] {
  const busy: string[] = [];
  for (const [addr, st] of sim.states) {
    if (!addr.startsWith('res/')) continue;
    const r = st as import('../src/index.js').ResourceState;
    if (r.repair || (r.op && r.op.action !== 'observe') || r.old.length > 0 || r.current?.failed) busy.push(addr);
  }
  return busy;
}

const hot = (resources: Record<string, unknown>) => ({ heat_template_version: '2016-10-14', resources });

test('after READY each task resource observes on a jittered interval; a healthy one is left alone', () => {
  const { sim, c } = world();
  sim.setDesired('s', { op: 'create', name: 's', spec: { template: hot({ a: { type: 'Test::Server' }, b: { type: 'Test::Server' } }) } });
  sim.run(1_000);
  assert.is(sim.stack('s').status, 'READY');
  sim.run(60_000);
  const observes = c.calls.filter((x) => x.action === 'observe');
  assert.ok(observes.length >= 8 && observes.length <= 16, `about 60 s / 10 s per resource: ${observes.length}`);
  const at = observes.filter((x) => x.key === 'res/s/a#0').map((x) => x.at);
  const gaps = at.slice(1).map((t, i) => t - at[i]!);
  assert.ok(gaps.every((g) => g >= 7_500 && g <= 12_500), 'interval jittered within [75 %, 125 %]');
  assert.ok(new Set(gaps).size > 1, 'jittered');
  assert.equal(c.calls.filter((x) => x.action !== 'observe').map((x) => x.action), ['create', 'create']);
  assert.is(sim.stack('s').status, 'READY');
});

type Mail = { to: string; kind: string; state?: string; name?: string; settled?: number; total?: number };

/**
 * Two servers READY, then `a` goes to ERROR: the first message after READY that `loses` picks is
 * lost; every message after READY is in `sent`.
 */
function repairAfterReady(loses: (m: Mail) => boolean) {
  let sim: Sim;
  const c = cloud(() => sim);
  let ready = false;
  const lost: Mail[] = [];
  const sent: Mail[] = [];
  sim = new Sim({
    extraTypes: [c.type('Test::Server')],
    task: c.task,
    heal: HEAL,
    lose: (to, msg) => {
      if (!ready) return false;
      const m = { to, ...(msg as Omit<Mail, 'to'>) };
      sent.push(m);
      if (lost.length > 0 || !loses(m)) return false;
      lost.push(m);
      return true;
    },
  });
  sim.setDesired('s', { op: 'create', name: 's', spec: { template: hot({ a: { type: 'Test::Server' }, b: { type: 'Test::Server' } }) } });
  sim.run(1_000);
  assert.is(sim.stack('s').status, 'READY');
  ready = true;
  c.set('s/a', 'error');
  sim.run(13_000);
  assert.is(lost.length, 1, 'the report that the repair ended was lost');
  assert.is(sim.stack('s').status, 'CONVERGING');
  assert.is(sim.stack('s').reason, 'Repairing drift');
  return { sim, c, sent };
}

test('a lost shard report that a repair after READY ended: the supervisor asks its shard again and is READY again', () => {
  const { sim, c } = repairAfterReady((m) => m.kind === 'shardReport' && m.settled === m.total);
  sim.run(DEFAULT_RESEND.maxMs);
  assert.is(sim.stack('s').status, 'READY');
  assert.not.ok(sim.armed('stack/s').includes('resend'), 'nothing is asked once the shard reported');
  assert.equal(c.calls.filter((x) => x.action === 'create').length, 3, 'a replaced once, nothing acted twice');
});

test("a lost member report that its repair ended: the member's next healthy observe sends it again, and the stack is READY again", () => {
  const { sim, c, sent } = repairAfterReady((m) => m.kind === 'report' && m.state === 'settled' && m.name === 'a');
  const settledReports = () => sent.filter((x) => x.kind === 'report' && x.state === 'settled').length;
  sim.run(20_000);
  assert.is(sim.stack('s').status, 'READY');
  assert.is(settledReports(), 2, 'sent once more');
  sim.run(60_000);
  assert.is(settledReports(), 2, 'later healthy observes send nothing');
  assert.equal(c.calls.filter((x) => x.action === 'create').length, 3, 'a replaced once, nothing acted twice');
});

test('gone -> recreated (new incarnation), error -> replaced, drifted -> updated back; the stack converges again', () => {
  const { sim, c } = world();
  const template = hot({
    gone: { type: 'Test::Server' },
    broken: { type: 'Test::Server' },
    drift: { type: 'Test::Server' },
    user: { type: 'OS::Heat::TestResource', properties: { value: { get_resource: 'gone' } } },
  });
  sim.setDesired('s', { op: 'create', name: 's', spec: { template } });
  sim.run(1_000);
  assert.is(sim.stack('s').status, 'READY');
  c.set('s/gone', 'gone');
  c.set('s/broken', 'error');
  c.set('s/drift', 'drifted');
  sim.run(13_000);
  assert.is(sim.stack('s').status, 'READY');
  assert.ok(sim.events.some((e) => !e.resource && e.action === 'CHECK' && e.status === 'IN_PROGRESS' && e.reason === 'Repairing drift'), 'the stack showed converging (CHECK_IN_PROGRESS)');
  assert.is(sim.resource('s', 'gone')!.current!.physicalId, 'id-res/s/gone#1', 'recreated as a new incarnation');
  assert.is(sim.resource('s', 'broken')!.current!.physicalId, 'id-res/s/broken#1', 'replaced');
  assert.is(sim.resource('s', 'drift')!.current!.physicalId, 'id-res/s/drift#0', 'same incarnation');
  assert.ok(c.calls.some((x) => x.action === 'update' && x.key === 'res/s/drift#0'), 'updated back');
  assert.is(c.objects.get('res/s/drift#0')!.health, 'ok');
  assert.ok(c.calls.some((x) => x.action === 'delete' && x.key === 'res/s/broken#0'), 'the broken one deleted');
  assert.is(sim.resource('s', 'user')!.deps.gone!.ref, 'id-res/s/gone#1', 'dependants see the new one');
  assert.equal([...c.objects.keys()].sort(), ['res/s/broken#1', 'res/s/drift#0', 'res/s/gone#1']);
  for (const n of ['gone', 'broken', 'drift']) {
    assert.ok(sim.events.some((e) => e.resource === n && e.action === 'CHECK' && e.status === 'FAILED'), `a CHECK event for ${n}`);
  }
});

test('the stack stays CONVERGING until every repair has finished: plain resources, group members, members of nested stacks', () => {
  const { sim, c } = world(['Test::Server'], slowActions);
  const template = hot({
    a: { type: 'Test::Server' },
    g: { type: 'OS::Heat::ResourceGroup', properties: { count: 2, resource_def: { type: 'Test::Server' } } },
    n: { type: 'OS::Heat::Stack', properties: { template: { heat_template_version: '2016-10-14', resources: { inner: { type: 'Test::Server' } } } } },
  });
  sim.setDesired('s', { op: 'create', name: 's', spec: { template } });
  sim.run(10_000);
  assert.is(sim.stack('s').status, 'READY');
  const g = sim.resource('s', 'g')!.current!.child!;
  const n = sim.resource('s', 'n')!.current!.child!;
  for (const victim of ['s/a', `${g}/0`, `${n}/inner`]) {
    c.set(victim, 'gone');
    const seen: string[] = [];
    const wrong: string[] = [];
    sim.run(30_000, 2_000_000, () => {
      const busy = repairsInFlight(sim);
      seen.push(...busy);
      if (busy.length > 0 && sim.stack('s').status !== 'CONVERGING') wrong.push(`${sim.stack('s').status} while repairing ${busy.join(', ')}`);
    });
    assert.ok(seen.some((x) => x.startsWith(`res/${victim}`)), `${victim}: its repair was seen in flight`);
    assert.equal(wrong, [], `${victim}: the stack showed done before the repair finished`);
    assert.is(sim.stack('s').status, 'READY', `${victim}: READY again`);
    assert.is(`${sim.stack('s').action}_${sim.stack('s').heatStatus}`, 'CHECK_COMPLETE', "Heat's pair after a repair");
    assert.is(c.objects.size, 4, 'one object per resource');
  }
});

test('repairs are rate-limited per stack: a mass failure is repaired at the permit rate', () => {
  const { sim, c } = world();
  const resources: Record<string, unknown> = {};
  for (let i = 0; i < 10; i++) resources[`r${i}`] = { type: 'Test::Server' };
  sim.setDesired('s', { op: 'create', name: 's', spec: { template: hot(resources) } });
  sim.run(1_000);
  assert.is(sim.stack('s').status, 'READY');
  for (let i = 0; i < 10; i++) c.set(`s/r${i}`, 'gone');
  const t0 = sim.now;
  sim.run(30_000);
  assert.is(sim.stack('s').status, 'READY');
  const recreates = c.calls.filter((x) => x.action === 'create' && x.at > t0).map((x) => x.at).sort((a, b) => a - b);
  assert.is(recreates.length, 10, 'every resource recreated once');
  // Burst 2, then 1 per second: the k-th repair (k >= 2) starts no sooner than (k - 2) s after the first.
  recreates.forEach((t, k) => assert.ok(t - recreates[0]! >= (k - 2) * 1000 - 1, `repair ${k} at +${t - recreates[0]!} ms`));
  assert.is(c.objects.size, 10);
});

test('a broken data-holding resource outside a group fails the stack with a reason; inside a group it is replaced', () => {
  const { sim, c } = world(['OS::Cinder::Volume']);
  sim.setDesired('s', {
    op: 'create',
    name: 's',
    spec: {
      template: hot({
        vol: { type: 'OS::Cinder::Volume' },
        g: { type: 'OS::Heat::ResourceGroup', properties: { count: 2, resource_def: { type: 'OS::Cinder::Volume' } } },
      }),
    },
  });
  sim.run(1_000);
  assert.is(sim.stack('s').status, 'READY');
  const child = sim.resource('s', 'g')!.current!.child!;
  c.set(`${child}/0`, 'error');
  sim.run(13_000);
  assert.is(sim.resource(child, '0')!.current!.physicalId, `id-res/${child}/0#1`, 'the member was replaced');
  assert.is(sim.stack('s').status, 'READY');
  c.set('s/vol', 'error');
  sim.run(13_000);
  assert.is(sim.stack('s').status, 'FAILED');
  assert.match(sim.stack('s').reason, 'no right action exists');
  assert.is(sim.resource('s', 'vol')!.current!.physicalId, 'id-res/s/vol#0', 'not replaced');
});

test('check observes at once; mark-unhealthy replaces through the same permit path', () => {
  const { sim, c } = world();
  sim.setDesired('s', { op: 'create', name: 's', spec: { template: hot({ a: { type: 'Test::Server' } }) } });
  sim.run(1_000);
  c.set('s/a', 'gone');
  sim.send('res/s/a', { kind: 'check' });
  sim.run(100);
  assert.is(sim.resource('s', 'a')!.current!.physicalId, 'id-res/s/a#1', 'recreated before the interval elapsed');
  sim.send('res/s/a', { kind: 'unhealthy', reason: 'disk' });
  sim.run(100);
  assert.is(sim.resource('s', 'a')!.current!.physicalId, 'id-res/s/a#2');
  assert.equal([...c.objects.keys()], ['res/s/a#2']);
  assert.is(sim.stack('s').status, 'READY');
});

test('change notifications: resourceOfKey maps an idempotency key (with or without a suffix) to its actor', () => {
  assert.equal(resourceOfKey('res/s1/web#3'), { address: 'res/s1/web', inc: 3 });
  assert.equal(resourceOfKey('res/s1-g-0/12#0:port:ab12:0'), { address: 'res/s1-g-0/12', inc: 0 });
  assert.equal(resourceOfKey('res/s1/app/db#1'), { address: 'res/s1/app/db', inc: 1 });
  assert.is(resourceOfKey('someone-else'), null);
  assert.is(resourceOfKey('res/s1/web'), null);
  assert.is(resourceOfKey('res/s1/web#x'), null);
});

test('a check naming the current incarnation observes at once; one naming an old incarnation or a missing actor costs nothing', () => {
  const { sim, c } = world();
  sim.setDesired('s', { op: 'create', name: 's', spec: { template: hot({ a: { type: 'Test::Server' } }) } });
  sim.run(1_000);
  c.set('s/a', 'gone');
  const observes = () => c.calls.filter((x) => x.action === 'observe').length;
  sim.send('res/s/a', { kind: 'check', inc: 5 });
  sim.run(100);
  assert.is(observes(), 0, 'not the current incarnation: no observation');
  sim.send('res/s/a', { kind: 'check', inc: 0 });
  sim.run(100);
  assert.is(observes(), 1);
  assert.is(sim.resource('s', 'a')!.current!.physicalId, 'id-res/s/a#1', 'recreated long before the 10 s poll');
  sim.send('res/s/nothing', { kind: 'check', inc: 0 });
  sim.run(100);
  assert.is(sim.states.has('res/s/nothing'), false, 'no record for an actor that holds nothing');
});

test('a check that arrives while an observation is in flight observes again once it is done (a racing change is not lost)', () => {
  const { sim, c } = world(['Test::Server'], (input) => ((input as { action: string }).action === 'observe' ? 500 : 0));
  sim.setDesired('s', { op: 'create', name: 's', spec: { template: hot({ a: { type: 'Test::Server' } }) } });
  sim.run(1_000);
  sim.send('res/s/a', { kind: 'check' });
  sim.step(10);
  assert.is(sim.resource('s', 'a')!.op?.action, 'observe', 'an observation in flight');
  // The object goes after the observation read it: the change notification arrives mid-flight.
  c.set('s/a', 'gone');
  sim.send('res/s/a', { kind: 'check', inc: 0 });
  sim.run(2_000);
  assert.is(c.calls.filter((x) => x.action === 'observe').length, 2, 'observed again');
  assert.is(sim.resource('s', 'a')!.current!.physicalId, 'id-res/s/a#1', 'recreated');
});

test('a create that completes after its resource was removed is still deleted (its type is kept)', () => {
  const { sim, c } = world();
  const b = sim.behaviors.get('res')!;
  const ctx = (i: number) => ({ self: 'res/s/a', msgId: `m${i}`, now: 1_000 + i });
  const desire = (gen: number, def: unknown) => ({ kind: 'desire', gen, parent: 'shard/s/n0', slot: 0, tenant: 'default', stackId: 's', stackName: 's', def, requires: [], dependants: [] });
  const def = { type: 'Test::Server', properties: {}, scope: null, deletionPolicy: 'Delete', updatePolicy: null, metadata: null };
  let r = b.reduce(b.initial('res/s/a'), desire(1, def), ctx(1));
  const task = r.effects.find((e) => e.type === 'task') as { name: string } | undefined;
  assert.ok(task, 'the create started');
  r = b.reduce(r.state, desire(2, null), ctx(2));
  r = b.reduce(r.state, { kind: '$task', name: task!.name, ok: true, value: { physicalId: 'phys-a', attrs: {} }, idempotencyKey: 'k' }, ctx(3));
  const del = r.effects.find((e) => e.type === 'task') as { input: { action: string; request: { physicalId: string } } } | undefined;
  assert.is(del?.input.action, 'delete', 'the late create is deleted, not forgotten');
  assert.is(del?.input.request.physicalId, 'phys-a');
  assert.ok(c);
});

test('a deleted stack stops observing (no timers left behind)', () => {
  const { sim, c } = world();
  sim.setDesired('s', { op: 'create', name: 's', spec: { template: hot({ a: { type: 'Test::Server' } }) } });
  sim.run(1_000);
  sim.setDesired('s', { op: 'delete', name: 's' });
  sim.run(1_000);
  assert.is(sim.stack('s').status, 'DELETED');
  const n = c.calls.length;
  sim.run(60_000);
  assert.is(c.calls.length, n);
  assert.is(sim.resource('s', 'a'), undefined);
});

for (const lost of ['repairPermit', 'permit'] as const) {
  test(`a lost \`${lost}\` is asked for again after PERMIT_ASK_MS: the repair happens once, no timer is left`, () => {
    let sim: Sim;
    const c = cloud(() => sim);
    let dropped = 0;
    sim = new Sim({
      extraTypes: [c.type('Test::Server')],
      task: c.task,
      heal: HEAL,
      lose: (_to, m) => (m as { kind: string }).kind === lost && dropped++ === 0,
    });
    sim.setDesired('s', { op: 'create', name: 's', spec: { template: hot({ a: { type: 'Test::Server' } }) } });
    sim.run(1_000);
    c.set('s/a', 'gone');
    sim.run(20_000);
    assert.is(dropped, 1);
    assert.ok(sim.resource('s', 'a')!.repair, 'waiting for its permit');
    assert.is(sim.stack('s').status, 'CONVERGING');
    sim.run(PERMIT_ASK_MS);
    assert.is(sim.stack('s').status, 'READY');
    assert.is(sim.resource('s', 'a')!.current!.physicalId, 'id-res/s/a#1', 'recreated once');
    assert.is(c.calls.filter((x) => x.action === 'create').length, 2);
    assert.not.ok(sim.armed('res/s/a').includes('permit'));
  });
}

test.run();
