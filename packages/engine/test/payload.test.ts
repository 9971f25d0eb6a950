/**
 * What desires and `ready`s carry: a resource's scope holds only the files its expressions read,
 * a nested template only the files its stack can read, and a task resource's `ready` only the
 * attributes something reads.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Effect, MessageContext } from '@kiln/runtime';
import { DEFAULT_TREE, HotTemplateAdapter, reduceShard, type ResourceType, type ShardMsg, type StackSpec } from '../src/index.js';
import { taskType } from './helpers.js';
import { initialShardState } from '../src/shard.js';
import { attrsSent, type ResourceState } from '../src/resource.js';
import { attributesReadIn, filesNeeded, scopeReadIn } from '../src/template-adapter.js';
import type { ResolveScope, ResourceDef, ResourceMsg } from '../src/types.js';
import { Sim } from './sim.js';

const adapter = new HotTemplateAdapter();
const identity = { stackId: 's', stackName: 's' };

test('scopeReadIn: literal get_file keys and get_param names; a computed one means any', () => {
  const read = scopeReadIn({ a: { get_file: 'x.sh' }, b: [{ str_replace: { template: { get_file: 'y.txt' }, params: { p: { get_param: ['json', 'k'] } } } }], c: { Ref: 'cfn' }, d: { get_param: 'plain' } });
  assert.equal([...read.files!].sort(), ['x.sh', 'y.txt']);
  assert.equal([...read.params!].sort(), ['cfn', 'json', 'plain']);
  assert.equal(scopeReadIn({ a: 'get_file', b: { other: 1 } }), { files: new Set(), params: new Set() });
  assert.equal(scopeReadIn({ a: { get_file: { get_param: 'which' } } }), { files: null, params: new Set(['which']) });
  assert.equal(scopeReadIn({ a: { get_param: { get_param: 'which' } } }).params, null);
});

test('attributesReadIn: names by resource; the whole resource or a computed name means all', () => {
  const read = attributesReadIn([
    { get_attr: ['srv', 'first_address'] },
    { list_join: [',', [{ get_attr: ['srv', 'networks', 'private', 0] }, { 'Fn::GetAtt': ['db', 'endpoint'] }]] },
    { get_attr: ['whole'] },
    { get_attr: ['computed', { get_param: 'attr' }] },
    { get_resource: 'refOnly' },
  ]);
  assert.equal([...(read.get('srv') as Set<string>)].sort(), ['first_address', 'networks']);
  assert.equal([...(read.get('db') as Set<string>)], ['endpoint']);
  assert.is(read.get('whole'), true);
  assert.is(read.get('computed'), true);
  assert.is(read.has('refOnly'), false);
});

test('plan: attributesRead is the set dependants and outputs read (false when none, true for a whole read)', () => {
  const template = {
    heat_template_version: '2018-08-31',
    resources: {
      a: { type: 'OS::Heat::Value', properties: { value: 1 } },
      b: { type: 'OS::Heat::Value', properties: { value: { get_attr: ['a', 'value'] } } },
      c: { type: 'OS::Heat::Value', properties: { value: { get_resource: 'b' } } },
      d: { type: 'OS::Heat::Value', properties: { value: 2 } },
    },
    outputs: { o: { value: { get_attr: ['a', 'show'] } }, all: { value: { get_attr: ['d'] } } },
  };
  const plan = adapter.plan({ template }, identity);
  const by = Object.fromEntries(plan.resources.map((r) => [r.name, r.attributesRead]));
  assert.equal(by, { a: ['show', 'value'], b: false, c: false, d: true });
});

test('filesNeeded: the nested template text itself goes; files it names stay, transitively; a computed get_file keeps all', () => {
  const files = {
    'member.yaml': 'heat_template_version: 2018-08-31\nresources:\n  inner: {type: inner.yaml}\n',
    'inner.yaml': 'heat_template_version: 2018-08-31\nresources:\n  x: {type: OS::Heat::Value, properties: {value: {get_file: data.txt}}}\n',
    'data.txt': 'payload',
    'unrelated.sh': 'echo hi',
    'registered.yaml': 'heat_template_version: 2018-08-31\n',
  };
  const member = { heat_template_version: '2018-08-31', resources: { inner: { type: 'inner.yaml' }, v: { type: 'OS::Heat::Value', properties: { value: { get_file: 'unrelated.sh' } } } } };
  assert.equal(Object.keys(filesNeeded(member, undefined, files)).sort(), ['data.txt', 'inner.yaml', 'unrelated.sh']);
  // A file named by the environment (a registry entry) stays.
  assert.equal(Object.keys(filesNeeded({ resources: {} }, { resource_registry: { 'My::T': 'registered.yaml' } }, files)), ['registered.yaml']);
  // Nothing named: nothing kept (the fleet member: its own text dropped).
  assert.equal(filesNeeded({ resources: { p: { type: 'OS::Neutron::Port' } } }, undefined, files), {});
  const computed = { resources: { v: { type: 'OS::Heat::Value', properties: { value: { get_file: { get_param: 'f' } } } } } };
  assert.is(filesNeeded(computed, undefined, files), files);
  const computedInside = { 'a.yaml': "resources:\n  v: {type: OS::Heat::Value, properties: {value: {get_file: {get_param: f}}}}\n", 'b.txt': 'b' };
  assert.is(filesNeeded({ resources: { x: { type: 'a.yaml' } } }, undefined, computedInside), computedInside);
});

test('plan: a group member template carries only the files its stack reads', () => {
  const spec: StackSpec = {
    template: {
      heat_template_version: '2018-08-31',
      resources: { g: { type: 'OS::Heat::ResourceGroup', properties: { count: 2, resource_def: { type: 'member.yaml' } } } },
    },
    files: { 'member.yaml': 'heat_template_version: 2018-08-31\nresources:\n  v: {type: OS::Heat::Value, properties: {value: {get_file: script.sh}}}\n', 'script.sh': 'echo', 'other.txt': 'x' },
  };
  const g = adapter.plan(spec, identity).resources[0]!;
  assert.equal(g.groupMember?.nestedTemplate?.files, { 'script.sh': 'echo' });
});

const ctx = (self: string): MessageContext => ({ self, msgId: 'm1', now: 1 });

test('shard: a desire scope keeps only the files and parameters its own expressions read', () => {
  const scope: ResolveScope = { version: '2018-08-31', params: { p: 1, q: 2, constructor: 3 }, conditions: {}, files: { 'a.sh': 'A', 'b.sh': 'B' }, stackId: 's', stackName: 's' };
  const def = (properties: unknown): ResourceDef => ({ type: 'OS::Heat::Value', properties, scope: null, deletionPolicy: 'Delete', updatePolicy: null, metadata: null });
  const msg: ShardMsg = {
    kind: 'shardDesire',
    gen: 1,
    parent: 'stack/s',
    tenant: 't',
    stackId: 's',
    stackName: 's',
    slot: 0,
    scope,
    named: [
      { name: 'none', def: def({ value: { get_param: 'p' }, other: { get_param: 'toString' } }), requires: [], dependants: [] },
      { name: 'one', def: def({ value: { get_file: 'a.sh' } }), requires: [], dependants: [] },
      { name: 'any', def: def({ value: { get_file: { get_param: 'f' } }, v: { get_param: { get_param: 'q' } } }), requires: [], dependants: [] },
    ],
  };
  const r = reduceShard(DEFAULT_TREE, initialShardState(), msg, ctx('shard/s/n0'));
  const scopes = Object.fromEntries(
    r.effects.filter((e): e is Extract<Effect, { type: 'send' }> => e.type === 'send').map((e) => {
      const m = e.msg as Extract<ResourceMsg, { kind: 'desire' }>;
      return [e.to.split('/').pop(), { files: m.def?.scope?.files, params: m.def?.scope?.params }];
    }),
  );
  assert.equal(scopes, {
    none: { files: {}, params: { p: 1 } },
    one: { files: { 'a.sh': 'A' }, params: {} },
    any: { files: { 'a.sh': 'A', 'b.sh': 'B' }, params: { p: 1, q: 2, constructor: 3 } },
  });
});

test('attrsSent: a task type sends the attributes read; true sends all; other kinds and mapped attributes send all', () => {
  const attrs = { first_address: '10.0.0.1', show: { big: 'x'.repeat(100) }, name: 'n' };
  const task = taskType('T::Server');
  assert.equal(attrsSent(task, attrs, undefined), {});
  assert.equal(attrsSent(task, attrs, ['first_address', 'missing']), { first_address: '10.0.0.1' });
  assert.is(attrsSent(task, attrs, true), attrs);
  assert.is(attrsSent(taskType('T::Mapped', (a) => a), attrs, undefined), attrs);
  assert.is(attrsSent({ ...task, kind: 'pure' } as unknown as ResourceType, attrs, undefined), attrs);
});

test('ready: a task resource whose attributes nothing reads sends its reference alone; get_attr readers still resolve', () => {
  const sim = new Sim({
    extraTypes: [taskType('T::Server')],
    task: (input) => {
      const name = (input as { request: { name: string } }).request.name;
      return { physicalId: `id-${name}`, attrs: { first_address: `ip-${name}`, show: { blob: 'x'.repeat(500) } } };
    },
  });
  const ready: Array<{ from: string; to: string; attrs: Record<string, unknown> }> = [];
  const res = sim.behaviors.get('res')!;
  sim.behaviors.set('res', {
    ...res,
    reduce: (state, msg, c) => {
      const r = res.reduce(state, msg, c);
      for (const e of r.effects) {
        const m = e.type === 'send' ? (e.msg as ResourceMsg) : null;
        if (e.type === 'send' && m?.kind === 'ready') ready.push({ from: m.from, to: e.to, attrs: m.data.attrs });
      }
      return r;
    },
  });
  sim.setDesired('s', {
    op: 'create',
    name: 's',
    spec: {
      template: {
        heat_template_version: '2018-08-31',
        resources: {
          port: { type: 'T::Server', properties: {} },
          srv: { type: 'T::Server', properties: { port: { get_resource: 'port' } } },
          user: { type: 'OS::Heat::Value', properties: { value: { get_attr: ['srv', 'first_address'] } } },
        },
        outputs: { port: { value: { get_resource: 'port' } } },
      },
    },
  });
  sim.run();
  const st = sim.stack('s');
  assert.is(st.status, 'READY', st.reason);
  assert.equal(st.outputs, { port: 'id-port' });
  assert.is((sim.resource('s', 'user') as ResourceState).current!.attrs.value, 'ip-srv');
  const fromPort = ready.filter((r) => r.from === 'port');
  assert.equal(fromPort.map((r) => r.to).sort(), ['res/s/srv', 'stack/s']);
  for (const r of fromPort) assert.equal(r.attrs, {});
  assert.equal((sim.resource('s', 'srv') as ResourceState).deps.port!.attrs, {});
});

test('a template resource keeps a digest of its nested template: a changed template reaches the child, an equal one does not', () => {
  const sim = new Sim();
  const provider = (v: string) => JSON.stringify({ heat_template_version: '2016-10-14', resources: { inner: { type: 'OS::Heat::Value', properties: { value: v } } }, outputs: { out: { value: { get_attr: ['inner', 'value'] } } } });
  const spec = (v: string): StackSpec => ({
    template: { heat_template_version: '2016-10-14', resources: { t: { type: 'My::Thing' } }, outputs: { o: { value: { get_attr: ['t', 'out'] } } } },
    environment: { resource_registry: { 'My::Thing': 'provider.yaml' } },
    files: { 'provider.yaml': provider(v) },
  });
  sim.setDesired('s', { op: 'create', name: 's', spec: spec('one') });
  sim.run();
  assert.equal(sim.stack('s').outputs, { o: 'one' });
  const cur = () => (sim.resource('s', 't') as ResourceState).current!;
  assert.type(cur().nested, 'string');
  const child = cur().child!;
  sim.setDesired('s', { op: 'update', name: 's', spec: spec('one') });
  sim.run();
  assert.is(sim.stack(child).gen, 1, 'an equal template is not sent again');
  sim.setDesired('s', { op: 'update', name: 's', spec: spec('two') });
  sim.run();
  assert.is(sim.stack('s').status, 'READY', sim.stack('s').reason);
  assert.equal(sim.stack('s').outputs, { o: 'two' });
  assert.is(sim.stack(child).gen, 2);
});

test.run();
