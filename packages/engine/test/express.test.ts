/**
 * Express sends (a completion overtakes the fan-out queued in a partition): which sends are
 * express, and that their receivers are right whatever order they arrive in.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Effect, MessageContext } from '@kiln/runtime';
import { builtinTypes, DEFAULT_TREE, HotTemplateAdapter, reduceResource, reduceShard, TypeRegistry, type ShardMsg } from '../src/index.js';
import { taskType } from './helpers.js';
import { initialShardState, type ShardState } from '../src/shard.js';
import { initialResourceState, type ResourceState } from '../src/resource.js';
import type { DepData, MemberReport, ResourceDef, ResourceMsg } from '../src/types.js';
import { Sim } from './sim.js';

type Send = Extract<Effect, { type: 'send' }>;

const server = taskType('T::Server');

/** A sim recording every send of the resource actors (kind, express or not). */
function recordingSim(): { sim: Sim; sends: Array<{ kind: string; from: string; to: string; express: boolean; state?: string }> } {
  let n = 0;
  const sim = new Sim({ extraTypes: [server], task: () => ({ physicalId: `srv-${++n}`, attrs: { first_address: `ip-${n}` } }) });
  const sends: Array<{ kind: string; from: string; to: string; express: boolean; state?: string }> = [];
  const res = sim.behaviors.get('res')!;
  sim.behaviors.set('res', {
    ...res,
    reduce: (state, msg, ctx) => {
      const r = res.reduce(state, msg, ctx);
      for (const e of r.effects) {
        if (e.type !== 'send') continue;
        const m = e.msg as { kind: string; state?: string };
        sends.push({ kind: m.kind, from: ctx.self, to: e.to, express: e.express === true, ...(m.state ? { state: m.state } : {}) });
      }
      return r;
    },
  });
  return { sim, sends };
}

const template = {
  heat_template_version: '2018-08-31',
  resources: {
    srv: { type: 'T::Server', properties: {} },
    user: { type: 'OS::Heat::Value', properties: { value: { get_attr: ['srv', 'first_address'] } } },
  },
};

test('after a task completes, the first report and ready of a generation and every moved are express; a repair\'s and an instant pure resource\'s are not', () => {
  const { sim, sends } = recordingSim();
  sim.setDesired('s', { op: 'create', name: 's', spec: { template } });
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  const create = sends.filter((x) => ['report', 'ready', 'moved'].includes(x.kind));
  assert.equal(create.filter((x) => x.from === 'res/s/srv').map((x) => x.kind).sort(), ['ready', 'report']);
  // srv completes by a task result; user (pure) completes in the step its dependency's ready starts.
  for (const x of create.filter((y) => y.from === 'res/s/srv')) assert.ok(x.express, `${x.kind} from ${x.from} to ${x.to} is not express`);
  const user = create.filter((y) => y.from === 'res/s/user');
  assert.equal(user.map((x) => x.kind).sort(), ['moved', 'report']);
  for (const x of user) assert.not.ok(x.express, `${x.kind} from ${x.from} is express`);
  // A repair at the same generation: its reports and the new incarnation's ready keep their order.
  sends.length = 0;
  sim.send('res/s/srv', { kind: 'unhealthy', reason: 'test' } satisfies ResourceMsg);
  sim.run();
  assert.is(sim.stack('s').status, 'READY');
  assert.is((sim.resource('s', 'user') as ResourceState).deps.srv!.ref, 'srv-2');
  const repair = sends.filter((x) => x.from === 'res/s/srv' && (x.kind === 'report' || x.kind === 'ready'));
  assert.equal(repair.map((x) => `${x.kind}${x.state ? `:${x.state}` : ''}`), ['report:repairing', 'ready', 'report:settled']);
  for (const x of repair) assert.not.ok(x.express, `${x.kind} of a repair is express`);
});

const types = new TypeRegistry([...builtinTypes]);
const deps = { types, template: new HotTemplateAdapter() };
const ctx = (self: string, n: number): MessageContext => ({ self, msgId: `m${n}`, now: 1_000 + n });

const valueDef = (value: unknown): ResourceDef => ({
  type: 'OS::Heat::Value',
  properties: { value },
  scope: { version: '2018-08-31', params: {}, conditions: {}, files: {}, stackId: 's', stackName: 's' },
  deletionPolicy: 'Delete',
  updatePolicy: null,
  metadata: null,
});

const desire = (gen: number): ResourceMsg => ({
  kind: 'desire',
  gen,
  parent: 'shard/s/n0',
  slot: 0,
  tenant: 't',
  stackId: 's',
  stackName: 's',
  def: valueDef({ get_attr: ['a', 'value'] }),
  requires: ['a'],
  dependants: [],
});
const ready = (gen: number, value: string): ResourceMsg => ({ kind: 'ready', from: 'a', data: { gen, ref: `a-${gen}`, attrs: { value }, type: 'OS::Heat::Value' } satisfies DepData });

/** Feeds messages to one resource actor in order; returns its state. */
function feed(msgs: ResourceMsg[]): ResourceState {
  let state: ResourceState | null = initialResourceState('res/s/b');
  msgs.forEach((m, i) => {
    state = reduceResource(deps, state!, m, ctx('res/s/b', i)).state as ResourceState | null;
  });
  return state!;
}

test('ready out of order: an older generation\'s data arriving after a newer one changes nothing', () => {
  const s = feed([desire(1), ready(1, 'v1'), desire(2), ready(2, 'v2'), ready(1, 'v1-late')]);
  assert.is(s.deps.a!.gen, 2);
  assert.is(s.current!.attrs.value, 'v2');
  assert.is(s.readyGen, 2);
});

test('ready before its desire (it overtook the fan-out): kept, and used when the desire comes', () => {
  const s = feed([ready(1, 'early'), desire(1)]);
  assert.is(s.current!.attrs.value, 'early');
  assert.is(s.reported?.state, 'settled');
});

test('report out of order: a member\'s report of an older generation does not undo its newer state at the shard', () => {
  const shardDesire = (gen: number): ShardMsg => ({
    kind: 'shardDesire',
    gen,
    parent: 'stack/s',
    tenant: 't',
    stackId: 's',
    stackName: 's',
    slot: 0,
    named: [{ name: 'b', def: valueDef(1), requires: [], dependants: [] }],
  });
  const report = (gen: number, state: MemberReport['state']): MemberReport => ({ kind: 'report', gen, slot: 0, state, name: 'b', ...(state === 'failed' ? { reason: 'old' } : {}) });
  let s: ShardState = initialShardState();
  const up: Effect[] = [];
  [shardDesire(1), shardDesire(2), report(2, 'settled'), report(1, 'failed'), report(1, 'settled')].forEach((m, i) => {
    const r = reduceShard(DEFAULT_TREE, s, m, ctx('shard/s/n0', i));
    s = r.state as ShardState;
    up.push(...r.effects.filter((e) => e.type === 'send' && e.to === 'stack/s'));
  });
  assert.is(s.gen, 2);
  assert.equal(s.counts, { settled: 1, failed: 0, gone: 0 });
  assert.equal(
    up.map((e) => ((e as Send).msg as { gen: number; settled: number; failed: number })).map((m) => `${m.gen}:${m.settled}/${m.failed}`),
    ['2:1/0'],
  );
});

test.run();
