// INTRINSICS.md §0 (general rules) and §1 (versions and function tables).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canonicalVersion, isPending, parseSnippet, pending, resolveSnippet, validateSnippet, snippetReferences, HOT_VERSIONS } from '../src/functions/index.js';
import { PATH, resolve, testHost, throwsKiln } from './functions-host.js';

test('§0.1 a mapping with two keys is data even if one key is list_join', () => {
  const raw = { list_join: [',', ['a']], extra: 1 };
  assert.equal(resolve(raw), raw);
});

test('§0.1 a single-key map with an unknown name (get_params typo) is data', () => {
  const raw = { get_params: ['x', 'y'] };
  assert.equal(resolve(raw, { params: { x: 1 } }), raw);
});

test('§0.2 arguments are parsed recursively: get_attr path from get_attr', () => {
  const out = resolve(
    { get_attr: ['dict_resource', 'value', { get_attr: ['key1', 'value'] }] },
    { resources: { dict_resource: { attrs: { value: { a: 'A', b: 'B' } } }, key1: { attrs: { value: 'b' } } } },
  );
  assert.is(out, 'B');
});

test('§0.3 construct errors carry the path: list_join', () => {
  const e = throwsKiln(() => resolve({ list_join: 'bad' }), 'FUNCTION_INVALID', 'Incorrect arguments to "list_join"');
  assert.ok(e.message.startsWith(`${PATH}.list_join: Incorrect arguments`), e.message);
  assert.is(e.path, `${PATH}.list_join`);
});

test('§0.3 construct errors carry the path: .Value.get_attr must be a list', () => {
  const e = throwsKiln(() => resolve({ get_attr: 'resource1' }, { version: '2015-10-15' }), 'FUNCTION_INVALID', 'Argument to "get_attr" must be a list');
  assert.is(e.message, 'resources.x.properties.Value.get_attr: Argument to "get_attr" must be a list');
});

test('§0.3 resolve-time errors are typed (get_param of a missing parameter)', () => {
  const e = throwsKiln(() => resolve({ value: { get_param: 'missing' } }), 'PARAM_MISSING', 'The Parameter (missing) was not provided.');
  assert.is(e.path, `${PATH}.value.get_param`);
});

test('§0.4 removed function: validation fails with the template-version error', () => {
  const host = testHost({ version: '2014-10-16' });
  const s = parseSnippet({ 'Fn::GetAZs': '' }, '2014-10-16', PATH);
  const e = throwsKiln(() => validateSnippet(s, host), 'TEMPLATE_VERSION', 'Fn::GetAZs: The template version is invalid');
  assert.is(e.reason, 'The template version is invalid: The function Fn::GetAZs is not supported in this version of HOT.');
});

test('§0.4 removed function: resolving without validating leaves the snippet unchanged', () => {
  const raw = { 'Fn::Join': [',', ['a', 'b']] };
  assert.equal(resolve(raw, { version: '2015-10-15' }), raw);
  assert.equal(resolve({ 'Fn::Select': ['0', ['a']] }, { version: '2015-10-15' }), { 'Fn::Select': ['0', ['a']] });
});

test('§0.4 Fn::Select is still live in 2014-10-16 and 2015-04-30', () => {
  assert.is(resolve({ 'Fn::Select': ['1', ['foo', 'bar']] }, { version: '2014-10-16' }), 'bar');
  assert.is(resolve({ 'Fn::Select': ['1', ['foo', 'bar']] }, { version: '2015-04-30' }), 'bar');
});

test('§0.5 get_attr of a resource without data is None; list functions treat None as empty', () => {
  const resources = { grp: { attrs: { members: null } } };
  assert.is(resolve({ get_attr: ['grp', 'members'] }, { resources }), null);
  assert.is(resolve({ list_join: [',', { get_attr: ['grp', 'members'] }] }, { resources, version: '2013-05-23' }), '');
  assert.is(resolve({ list_join: [',', { get_attr: ['grp', 'members'] }] }, { resources }), '');
});

test('§0.6 null sentinel removes dict entries and list items, null at top level', () => {
  assert.equal(resolve({ a: { if: [false, 'x'] }, b: 1 }), { b: 1 });
  assert.equal(resolve([{ if: [false, 'a'] }, 'b']), ['b']);
  assert.is(resolve({ if: [false, 'x'] }), null);
});

test('Pending: a function over a pending input is the first pending reference', () => {
  const resources = { srv: { pending: true }, other: { pending: true } };
  const out = resolve({ list_join: ['-', [{ get_attr: ['srv', 'first_address'] }, { get_resource: 'other' }]] }, { resources });
  assert.ok(isPending(out));
  assert.is((out as { pending: string }).pending, 'get_attr: srv.first_address');
  // Plain data keeps its pending leaves in place.
  const data = resolve({ a: { get_resource: 'other' }, b: 'x' }, { resources }) as Record<string, unknown>;
  assert.ok(isPending(data['a']));
  assert.is(data['b'], 'x');
  // 2013-05-23 walks the path itself: a pending attribute stays pending.
  assert.ok(isPending(resolve({ get_attr: ['srv', 'networks', 'private', 0] }, { resources, version: '2013-05-23' })));
  // User data shaped like a Pending is not one.
  assert.not.ok(isPending({ pending: 'x' }));
  assert.ok(isPending(pending('y')));
  assert.is(JSON.stringify(pending('y')), '{"pending":"y"}');
});

test('§1 canonicalVersion: dates and release names', () => {
  for (const v of HOT_VERSIONS) assert.is(canonicalVersion(v), v);
  assert.is(canonicalVersion('newton'), '2016-10-14');
  assert.is(canonicalVersion('ocata'), '2017-02-24');
  assert.is(canonicalVersion('pike'), '2017-09-01');
  assert.is(canonicalVersion('queens'), '2018-03-02');
  assert.is(canonicalVersion('rocky'), '2018-08-31');
  assert.is(canonicalVersion('wallaby'), '2021-04-16');
  assert.is(canonicalVersion(new Date('2015-10-15T00:00:00Z')), '2015-10-15');
});

test('§1 canonicalVersion: anything else is InvalidTemplateVersion', () => {
  for (const bad of ['2012-12-12', 'zed', 2013, null, '2013-05-23 ']) {
    throwsKiln(() => canonicalVersion(bad), 'TEMPLATE_VERSION', 'The template version is invalid');
  }
  const e = throwsKiln(() => canonicalVersion('2012-12-12'), 'TEMPLATE_VERSION', '"heat_template_version: 2012-12-12"');
  assert.ok(e.message.includes('should be one of: 2013-05-23, 2014-10-16'), e.message);
  assert.ok(e.message.endsWith('queens, rocky, wallaby'), e.message);
});

test('§1 version gating: functions before their version are plain data', () => {
  const cases: [string, unknown, string][] = [
    ['repeat', { template: 'x', for_each: { x: ['a'] } }, '2015-04-30'],
    ['digest', ['md5', 'foobar'], '2015-04-30'],
    ['str_split', [',', 'a,b'], '2015-10-15'],
    ['map_merge', [{ a: 1 }], '2016-04-08'],
    ['yaql', { expression: '$.data', data: 1 }, '2016-10-14'],
    ['map_replace', [{ a: 1 }, { keys: { a: 'b' } }], '2016-10-14'],
    ['if', [true, 'a', 'b'], '2016-10-14'],
    ['filter', [[1], [1, 2]], '2017-02-24'],
    ['str_replace_strict', { template: 'a', params: { a: 'b' } }, '2017-02-24'],
    ['make_url', { scheme: 'http', host: 'h' }, '2017-09-01'],
    ['list_concat', [[1], [2]], '2017-09-01'],
    ['list_concat_unique', [[1], [1]], '2017-09-01'],
    ['str_replace_vstrict', { template: 'a', params: { a: 'b' } }, '2017-09-01'],
    ['contains', ['a', ['a']], '2017-09-01'],
  ];
  for (const [fn, args, since] of cases) {
    const idx = HOT_VERSIONS.indexOf(since as never);
    const before = HOT_VERSIONS[idx - 1];
    assert.equal(resolve({ [fn]: args }, { version: before }), { [fn]: args }, `${fn} before ${since}`);
    assert.not.equal(resolve({ [fn]: args }, { version: since as never }), { [fn]: args }, `${fn} from ${since}`);
  }
});

test('§1 equals/not/and/or exist only as condition functions', () => {
  assert.equal(resolve({ equals: [1, 1] }), { equals: [1, 1] });
  assert.equal(resolve({ not: true }), { not: true });
  assert.is(resolve({ equals: [1, 1] }, {}, 'condition'), true);
});

test('§1 inside a condition an ordinary function is invalid (path conditions.prod_env.equals[1].get_attr)', () => {
  const e = throwsKiln(
    () => parseSnippet({ equals: ['a', { get_attr: ['r', 'x'] }] }, '2016-10-14', 'conditions.prod_env', 'condition'),
    'FUNCTION_INVALID',
    '"get_attr" is invalid',
  );
  assert.is(e.path, 'conditions.prod_env.equals[1].get_attr');
});

test('§1 yaql and contains are condition functions only from 2017-09-01', () => {
  throwsKiln(() => parseSnippet({ yaql: { expression: '$.data', data: true } }, '2017-02-24', 'conditions.c', 'condition'), 'FUNCTION_INVALID', '"yaql" is invalid');
  assert.is(resolve({ contains: ['a', ['a']] }, { version: '2017-09-01' }, 'condition'), true);
});

test('§1 removed functions inside conditions stay Removed', () => {
  const s = parseSnippet({ equals: [{ 'Fn::Select': ['0', ['a']] }, 'a'] }, '2016-10-14', 'conditions.c', 'condition');
  throwsKiln(() => validateSnippet(s, testHost()), 'TEMPLATE_VERSION', 'The function Fn::Select is not supported');
});

test('snippetReferences: resources, params, files; if counts only the chosen branch', () => {
  const s = parseSnippet(
    {
      a: { get_resource: 'r1' },
      b: { get_attr: ['r2', 'x', { get_param: 'idx' }] },
      c: { get_file: 'file:///a' },
      d: { if: ['cond', { get_resource: 'yes' }, { get_resource: 'no' }] },
    },
    '2016-10-14',
    PATH,
  );
  const all = snippetReferences(s);
  assert.equal(all.resources.map((r) => `${r.via}:${r.name}`), ['get_resource:r1', 'get_attr:r2', 'get_resource:yes', 'get_resource:no']);
  assert.equal(all.params, ['idx']);
  assert.equal(all.files, ['file:///a']);
  assert.is(all.resources[1]?.path, `${PATH}.b.get_attr`);
  const chosen = snippetReferences(s, () => false);
  assert.equal(chosen.resources.map((r) => r.name), ['r1', 'r2', 'no']);
});

test('validateSnippet: unknown resource reference', () => {
  const s = parseSnippet({ get_attr: ['resource2', 'foo'] }, '2015-10-15', PATH);
  throwsKiln(() => validateSnippet(s, testHost()), 'REFERENCE_UNKNOWN', 'The specified reference "resource2" (in unknown) is incorrect.');
  throwsKiln(() => resolveSnippet(s, testHost()), 'REFERENCE_UNKNOWN', 'The specified reference "resource2" (in unknown) is incorrect.');
});

test('deeply nested data is a typed error, not a stack overflow', () => {
  let deep: unknown = 'x';
  for (let i = 0; i < 20000; i++) deep = [deep];
  throwsKiln(() => parseSnippet(deep, '2015-10-15', PATH), 'TEMPLATE_INVALID', 'nested deeper than 1000 levels');
  let ok: unknown = { get_param: 'foo' };
  for (let i = 0; i < 900; i++) ok = [ok];
  let out = resolve(ok, { params: { foo: 'bar' } });
  for (let i = 0; i < 900; i++) out = (out as unknown[])[0];
  assert.is(out, 'bar');
});

test('objects without a prototype are mappings too', () => {
  const raw = Object.assign(Object.create(null) as Record<string, unknown>, { get_attr: ['resource1', 'list', 0] });
  assert.is(resolve(raw), 'foo');
  throwsKiln(() => resolve(Object.assign(Object.create(null) as Record<string, unknown>, { get_attr: [] })), 'FUNCTION_INVALID', 'get_attr');
});

test('a key named __proto__ is data, never a prototype', () => {
  const evil = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as Record<string, unknown>;
  const out = resolve({ map_merge: [evil, { b: { get_param: 'x' } }] }, { params: { x: 2 } }) as Record<string, unknown>;
  assert.equal(Object.keys(out).sort(), ['__proto__', 'a', 'b']);
  assert.is(Object.getPrototypeOf(out), Object.prototype);
  assert.is(({} as Record<string, unknown>)['polluted'], undefined);
});

test.run();
