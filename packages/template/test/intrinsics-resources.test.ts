// INTRINSICS.md §2: get_param, get_resource, get_attr, get_file, resource_facade.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseSnippet, resolveSnippet } from '../src/functions/index.js';
import { PATH, RESOURCE1, resolve, testHost, throwsKiln } from './functions-host.js';

const params = {
  foo: 'bar',
  list: ['foo', 'bar'],
  nested_dict: { list: [1, 2, 3], dict: { a: 1 } },
  none: null,
  lengths: [8, 16, 32],
  index: 1,
  'OS::stack_id': 'None',
  'OS::stack_name': 'test_stack',
  'OS::project_id': 'test_tenant_id',
};
const v13 = { version: '2013-05-23' as const, params };

test('§2 get_param: {get_param: foo} -> bar', () => {
  assert.is(resolve({ get_param: 'foo' }, v13), 'bar');
});

test('§2 get_param: [list, 1] and [list, "1"] -> bar', () => {
  assert.is(resolve({ get_param: ['list', 1] }, v13), 'bar');
  assert.is(resolve({ get_param: ['list', '1'] }, v13), 'bar');
});

test('§2 get_param: nested json paths', () => {
  assert.is(resolve({ get_param: ['nested_dict', 'list', 0] }, v13), 1);
  assert.is(resolve({ get_param: ['nested_dict', 'dict', 'a'] }, v13), 1);
});

test('§2 get_param: a failing path gives the empty string', () => {
  assert.is(resolve({ get_param: ['none', 'who_cares'] }, v13), '');
  assert.is(resolve({ get_param: ['list', 5] }, v13), '');
  assert.is(resolve({ get_param: ['list', 'x'] }, v13), '');
  assert.is(resolve({ get_param: ['nested_dict', 'missing', 'deeper'] }, v13), '');
});

test('§2 get_param: path items may be functions (random.yaml)', () => {
  assert.is(resolve({ get_param: ['lengths', { get_param: 'index' }] }, v13), 16);
});

test('§2 get_param: pseudo parameters come from the host', () => {
  assert.is(resolve({ get_param: 'OS::stack_id' }, v13), 'None');
  assert.is(resolve({ get_param: 'OS::stack_name' }, v13), 'test_stack');
  assert.is(resolve({ get_param: 'OS::project_id' }, v13), 'test_tenant_id');
});

test('§2 get_param errors', () => {
  throwsKiln(() => resolve({ get_param: 'nope' }, v13), 'PARAM_MISSING', 'The Parameter (nope) was not provided.');
  throwsKiln(() => resolve({ get_param: [] }, v13), 'FUNCTION_INVALID', 'Function "get_param" must have arguments');
  throwsKiln(() => resolve({ get_param: null }, v13), 'FUNCTION_INVALID', 'Function "get_param" must have arguments');
  throwsKiln(() => resolve({ get_param: [1, 'x'] }, v13), 'FUNCTION_INVALID', 'Parameter name in "get_param" must be string');
  throwsKiln(() => resolve({ get_param: { a: 1 } }, v13), 'FUNCTION_INVALID', 'Argument to "get_param" must be string or list');
});

test('§2 get_resource: reference id; unknown name', () => {
  assert.equal(resolve({ value: { get_resource: 'resource1' } }), { value: 'resource1' });
  throwsKiln(() => resolve({ get_resource: 'nope' }), 'REFERENCE_UNKNOWN', 'The specified reference "nope" (in unknown) is incorrect.');
});

const attrCases: [unknown[], unknown][] = [
  [['resource1', 'foo'], 'resource1'],
  [['resource1', 'list', 0], 'foo'],
  [['resource1', 'flat_dict', 'key2'], 'val2'],
  [['resource1', 'nested_dict', 'list', 0], 1],
  [['resource1', 'nested_dict', 'dict', 'a'], 1],
  [['resource1', 'none', 'who_cares'], null],
];

for (const version of ['2013-05-23', '2014-10-16', '2015-10-15', '2021-04-16'] as const) {
  test(`§2 get_attr StackAttributesTest examples (${version})`, () => {
    for (const [args, expected] of attrCases) assert.equal(resolve({ get_attr: args }, { version }), expected, JSON.stringify(args));
  });
}

test('§2 get_attr 2013-05-23 walks the path itself; 2014-10-16+ hands it to the resource', () => {
  const seen: unknown[][] = [];
  for (const version of ['2013-05-23', '2014-10-16'] as const) {
    const host = testHost({ version });
    const inner = host.resourceAttr.bind(host);
    const spy = { ...host, resourceAttr: (n: string, a: string, p: readonly unknown[]) => (seen.push([version, a, ...p]), inner(n, a, p)) };
    resolveSnippet(parseSnippet({ get_attr: ['resource1', 'list', 1] }, version, PATH), spy);
  }
  assert.equal(seen, [
    ['2013-05-23', 'list'],
    ['2014-10-16', 'list', 1],
  ]);
});

test('§2 get_attr [res] all attributes (2015-10-15)', () => {
  const generic = { resources: { resource1: { ref: 'resource1' } }, version: '2015-10-15' as const };
  assert.equal(resolve({ get_attr: ['resource1'] }, generic), { Foo: 'resource1', foo: 'resource1' });
  const all = resolve({ get_attr: ['resource1'] }, { version: '2015-10-15' }) as Record<string, unknown>;
  assert.equal(Object.keys(all).sort(), ['flat_dict', 'foo', 'list', 'nested_dict', 'none']);
  assert.is(all['none'], null);
});

test('§2 get_attr parse errors (2015-10-15+)', () => {
  const v = { version: '2015-10-15' as const };
  throwsKiln(() => resolve({ get_attr: 'resource1' }, v), 'FUNCTION_INVALID', '.Value.get_attr: Argument to "get_attr" must be a list');
  throwsKiln(() => resolve({ get_attr: { resource1: 'foo' } }, v), 'FUNCTION_INVALID', 'Argument to "get_attr" must be a list');
  const forms = 'Arguments to "get_attr" can be of the next forms: [resource_name] or [resource_name, attribute, (path), ...]';
  throwsKiln(() => resolve({ get_attr: '' }, v), 'FUNCTION_INVALID', forms);
  throwsKiln(() => resolve({ get_attr: [] }, v), 'FUNCTION_INVALID', forms);
});

test('§2 get_attr parse errors before 2015-10-15', () => {
  const form = 'Arguments to "get_attr" must be of the form [resource_name, attribute, (path), ...]';
  throwsKiln(() => resolve({ get_attr: ['resource1'] }, { version: '2014-10-16' }), 'FUNCTION_INVALID', form);
  throwsKiln(() => resolve({ get_attr: [] }, { version: '2013-05-23' }), 'FUNCTION_INVALID', form);
  throwsKiln(() => resolve({ get_attr: 'resource1' }, { version: '2013-05-23' }), 'FUNCTION_INVALID', 'Argument to "get_attr" must be a list');
});

test('§2 get_attr unknown resource', () => {
  throwsKiln(() => resolve({ get_attr: ['resource2', 'foo'] }), 'REFERENCE_UNKNOWN', 'The specified reference "resource2" (in unknown) is incorrect.');
});

test('§2 get_attr resource and attribute names may be functions', () => {
  const out = resolve({ get_attr: [{ get_param: 'r' }, { get_param: 'a' }, 1] }, { params: { r: 'resource1', a: 'list' }, resources: { resource1: RESOURCE1 } });
  assert.is(out, 'bar');
});

test('§2 get_file: verbatim content, functions inside are not resolved', () => {
  const files = { 'file:///tmp/foo.yaml': '{get_file: file:///tmp/bar.yaml}' };
  assert.is(resolve({ get_file: 'file:///tmp/foo.yaml' }, { files }), '{get_file: file:///tmp/bar.yaml}');
});

test('§2 get_file errors', () => {
  throwsKiln(() => resolve({ get_file: ['x'] }), 'FUNCTION_INVALID', 'Argument to "get_file" must be a string');
  throwsKiln(() => resolve({ get_file: 'file:///tmp/foo.yaml' }), 'FILE_MISSING', 'No content found in the "files" section for get_file path: file:///tmp/foo.yaml');
});

test('§2 resource_facade: metadata, deletion_policy, update_policy', () => {
  const facade = { metadata: { foo: 'bar' }, deletion_policy: 'Retain' };
  assert.equal(resolve({ resource_facade: 'metadata' }, { facade }), { foo: 'bar' });
  assert.is(resolve({ resource_facade: 'deletion_policy' }, { facade }), 'Retain');
  assert.is(resolve({ resource_facade: 'deletion_policy' }), 'Delete');
  assert.equal(resolve({ resource_facade: 'update_policy' }), {});
  assert.is(resolve({ 'Fn::Select': ['foo', { resource_facade: 'metadata' }] }, { facade, version: '2013-05-23' }), 'bar');
});

test('§2 resource_facade: wibble', () => {
  throwsKiln(
    () => resolve({ resource_facade: 'wibble' }),
    'FUNCTION_INVALID',
    'Incorrect arguments to "resource_facade" should be one of: metadata, deletion_policy, update_policy',
  );
});

test.run();
