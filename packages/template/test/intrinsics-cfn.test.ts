// INTRINSICS.md §6: CFN-compatible functions of HOT 2013-05-23.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { resolve, throwsKiln } from './functions-host.js';

const v13 = { version: '2013-05-23' as const };
const r = (raw: unknown, extra = {}) => resolve(raw, { ...v13, ...extra });

test('§6 Fn::Select from a list', () => {
  assert.is(r({ 'Fn::Select': ['1', ['foo', 'bar']] }), 'bar');
  assert.is(r({ 'Fn::Select': [1, ['foo', 'bar']] }), 'bar');
  assert.is(r({ 'Fn::Select': ['5', ['foo', 'bar']] }), '');
});

test('§6 Fn::Select from a map, None, JSON strings, empty string', () => {
  assert.is(r({ 'Fn::Select': ['red', { red: 'robin' }] }), 'robin');
  assert.is(r({ 'Fn::Select': ['2', { 1: 'bar', 2: 'foo' }] }), 'foo');
  assert.is(r({ 'Fn::Select': ['blue', { red: 'robin' }] }), '');
  assert.is(r({ 'Fn::Select': ['1', null] }), '');
  assert.is(r({ 'Fn::Select': ['re', '{"red":"robin","re":"foo"}'] }), 'foo');
  assert.is(r({ 'Fn::Select': ['1', ''] }), '');
  assert.is(r({ 'Fn::Select': ['x', ''] }), '');
});

test('§6 Fn::Select errors', () => {
  throwsKiln(() => r({ 'Fn::Select': ['1'] }), 'FUNCTION_INVALID', 'Arguments to "Fn::Select" must be of the form [index, collection]');
  throwsKiln(() => r({ 'Fn::Select': [1, { a: 'b' }] }), 'FUNCTION_INVALID', 'Index to "Fn::Select" must be a string');
  throwsKiln(() => r({ 'Fn::Select': ['x', ['a']] }), 'FUNCTION_INVALID', 'Index to "Fn::Select" must be an integer');
});

test('§6 Fn::Join', () => {
  assert.is(r({ 'Fn::Join': [' ', ['foo', null, 'baz']] }), 'foo  baz');
  assert.is(r({ 'Fn::Join': [',', ['a', 'b']] }), 'a,b');
});

test('§6 Fn::Split', () => {
  assert.equal(r({ 'Fn::Split': [';', 'foo; bar; achoo'] }), ['foo', ' bar', ' achoo']);
  assert.equal(r({ 'Fn::Split': [';', 'foo'] }), ['foo']);
  throwsKiln(() => r({ 'Fn::Split': 'a' }), 'FUNCTION_INVALID', 'Incorrect arguments to "Fn::Split"');
});

test('§6 Fn::Replace', () => {
  assert.is(r({ 'Fn::Replace': [{ $var1: 'foo', '%var2%': 'bar' }, '$var1 is %var2%'] }), 'foo is bar');
  assert.is(r({ 'Fn::Replace': [{ $var1: 1.3, '%var2%': 2.5 }, '$var1 is not %var2%'] }), '1.3 is not 2.5');
  assert.is(r({ 'Fn::Replace': [{ $var1: null }, '$var1 is $var3'] }), ' is $var3');
  throwsKiln(() => r({ 'Fn::Replace': 'x' }), 'FUNCTION_INVALID', 'Incorrect arguments to "Fn::Replace" should be: ');
  throwsKiln(() => r({ 'Fn::Replace': [['a'], 'x'] }), 'FUNCTION_INVALID', '"Fn::Replace" parameters must be a mapping');
});

test('§6 Fn::Base64 does not encode', () => {
  assert.is(r({ 'Fn::Base64': 'foobar' }), 'foobar');
  throwsKiln(() => r({ 'Fn::Base64': ['x'] }), 'FUNCTION_INVALID', '"Fn::Base64" argument must be a string');
});

test('§6 Fn::GetAZs', () => {
  assert.equal(r({ 'Fn::GetAZs': '' }), ['nova']);
});

test('§6 Fn::MemberListToMap', () => {
  assert.equal(r({ 'Fn::MemberListToMap': ['Name', 'Value', ['.member.0.Name=metric', '.member.0.Value=cpu', '.member.1.Name=size', '.member.1.Value=56']] }), {
    metric: 'cpu',
    size: '56',
  });
  throwsKiln(() => r({ 'Fn::MemberListToMap': ['Name', 'Value'] }), 'FUNCTION_INVALID', 'Wrong Arguments try:');
});

test('§6 Ref: parameter or resource reference', () => {
  assert.is(r({ Ref: 'foo' }, { params: { foo: 'bar' } }), 'bar');
  assert.is(r({ Ref: 'resource1' }), 'resource1');
  throwsKiln(() => r({ Ref: 'nothing' }), 'REFERENCE_UNKNOWN', 'The specified reference "nothing" (in unknown) is incorrect.');
});

test('§6 Fn::ResourceFacade', () => {
  assert.equal(r({ 'Fn::ResourceFacade': 'Metadata' }, { facade: { metadata: { a: 1 } } }), { a: 1 });
  assert.is(r({ 'Fn::ResourceFacade': 'DeletionPolicy' }, { facade: { deletion_policy: 'Retain' } }), 'Retain');
  throwsKiln(() => r({ 'Fn::ResourceFacade': 'metadata' }), 'FUNCTION_INVALID', 'should be one of: Metadata, DeletionPolicy, UpdatePolicy');
});

test.run();
