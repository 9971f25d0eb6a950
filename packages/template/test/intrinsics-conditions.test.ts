// INTRINSICS.md §5: the conditions section, resource/output condition, equals/not/and/or, if.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { evaluateCondition, evaluateConditions, parseSnippet, resolveSnippet, snippetReferences, validateSnippet } from '../src/functions/index.js';
import { PATH, resolve, testHost, throwsKiln } from './functions-host.js';

const V = '2016-10-14' as const;

function conds(section: unknown, params: Record<string, unknown> = { env_type: 'test' }, version: typeof V | '2017-09-01' = V) {
  return evaluateConditions(section, version, testHost({ params, version }));
}

test('§5 TestTemplateConditionParser example', () => {
  const section = {
    prod_env: { equals: [{ get_param: 'env_type' }, 'prod'] },
    test_env: { not: 'prod_env' },
    prod_or_test_env: { or: ['prod_env', 'test_env'] },
    prod_and_test_env: { and: ['prod_env', 'test_env'] },
  };
  assert.equal(Object.fromEntries(conds(section)), { prod_env: false, test_env: true, prod_or_test_env: true, prod_and_test_env: false });
  assert.equal(Object.fromEntries(conds(section, { env_type: 'prod' })), { prod_env: true, test_env: false, prod_or_test_env: true, prod_and_test_env: false });
});

test('§5 booleans and definitions referring to later conditions', () => {
  assert.equal(Object.fromEntries(conds({ a: { not: 'b' }, b: true, c: false })), { a: false, b: true, c: false });
});

test('§5 a definition that is not a boolean or condition function', () => {
  throwsKiln(() => conds({ prod_env: { get_param: 'env_type' } }), 'CONDITION_INVALID', 'The definition of condition "prod_env" is invalid');
  throwsKiln(() => conds({ prod_env: 'other' }), 'CONDITION_INVALID', 'The definition of condition "prod_env" is invalid');
});

test('§5 circular definitions', () => {
  throwsKiln(
    () => conds({ first_cond: { not: 'second_cond' }, second_cond: { not: 'third_cond' }, third_cond: { not: 'first_cond' } }),
    'CONDITION_INVALID',
    'Circular definition for condition "first_cond"',
  );
});

test('§5 unknown names inside not/and/or', () => {
  throwsKiln(() => conds({ a: { and: ['cd1', true] } }), 'CONDITION_INVALID', 'Invalid condition "cd1"');
  throwsKiln(() => conds({ a: { not: 111 } }), 'CONDITION_INVALID', 'Invalid condition "111"');
});

test('§5 is_enabled: None true, bools as they are, unknown names invalid', () => {
  const c = new Map([['prod_env', false]]);
  const host = testHost();
  assert.is(evaluateCondition(null, V, 'resources.r.condition', c, host), true);
  assert.is(evaluateCondition(true, V, 'resources.r.condition', c, host), true);
  assert.is(evaluateCondition(false, V, 'resources.r.condition', c, host), false);
  assert.is(evaluateCondition('prod_env', V, 'resources.r.condition', c, host), false);
  const e = throwsKiln(() => evaluateCondition('invalid_cd', V, 'outputs.foo.condition', c, host), 'CONDITION_INVALID', 'Invalid condition "invalid_cd"');
  assert.is(e.path, 'outputs.foo.condition');
  throwsKiln(() => evaluateCondition(111, V, 'outputs.foo.condition', c, host), 'CONDITION_INVALID', 'Invalid condition "111"');
});

test('§5 resource/output condition may be an inline condition function', () => {
  const c = new Map([['prod_env', false]]);
  const host = testHost({ params: { env_type: 'prod' } });
  assert.is(evaluateCondition({ not: 'prod_env' }, V, 'outputs.foo.condition', c, host), true);
  assert.is(evaluateCondition({ equals: [{ get_param: 'env_type' }, 'prod'] }, V, 'resources.r.condition', c, host), true);
  throwsKiln(() => evaluateCondition({ get_attr: ['r', 'a'] }, V, 'resources.r.condition', c, host), 'FUNCTION_INVALID', '"get_attr" is invalid');
});

test('§5 equals compares deeply', () => {
  assert.is(resolve({ equals: [{ get_param: 'env_type' }, 'prod'] }, { params: { env_type: 'test' } }, 'condition'), false);
  assert.is(resolve({ equals: [{ get_param: 'env_type' }, 'prod'] }, { params: { env_type: 'prod' } }, 'condition'), true);
  assert.is(resolve({ equals: [{ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] }] }, {}, 'condition'), true);
  assert.is(resolve({ equals: [[1, 2], [2, 1]] }, {}, 'condition'), false);
});

test('§5 condition function argument errors', () => {
  const c = (raw: unknown) => resolve(raw, {}, 'condition');
  for (const bad of [[1], [1, 2, 3], 'x']) throwsKiln(() => c({ equals: bad }), 'FUNCTION_INVALID', 'Arguments to "equals" must be of the form: [value_1, value_2]');
  throwsKiln(() => c({ not: null }), 'FUNCTION_INVALID', 'Argument to "not" must be a condition');
  throwsKiln(() => c({ and: [true] }), 'FUNCTION_INVALID', 'The minimum number of condition arguments to "and" is 2.');
  throwsKiln(() => c({ or: [] }), 'FUNCTION_INVALID', 'The minimum number of condition arguments to "or" is 2.');
  throwsKiln(() => c({ and: 'x' }), 'FUNCTION_INVALID', 'Arguments to "and" must be a list of conditions');
});

test('§5 if: named conditions and booleans', () => {
  const t = { conditions: { create_prod: true } };
  const f = { conditions: { create_prod: false } };
  assert.is(resolve({ if: ['create_prod', 'value_if_true', 'value_if_false'] }, t), 'value_if_true');
  assert.is(resolve({ if: ['create_prod', 'value_if_true', 'value_if_false'] }, f), 'value_if_false');
  assert.is(resolve({ if: [true, 'a', 'b'] }), 'a');
  assert.is(resolve({ if: [false, 'a', 'b'] }), 'b');
  assert.is(resolve({ if: [true, null, 'x'] }), null);
  assert.equal(resolve({ Foo: { if: ['create_prod', 'one', 'two'] } }, f), { Foo: 'two' });
  assert.is(resolve({ if: [{ not: 'create_prod' }, 'a', 'b'] }, f), 'a');
});

test('§5 if is a macro: only the chosen branch is validated and referenced', () => {
  const host = testHost({ conditions: { c: true }, version: V });
  const s = parseSnippet({ if: ['c', { get_resource: 'resource1' }, { get_attr: 'bad-args' }] }, V, PATH);
  validateSnippet(s, host);
  assert.is(resolveSnippet(s, host), 'resource1');
  const bad = parseSnippet({ if: ['c', { get_attr: 'bad-args' }, 'x'] }, V, PATH);
  throwsKiln(() => validateSnippet(bad, host), 'FUNCTION_INVALID', 'Argument to "get_attr" must be a list');
  assert.equal(snippetReferences(s, (n) => n === 'c').resources.map((r) => r.name), ['resource1']);
});

test('§5 if errors', () => {
  const form = 'Arguments to "if" must be of the form: [condition_name, value_if_true, value_if_false]';
  throwsKiln(() => resolve({ if: ['c', 'a'] }, { version: '2018-08-31' }), 'FUNCTION_INVALID', form);
  throwsKiln(() => resolve({ if: ['c', 'a', 'b', 'd'] }, { version: V }), 'FUNCTION_INVALID', form);
  throwsKiln(() => resolve({ if: ['c'] }, { version: '2021-04-16' }), 'FUNCTION_INVALID', form);
  throwsKiln(() => resolve({ if: ['c', 'a', 'b', 'd'] }, { version: '2021-04-16' }), 'FUNCTION_INVALID', form);
  const e = throwsKiln(() => resolve({ if: ['cd_not_existing', 'a', 'b'] }, { conditions: {} }), 'CONDITION_INVALID', 'Invalid condition "cd_not_existing"');
  assert.ok(e.message.includes('if:'), e.message);
});

test('§5 if 2021-04-16: the 2-argument form and the null sentinel', () => {
  const out = resolve({
    single: { if: [false, 'x'] },
    nested_true: { if: [true, { if: [false, 'foo'] }, 'bar'] },
    nested_false: { if: [false, 'baz', { if: [false, 'quux'] }] },
    control: { if: [false, true, null] },
  });
  assert.equal(out, { control: null });
  assert.is(resolve({ if: [false, 'value_if_true'] }), null);
  assert.is(resolve({ if: [true, 'value_if_true'] }), 'value_if_true');
  assert.equal(resolve([{ if: [false, 'a'] }, 'b']), ['b']);
  // A sentinel as a whole function argument counts as None.
  assert.equal(resolve({ list_join: [',', ['a', { if: [false, 'b'] }, 'c']] }), 'a,c');
});

test.run();
