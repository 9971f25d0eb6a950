import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Environment, ResourceRegistry, buildStack, mergeEnvironments, parseEnvironmentText, parseTemplateText } from '../src/index.js';
import { CORPUS, kilnError, stackOf } from './helpers.js';

test('aliases resolve in chains; templates are recognised', () => {
  const r = new ResourceRegistry({ 'OS::Foo': 'OS::Bar', 'OS::Bar': 'OS::Heat::None', 'OS::Tpl': 'provider.yaml', 'my.yaml': 'my.yaml' });
  assert.equal(r.resolve('OS::Foo'), { type: 'OS::Heat::None' });
  assert.equal(r.resolve('OS::Tpl'), { type: 'provider.yaml', template: 'provider.yaml' });
  assert.equal(r.resolve('my.yaml'), { type: 'my.yaml', template: 'my.yaml' });
  assert.equal(r.resolve('OS::Other'), { type: 'OS::Other' });
});

test('wildcards map prefixes, the most specific first, without re-mapping their own output', () => {
  const r = new ResourceRegistry({ 'OS::TripleO::*': 'OS::Heat::None', 'OS::TripleO::Services::*': 'services.yaml', 'OS::Networking*': 'OS::Neutron*' });
  assert.equal(r.resolve('OS::TripleO::Thing'), { type: 'OS::Heat::None' });
  assert.equal(r.resolve('OS::TripleO::Services::Kernel'), { type: 'services.yaml', template: 'services.yaml' });
  assert.equal(r.resolve('OS::NetworkingFloatingIP'), { type: 'OS::NeutronFloatingIP' });
});

test('per-resource sections (with fnmatch patterns) override global mappings; hooks', () => {
  const r = new ResourceRegistry({
    'OS::Foo': 'OS::Heat::None',
    resources: { special: { 'OS::Foo': 'special.yaml' }, '*ar': { hooks: 'pre-create' }, 'foo_*': { hooks: ['pre-update'], restricted_actions: 'replace' } },
  });
  assert.equal(r.resolve('OS::Foo', 'special'), { type: 'special.yaml', template: 'special.yaml' });
  assert.equal(r.resolve('OS::Foo', 'other'), { type: 'OS::Heat::None' });
  assert.equal(r.hooks('bar'), ['pre-create']);
  assert.equal(r.hooks('foo_1'), ['pre-update']);
  assert.equal(r.restrictedActions('foo_1'), ['replace']);
  assert.equal(r.hooks('baz'), []);
});

test('mapping loops are ENVIRONMENT_INVALID', () => {
  const r = new ResourceRegistry({ 'OS::A': 'OS::B', 'OS::B': 'OS::A' });
  // A loop ends at the first repeated mapping; a long chain of distinct names is refused.
  assert.ok(r.resolve('OS::A'));
  const chain: Record<string, string> = {};
  for (let i = 0; i < 40; i++) chain[`T${i}`] = `T${i + 1}`;
  assert.is(kilnError(() => new ResourceRegistry(chain).resolve('T0')).code, 'ENVIRONMENT_INVALID');
});

test('environments merge in order like Heat: sections key by key, later files win', () => {
  const merged = mergeEnvironments([
    { parameters: { a: 1, b: 1 }, resource_registry: { 'OS::X': 'x.yaml', 'OS::Y': 'y.yaml', resources: { r1: { hooks: 'pre-create' } } } },
    { parameters: { b: 2 }, parameter_defaults: { c: 3 }, resource_registry: { 'OS::Y': 'OS::Heat::None', resources: { r2: { hooks: 'pre-update' } } } },
  ]);
  assert.equal(merged, {
    parameters: { a: 1, b: 2 },
    parameter_defaults: { c: 3 },
    resource_registry: { 'OS::X': 'x.yaml', 'OS::Y': 'OS::Heat::None', resources: { r2: { hooks: 'pre-update' } } },
  });
});

test('parameter_merge_strategies: merge and deep_merge by parameter type; conflicts refused', () => {
  const types = { s: 'string', l: 'comma_delimited_list', n: 'number', j: 'json', d: 'json', b: 'boolean' };
  const merged = mergeEnvironments(
    [
      { parameters: { s: 'ab', l: 'x', n: 1, j: { k: { a: 1 } }, d: { k: { a: 1 }, l: [1] }, b: true, other: 1 } },
      { parameters: { s: 'cd', l: 'y,z', n: 2, j: { k: { b: 2 } }, d: { k: { b: 2 }, l: [2] }, other: 2 }, parameter_merge_strategies: { default: 'merge', d: 'deep_merge' } },
    ],
    types,
  );
  assert.equal(merged.parameters, { s: 'abcd', l: 'x,y,z', n: 3, j: { k: { b: 2 } }, d: { k: { a: 1, b: 2 }, l: [1, 2] }, b: true, other: 1 });
  const e = kilnError(() =>
    mergeEnvironments(
      [{ parameters: { s: 'a' } }, { parameters: { s: 'b' }, parameter_merge_strategies: { s: 'merge' } }, { parameters: { s: 'c' }, parameter_merge_strategies: { s: 'overwrite' } }],
      types,
      ['e1.yaml', 'e2.yaml', 'e3.yaml'],
    ),
  );
  assert.is(e.reason, "Conflicting merge strategy 'overwrite' for parameter 's' in file 'e3.yaml'.");
  assert.is(kilnError(() => mergeEnvironments([{ parameters: { b: true } }, { parameters: { b: false }, parameter_merge_strategies: { b: 'merge' } }], types)).reason, "Invalid merge strategy 'merge' for parameter 'b'.");
});

test('the test_env_merge functional case: two environment files over one template', () => {
  // The test sends the files through the API (environment_files), not through a client that
  // would try to read `BROKEN` as a template path.
  const dir = join(CORPUS, 'inline/heat_integrationtests/test_env_merge');
  const template = parseTemplateText(readFileSync(join(dir, 'TEMPLATE.yaml'), 'utf8'));
  const envs = ['ENV_1.yaml', 'ENV_2.yaml'].map((f) => parseEnvironmentText(readFileSync(join(dir, f), 'utf8')));
  const s = buildStack({ template, environment: mergeEnvironments(envs, { p0: 'string', p1: 'string', p2: 'string' }), files: {} });
  assert.equal(['p0', 'p1', 'p2'].map((p) => s.parameters.get(p)), ['CORRECT', 'CORRECT', 'CORRECT']);
  assert.equal(['r1', 'r2', 'r3a', 'r3b'].map((r) => s.resources.get(r)!.resolved.type), ['OS::Heat::RandomString', 'OS::Heat::RandomString', 'OS::Heat::None', 'OS::Heat::RandomString']);
});

test('the registry applies to stack resources, and its user view is what template-validate shows', () => {
  const env = { resource_registry: { 'OS::Heat::RandomString': 'OS::Heat::None' } };
  const s = stackOf('heat_template_version: 2014-10-16\nresources:\n  r: {type: OS::Heat::RandomString}\n', { env });
  assert.is(s.resources.get('r')!.resolved.type, 'OS::Heat::None');
  assert.equal(new Environment(env).toUserDict(), {
    event_sinks: [],
    parameter_defaults: {},
    parameters: {},
    resource_registry: { 'OS::Heat::RandomString': 'OS::Heat::None', resources: {} },
  });
});

test('environment parameters and request parameters (request wins)', () => {
  const t = 'heat_template_version: 2014-10-16\nparameters:\n  p: {type: string}\n  q: {type: string, default: d}\n';
  const s = stackOf(t, { env: { parameters: { p: 'env' }, parameter_defaults: { q: 'pd' } }, params: { p: 'req' } });
  assert.is(s.parameters.get('p'), 'req');
  assert.is(s.parameters.get('q'), 'pd');
});

test.run();
