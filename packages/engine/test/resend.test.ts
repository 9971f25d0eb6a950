/**
 * Level-triggered convergence: mail the mailbox stream loses (nats-server 2.9 replica resets,
 * docs/chaos.md finding 6) is made up for by the supervisor's `resend` timer and the repeat
 * cascading down the shard tree to the children that have not reported.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Sim } from './sim.js';
import { builtinTypes, HotTemplateAdapter, resourceBehavior, TypeRegistry, type ResourceState, type StackSpec } from '../src/index.js';
import { DEFAULT_RESEND, RESEND_SPEC_LIMIT } from '../src/stack.js';
import { DEFAULT_TREE, initialShardState, reduceShard, type ShardState } from '../src/shard.js';
import type { ShardMsg } from '../src/types.js';

const hot = (resources: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ heat_template_version: '2016-10-14', resources, ...extra });
const chain = hot({
  a: { type: 'OS::Heat::RandomString', properties: { length: 8 } },
  b: { type: 'OS::Heat::TestResource', properties: { value: { get_attr: ['a', 'value'] } } },
  c: { type: 'OS::Heat::TestResource', properties: { value: { get_attr: ['b', 'output'] } } },
});
const group = (count: number) => hot({ g: { type: 'OS::Heat::ResourceGroup', properties: { count, resource_def: { type: 'OS::Heat::TestResource', properties: { value: 'm-%index%' } } } } });

type Sent = { to: string; msg: { kind: string; [k: string]: unknown }; at: number };

/** A sim whose stream loses the first message matching each predicate, recording every send. */
function lossy(lose: Array<(to: string, msg: Sent['msg']) => boolean>, opts: ConstructorParameters<typeof Sim>[0] = {}): { sim: Sim; sent: Sent[]; lost: Sent[] } {
  const sent: Sent[] = [];
  const lost: Sent[] = [];
  const left = [...lose];
  const sim: Sim = new Sim({
    ...opts,
    lose: (to, m) => {
      const msg = m as Sent['msg'];
      sent.push({ to, msg, at: sim.now });
      const i = left.findIndex((p) => p(to, msg));
      if (i < 0) return false;
      left.splice(i, 1);
      lost.push({ to, msg, at: sim.now });
      return true;
    },
  });
  return { sim, sent, lost };
}

const create = (sim: Sim, id: string, spec: StackSpec) => sim.setDesired(id, { op: 'create', name: id, spec });
const completes = (sim: Sim, resource: string) => sim.events.filter((e) => e.resource === resource && e.status === 'COMPLETE').length;

test('a lost desire is sent again by the resend timer: the stack converges and the resource acts once', () => {
  const { sim, sent, lost } = lossy([(to, m) => to === 'res/s/b' && m.kind === 'desire']);
  create(sim, 's', { template: chain });
  sim.run();
  assert.is(lost.length, 1);
  assert.is(sim.stack('s').status, 'READY');
  assert.is(sent.filter((x) => x.to === 'res/s/b' && x.msg.kind === 'desire').length, 2);
  assert.ok(sent.filter((x) => x.to === 'shard/s/n0' && x.msg.kind === 'shardDesire').every((x, i) => i === 0 || x.at - sent[0]!.at >= DEFAULT_RESEND.firstMs));
  for (const r of ['a', 'b', 'c']) assert.is(completes(sim, r), 1, r);
  // Every shard reached the generation: the timer is gone, nothing is kept for it.
  assert.not.ok(sim.armed('stack/s').includes('resend'));
  assert.is(sim.stack('s').resend, null);
});

test('a lost report is asked for again: the settled resource reports again without acting again', () => {
  const { sim, sent } = lossy([(_, m) => m.kind === 'report' && m.name === 'c', (_, m) => m.kind === 'shardReport']);
  create(sim, 's', { template: chain });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  assert.ok(sent.filter((x) => x.msg.kind === 'report' && x.msg.name === 'c').length >= 2);
  for (const r of ['a', 'b', 'c']) assert.is(completes(sim, r), 1, r);
  assert.is(sim.resource('s', 'c')!.nextInc, 1, 'one incarnation made');
});

test("a delete whose shard desire was lost still ends DELETED (chaos finding 6)", () => {
  const { sim } = lossy([(to, m) => to === 'shard/s/n0' && m.kind === 'shardDesire' && m.gen === 2]);
  create(sim, 's', { template: chain });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  sim.setDesired('s', { op: 'delete', name: 's' });
  sim.run();
  assert.is(sim.stack('s').status, 'DELETED');
  assert.is(sim.physicalCount('res/s/'), 0);
});

test('nothing is sent again when every shard reported', () => {
  const names = Array.from({ length: 7 }, (_, i) => `r${i}`);
  const { sim, sent } = lossy([], { tree: { leaf: 3, fanout: 2 } });
  create(sim, 's', { template: hot(Object.fromEntries(names.map((n) => [n, { type: 'OS::Heat::None' }]))) });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  assert.is(sent.filter((x) => x.msg.kind === 'shardDesire').length, 3);
  assert.is(sent.filter((x) => x.msg.kind === 'desire').length, 7);
  assert.not.ok(sim.armed('stack/s').includes('resend'));
});

test('while a shard works, only it is desired again, at 30 s doubling to 5 min; its working member ignores the repeat', () => {
  const { sim, sent } = lossy([], { tree: { leaf: 1, fanout: 4 } });
  create(sim, 's', {
    template: hot({
      a: { type: 'OS::Heat::None' },
      h: { type: 'OS::Heat::WaitConditionHandle' },
      w: { type: 'OS::Heat::WaitCondition', properties: { handle: { get_resource: 'h' }, timeout: 86_400 } },
    }),
  });
  const t0 = sim.now;
  sim.run(20 * 60_000);
  assert.is(sim.stack('s').status, 'CONVERGING');
  const repeats = sent.filter((x) => x.msg.kind === 'shardDesire' && x.at > t0);
  assert.ok(repeats.length > 0);
  assert.equal([...new Set(repeats.map((x) => x.to))].length, 1, 'only the shard of the waiting resource');
  assert.equal(
    repeats.map((x) => x.at - t0),
    [30, 90, 210, 450, 750, 1050].map((s) => s * 1000),
  );
  assert.is(sent.filter((x) => x.to === 'res/s/w' && x.msg.kind === 'desire').length, 1 + repeats.length);
  assert.is(sent.filter((x) => x.to === 'res/s/a' && x.msg.kind === 'desire').length, 1);
  assert.is(sim.events.filter((e) => e.resource === 'w').length, 1, 'one IN_PROGRESS, no repeats');
});

test("a lost `ready` a signal sends at the same generation: the waiting condition asks its handle at the shard's next repeat and completes", () => {
  let signalled = false;
  const { sim, lost } = lossy([(to, m) => signalled && to === 'res/s/w' && m.kind === 'ready']);
  create(sim, 's', {
    template: hot({
      h: { type: 'OS::Heat::WaitConditionHandle' },
      w: { type: 'OS::Heat::WaitCondition', properties: { handle: { get_resource: 'h' }, timeout: 86_400 } },
    }),
  });
  sim.run(1_000);
  signalled = true;
  sim.send('res/s/h', { kind: 'signal', data: { id: 'x', status: 'SUCCESS', data: 'go' } });
  sim.run(5_000);
  assert.is(lost.length, 1, 'the signalled ready was lost');
  assert.is(sim.stack('s').status, 'CONVERGING');
  sim.run(DEFAULT_RESEND.firstMs);
  assert.is(sim.stack('s').status, 'READY');
  assert.is(sim.events.filter((e) => e.resource === 'w' && e.status === 'COMPLETE').length, 1);
});

test('a duplicate desire: a settled resource reports again and does nothing else; an older generation is ignored', () => {
  const desires: Sent[] = [];
  const sim = new Sim({ lose: (to, m) => (to === 'res/s/b' && (m as Sent['msg']).kind === 'desire' && desires.push({ to, msg: m as Sent['msg'], at: 0 }), false) });
  create(sim, 's', { template: chain });
  sim.run();
  const types = new TypeRegistry(builtinTypes);
  const b = resourceBehavior({ template: new HotTemplateAdapter(), types });
  const state = sim.resource('s', 'b') as ResourceState;
  const ctx = { self: 'res/s/b', msgId: 'dup', now: sim.now };
  const r = b.reduce(state, desires[0]!.msg as never, ctx);
  assert.equal(
    r.effects.map((e) => e.type),
    ['send'],
  );
  const report = r.effects[0] as { to: string; msg: { kind: string; state: string; gen: number } };
  assert.equal([report.to, report.msg.kind, report.msg.state, report.msg.gen], ['shard/s/n0', 'report', 'settled', 1]);
  assert.equal((r.state as ResourceState).current, state.current);
  const older = b.reduce({ ...state, gen: 2 }, desires[0]!.msg as never, ctx);
  assert.equal(older.effects, []);
});

test("a group's shard tree heals lost desires and reports at every level", () => {
  const { sim, lost } = lossy(
    [
      (to, m) => /^shard\/s-g-[^/]+\/g0\./.test(to) && m.kind === 'shardDesire',
      (to, m) => /^res\/s-g-[^/]+\/7$/.test(to) && m.kind === 'desire',
      (to, m) => /^shard\/s-g-[^/]+\/g0\.12$/.test(to) && m.kind === 'report',
      (to, m) => /^shard\/s-g-[^/]+\/g1\./.test(to) && m.kind === 'shardReport',
      (to, m) => /^stack\/s-g-/.test(to) && m.kind === 'shardReport',
    ],
    { tree: { leaf: 4, fanout: 2 } },
  );
  create(sim, 's', { template: group(20) });
  sim.run();
  assert.is(lost.length, 5);
  assert.is(sim.stack('s').status, 'READY');
  const child = sim.resource('s', 'g')!.current!.child!;
  assert.is(sim.stack(child).status, 'READY');
  for (let i = 0; i < 20; i++) assert.is(completes(sim, `g/${i}`), 1, `member ${i}`);
});

test("a nested stack's lost desire and its lost answer are sent again (the step's token makes the repeat harmless)", () => {
  for (const kind of ['setDesired', 'child']) {
    const { sim, lost } = lossy([(to, m) => m.kind === kind && (kind === 'child' ? to === 'res/s/g' : to.startsWith('stack/s-g-'))], { tree: { leaf: 4, fanout: 2 } });
    create(sim, 's', { template: group(3) });
    sim.run();
    assert.is(lost.length, 1, kind);
    assert.is(sim.stack('s').status, 'READY', kind);
    const child = sim.resource('s', 'g')!.current!.child!;
    assert.is(sim.stack(child).gen, 1, `${kind}: the repeat made no new generation`);
    assert.is(sim.events.filter((e) => e.stackId === child && !e.resource && e.status === 'IN_PROGRESS').length, 1, kind);
  }
});

test('a rolling update: repeats go to members of opened batches only (with their `go`), and a lost `go` heals', () => {
  const rolling = (value: string) =>
    hot({ g: { type: 'OS::Heat::ResourceGroup', properties: { count: 4, resource_def: { type: 'OS::Heat::TestResource', properties: { value } } }, update_policy: { rolling_update: { max_batch_size: 1, pause_time: 100 } } } });
  const { sim, sent, lost } = lossy([(to, m) => /^res\/s-g-[^/]+\/1$/.test(to) && m.kind === 'go'], { tree: { leaf: 4, fanout: 2 } });
  create(sim, 's', { template: rolling('a') });
  sim.run();
  const from = sent.length;
  sim.setDesired('s', { op: 'update', name: 's', spec: { template: rolling('b') } });
  sim.run();
  assert.is(lost.length, 1);
  assert.is(sim.stack('s').status, 'READY');
  const child = sim.resource('s', 'g')!.current!.child!;
  const since = sent.slice(from);
  assert.ok(since.some((x) => x.to.startsWith(`shard/${child}/`) && x.msg.kind === 'shardDesire' && x.msg.again), 'the resend timer fired during the pauses');
  // Member 1 lost its go: desired again with a go; members of later batches were not desired before their batch.
  const desires = (i: number) => since.filter((x) => x.to === `res/${child}/${i}` && x.msg.kind === 'desire' && x.msg.gen === 2);
  assert.ok(desires(1).length >= 2);
  const firstGo3 = since.findIndex((x) => x.to === `res/${child}/3` && x.msg.kind === 'go');
  assert.is(since.slice(0, firstGo3).filter((x) => x.to === `res/${child}/3` && x.msg.kind === 'desire').length, 1);
  for (let i = 0; i < 4; i++) assert.is(sim.events.filter((e) => e.resource === `g/${i}` && e.action === 'UPDATE' && e.status === 'COMPLETE').length, 1, `member ${i}`);
});

test('a shard repeats desires only to children it has not heard from, once it heard nothing for the period; a probe never starts a generation', () => {
  const def = { type: 'OS::Heat::None', properties: {}, scope: null, deletionPolicy: 'Delete' as const, updatePolicy: null, metadata: null };
  const desire: ShardMsg = {
    kind: 'shardDesire',
    gen: 1,
    parent: 'stack/x',
    tenant: 't',
    stackId: 'x',
    stackName: 'x',
    slot: 0,
    named: ['a', 'b', 'c'].map((name) => ({ name, def, requires: [], dependants: [] })),
  };
  const step = (state: ShardState, msg: ShardMsg, now: number) => {
    const out = reduceShard(DEFAULT_TREE, state, msg, { self: 'shard/x/n0', msgId: `m${now}`, now });
    return { state: out.state!, effects: out.effects };
  };
  let r = step(initialShardState(), desire, 0);
  assert.is(r.effects.length, 3);
  r = step(r.state, { kind: 'report', gen: 1, slot: 0, state: 'settled', name: 'a' }, 10_000);
  assert.is(r.effects.length, 0);
  const again = { ...desire, again: { quietMs: 30_000 } };
  // Heard from `a` 20 s ago: its siblings are being worked on.
  assert.is(step(r.state, again, 30_000).effects.length, 0);
  const repeat = step(r.state, again, 40_000);
  assert.equal(
    repeat.effects.map((e) => (e.type === 'send' ? e.to : e.type)),
    ['res/x/b', 'res/x/c'],
  );
  assert.is(repeat.state.gen, 1);
  assert.is(repeat.state.counts.settled, 1, 'nothing reset');
  // A probe (no members) of a newer generation is not a desire for it.
  const probe: ShardMsg = { kind: 'shardDesire', gen: 2, parent: 'stack/x', tenant: 't', stackId: 'x', stackName: 'x', slot: 0, again: { quietMs: 30_000 } };
  const p = step(r.state, probe, 50_000);
  assert.is(p.state, r.state);
  assert.equal(p.effects, []);
});

test("a lost `ready` is asked for again: the dependant desired again asks its dependency, which answers it alone and acts once", () => {
  const { sim, sent, lost } = lossy([(to, m) => to === 'res/s/b' && m.kind === 'ready' && m.from === 'a']);
  create(sim, 's', { template: chain });
  sim.run();
  assert.is(lost.length, 1);
  assert.is(sim.stack('s').status, 'READY');
  for (const r of ['a', 'b', 'c']) assert.is(completes(sim, r), 1, r);
  assert.is(sim.resource('s', 'a')!.nextInc, 1, 'one incarnation made');
  assert.ok(sent.some((x) => x.to === 'res/s/a' && x.msg.kind === 'askReady' && x.msg.from === 'b' && x.msg.gen === 1));
  // The answer went to the asker only (c had its ready from b, not from a).
  assert.is(sent.filter((x) => x.msg.kind === 'ready' && x.msg.from === 'a').length, 2);
  assert.ok(sent.filter((x) => x.msg.kind === 'ready' && x.msg.from === 'a').every((x) => x.to === 'res/s/b'));
});

test("a lost `ready` to the outputs: READY waits for it and the supervisor asks for it (again with the resend, if the ask is lost too)", () => {
  const withOutput = hot(
    { a: { type: 'OS::Heat::TestResource', properties: { value: 'v' } }, b: { type: 'OS::Heat::TestResource', properties: { value: { get_attr: ['a', 'output'] } } } },
    { outputs: { out: { value: { get_attr: ['b', 'output'] } } } },
  );
  for (const loseAsk of [false, true]) {
    const { sim, sent, lost } = lossy([(to, m) => to === 'stack/s' && m.kind === 'ready', ...(loseAsk ? [(_: string, m: Sent['msg']) => m.kind === 'askReady'] : [])]);
    create(sim, 's', { template: withOutput });
    sim.run(24 * 3600_000, 2_000_000, () => {
      const st = sim.stack('s');
      if (st.status === 'READY') assert.equal(st.outputs, { out: 'v' }, 'never READY without the data');
    });
    assert.is(lost.length, loseAsk ? 2 : 1);
    assert.is(sim.stack('s').status, 'READY');
    assert.equal(sim.stack('s').outputs, { out: 'v' });
    assert.is(sim.events.filter((e) => !e.resource && e.status === 'COMPLETE').length, 1);
    assert.is(sent.filter((x) => x.to === 'res/s/b' && x.msg.kind === 'askReady').length, loseAsk ? 2 : 1);
    assert.not.ok(sim.armed('stack/s').includes('resend'));
  }
});

const replacing = (value: string) =>
  hot(
    {
      a: { type: 'OS::Heat::TestResource', properties: { value, update_replace: true } },
      b: { type: 'OS::Heat::TestResource', properties: { value: { get_attr: ['a', 'output'] } } },
    },
    { outputs: { out: { value: { get_attr: ['b', 'output'] } } } },
  );

test("a lost `moved` before a replaced incarnation's delete is asked for again: the old incarnation goes, nothing acts twice", () => {
  const { sim, sent, lost } = lossy([(to, m) => to === 'res/s/a' && m.kind === 'moved' && m.gen === 2]);
  create(sim, 's', { template: replacing('x') });
  sim.run();
  sim.setDesired('s', { op: 'update', name: 's', spec: { template: replacing('y') } });
  sim.run();
  assert.is(lost.length, 1);
  assert.is(sim.stack('s').status, 'READY');
  assert.is(sim.stack('s').gen, 2);
  assert.is(sim.resource('s', 'a')!.old.length, 0, 'the replaced incarnation is deleted');
  assert.is(sim.physicalCount('res/s/'), 2);
  assert.ok(sent.some((x) => x.to === 'res/s/b' && x.msg.kind === 'askMoved' && x.msg.from === 'a' && x.msg.gen === 2));
  assert.is(sim.events.filter((e) => e.resource === 'b' && e.gen === 2 && e.status === 'COMPLETE').length, 1);
  assert.is(sim.resource('s', 'a')!.nextInc, 2, 'one replacement');
});

test("a lost `moved` of a deleted dependant: the dependency asks, the dependant's empty actor answers (it references nothing) and keeps no record", () => {
  const { sim, sent, lost } = lossy([(to, m) => to === 'res/s/a' && m.kind === 'moved' && m.gen === 2]);
  create(sim, 's', { template: chain });
  sim.run();
  sim.setDesired('s', { op: 'delete', name: 's' });
  sim.run();
  assert.is(lost.length, 1);
  assert.is(sim.stack('s').status, 'DELETED');
  assert.is(sim.physicalCount('res/s/'), 0);
  assert.ok(sent.some((x) => x.to === 'res/s/b' && x.msg.kind === 'askMoved'));
  assert.not.ok(sim.states.has('res/s/b'), 'the answer left no record');
});

/** 8 members under two top shards of two leaves each; batches of 3 with 100 s pauses. */
const rollingTree = { tree: { leaf: 2, fanout: 2 } };
const rolling8 = (value: string) =>
  hot({ g: { type: 'OS::Heat::ResourceGroup', properties: { count: 8, resource_def: { type: 'OS::Heat::TestResource', properties: { value } } }, update_policy: { rolling_update: { max_batch_size: 3, pause_time: 100 } } } });

/** Runs a rolling update of rolling8 and checks it finished batch by batch, each member updated once. */
function rollOut(lose: Array<(to: string, msg: Sent['msg']) => boolean>): { sent: Sent[]; lost: Sent[]; child: string } {
  const { sim, sent, lost } = lossy(lose, rollingTree);
  create(sim, 's', { template: rolling8('a') });
  sim.run();
  sim.setDesired('s', { op: 'update', name: 's', spec: { template: rolling8('b') } });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  const child = sim.resource('s', 'g')!.current!.child!;
  assert.is(sim.stack(child).status, 'READY');
  const updated = sim.events.filter((e) => e.action === 'UPDATE' && e.status === 'COMPLETE' && e.resource?.startsWith('g/'));
  for (let i = 0; i < 8; i++) assert.is(updated.filter((e) => e.resource === `g/${i}`).length, 1, `member ${i} updated once`);
  // Batch by batch: no member of a later batch completes before one of an earlier batch.
  const batches = updated.map((e) => Math.floor(Number(e.resource!.slice(2)) / 3));
  assert.equal(batches, [...batches].sort((x, y) => x - y));
  return { sent, lost, child };
}

test('a lost `openBatch` (from the supervisor and from an inner shard) is sent again with the resend: the rollout goes on', () => {
  const { lost, sent } = rollOut([
    (to, m) => /^shard\/s-g-[^/]+\/g1\.4$/.test(to) && m.kind === 'openBatch',
    (to, m) => /^shard\/s-g-[^/]+\/g0\.2$/.test(to) && m.kind === 'openBatch',
  ]);
  assert.is(lost.length, 2);
  assert.ok(sent.filter((x) => /\/g1\.4$/.test(x.to) && x.msg.kind === 'openBatch').length >= 2);
});

test('a lost `batchDone` (to the supervisor and to an inner shard) is sent again by the shard the batch is opened in again; counted once', () => {
  const { lost, sent } = rollOut([
    (to, m) => /^stack\/s-g-/.test(to) && m.kind === 'batchDone',
    (to, m) => /^shard\/s-g-[^/]+\/g1\.4$/.test(to) && m.kind === 'batchDone',
  ]);
  assert.is(lost.length, 2);
  assert.ok(sent.filter((x) => x.to.startsWith('stack/s-g-') && x.msg.kind === 'batchDone').length >= 2);
});

test('nothing extra is sent when nothing is lost: no asks, one openBatch and one batchDone per shard and batch', () => {
  const { sim, sent } = lossy([]);
  create(sim, 's', { template: replacing('x') });
  sim.run();
  sim.setDesired('s', { op: 'update', name: 's', spec: { template: replacing('y') } });
  sim.run();
  sim.setDesired('s', { op: 'delete', name: 's' });
  sim.run();
  assert.is(sim.stack('s').status, 'DELETED');
  assert.is(sent.filter((x) => x.msg.kind === 'askReady' || x.msg.kind === 'askMoved').length, 0);
  // Per generation: a's ready to b, b's moved to a (create, replacement, delete), nothing more.
  assert.is(sent.filter((x) => x.msg.kind === 'ready' && x.to === 'res/s/b').length, 2);
  assert.is(sent.filter((x) => x.msg.kind === 'moved').length, 3);

  const { sent: rolled } = rollOut([]);
  assert.is(rolled.filter((x) => x.msg.kind === 'askReady' || x.msg.kind === 'askMoved').length, 0);
  const once = (kind: string) => {
    const keys = rolled.filter((x) => x.msg.kind === kind).map((x) => `${x.to} ${String(x.msg.gen)} ${String(x.msg.lo)} ${String(x.msg.slot)}`);
    assert.is(new Set(keys).size, keys.length, `${kind}: none repeated`);
    return keys.length;
  };
  // Batches [0,3) [3,6) [6,8): top shards 1 + 2 + 1, leaves 2 + 2 + 1.
  assert.is(once('openBatch'), 9);
  assert.is(once('batchDone'), 9);
});

test('an inner shard counts a repeated `batchDone` once and answers a repeated `openBatch` of a finished batch with its `batchDone`', () => {
  const tree = { leaf: 2, fanout: 2 };
  const spec = { shape: { count: 4, removed: [] }, member: { type: 'OS::Heat::None', properties: {} }, indexVar: '%index%', collect: false, mode: 'append' as const, rollout: { prev: { count: 4, removed: [] } } };
  const desire: ShardMsg = { kind: 'shardDesire', gen: 1, parent: 'stack/x', tenant: 't', stackId: 'x', stackName: 'x', slot: 1, group: { level: 1, lo: 0, hi: 4, spec } };
  let state = initialShardState();
  const step = (msg: ShardMsg) => {
    const out = reduceShard(tree, state, msg, { self: 'shard/x/g1.0', msgId: 'm', now: 0 });
    state = out.state!;
    return out.effects.map((e) => (e.type === 'send' ? `${e.to} ${(e.msg as { kind: string }).kind}` : e.type));
  };
  step(desire);
  assert.equal(step({ kind: 'openBatch', gen: 1, lo: 0, hi: 4 }), ['shard/x/g0.0 openBatch', 'shard/x/g0.2 openBatch']);
  assert.equal(step({ kind: 'batchDone', gen: 1, failed: 0, slot: 0, lo: 0 }), []);
  assert.equal(step({ kind: 'batchDone', gen: 1, failed: 0, slot: 0, lo: 0 }), [], 'a repeat counts once');
  // Opened again while a child has not said done: opened again in that child only.
  assert.equal(step({ kind: 'openBatch', gen: 1, lo: 0, hi: 4 }), ['shard/x/g0.2 openBatch']);
  assert.equal(step({ kind: 'batchDone', gen: 1, failed: 0, slot: 1, lo: 0 }), ['stack/x batchDone']);
  assert.equal(step({ kind: 'openBatch', gen: 1, lo: 0, hi: 4 }), ['stack/x batchDone'], 'done: said again');
});

test('a template too large to keep: the repeat is a probe, and a lost shard report is still asked for again', () => {
  const big = 'x'.repeat(RESEND_SPEC_LIMIT + 1024);
  // A nested stack's spec, or one the store no longer holds at this generation: nothing comes back.
  const { sim, lost } = lossy([(_, m) => m.kind === 'shardReport'], { task: () => null });
  create(sim, 's', { template: hot({ a: { type: 'OS::Heat::TestResource', properties: { value: big } } }) });
  sim.run();
  assert.is(lost.length, 1);
  assert.is(sim.stack('s').status, 'READY');
  assert.is(completes(sim, 'a'), 1);
});

test("a template too large to keep: a top-level stack's lost desire is sent again from the spec read back (a task), which is not kept", () => {
  const big = 'x'.repeat(RESEND_SPEC_LIMIT + 1024);
  const spec: StackSpec = { template: hot({ a: { type: 'OS::Heat::TestResource', properties: { value: big } }, b: { type: 'OS::Heat::TestResource', properties: { value: 'b' } } }) };
  const asked: unknown[] = [];
  const { sim, sent, lost } = lossy([(to, m) => to === 'res/s/b' && m.kind === 'desire'], {
    // The engine's spec store, as the task reads it: the stored generation's spec.
    task: (input) => {
      asked.push(input);
      return (input as { gen: number }).gen === 1 ? spec : null;
    },
  });
  create(sim, 's', spec);
  sim.run(DEFAULT_RESEND.firstMs - 1_000);
  assert.is(lost.length, 1);
  assert.is(sim.stack('s').status, 'CONVERGING');
  assert.ok(sim.stack('s').resend?.unkept, 'the generation is kept without its spec');
  assert.is(sim.stack('s').resend?.g, undefined);
  assert.is(JSON.stringify(sim.stack('s')).includes(big), false, 'the spec is not in the record');
  sim.run();
  assert.equal(asked, [{ stackId: 's', gen: 1 }]);
  assert.is(sim.stack('s').status, 'READY');
  assert.is(sent.filter((x) => x.to === 'res/s/b' && x.msg.kind === 'desire').length, 2);
  for (const r of ['a', 'b']) assert.is(completes(sim, r), 1, r);
  assert.is(sim.stack('s').resend, null);
});

test("a nested template too large to keep: a lost desire inside it is sent again when the parent resource repeats its step's setDesired", () => {
  const big = 'x'.repeat(RESEND_SPEC_LIMIT + 1024);
  const inner = hot({ a: { type: 'OS::Heat::TestResource', properties: { value: big } }, b: { type: 'OS::Heat::TestResource', properties: { value: 'b' } } });
  const outer: StackSpec = { template: hot({ n: { type: 'OS::Heat::Stack', properties: { template: inner } } }) };
  // The spec store holds the top-level stack's spec (as large), not the nested one's.
  const { sim, sent, lost } = lossy([(to, m) => to === 'res/s-n-0/a' && m.kind === 'desire'], { task: (input) => ((input as { stackId: string }).stackId === 's' ? outer : null) });
  create(sim, 's', outer);
  sim.run();
  assert.is(lost.length, 1);
  assert.is(sim.stack('s').status, 'READY');
  const child = sim.resource('s', 'n')!.current!.child!;
  assert.is(sim.stack(child).status, 'READY');
  assert.ok(sim.stack(child).resend === null);
  assert.is(sent.filter((x) => x.to === `res/${child}/a` && x.msg.kind === 'desire').length, 2, 'desired again once');
  assert.is(completes(sim, 'n/a'), 1, 'a acted once');
});

test.run();
