// INTRINSICS.md §3: str_replace (+strict, vstrict), list_join, str_split, digest, make_url.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { resolve, throwsKiln } from './functions-host.js';

const sr = (template: unknown, params: unknown, version: '2013-05-23' | '2015-10-15' | '2021-04-16' = '2021-04-16', fn = 'str_replace') =>
  resolve({ [fn]: { template, params } }, { version });

test('§3 str_replace: longest keys first, substituted text never rescanned', () => {
  assert.is(sr('1234567890', { 1: 'a', 12: 'b', 123: 'c', 1234: 'd', 12345: 'e', 123456: 'f', 1234567: 'g' }), 'g890');
  assert.is(sr('1234567890', { 1: 'a', 4: 'd', 8: 'h', 9: 'i', 123: '1', 456: '4', 890: '8', 90: '9' }), '1478');
  assert.is(sr('9876543210', { 987654: 'a', 876543: 'b', 765432: 'c', 654321: 'd', 543210: 'e' }), '9876e');
});

test('§3 str_replace: basic, extra params are fine', () => {
  assert.is(sr('Template var1 string var2', { var1: 'foo', var2: 'bar' }), 'Template foo string bar');
  assert.is(sr('Template var1 string var2', { var1: 'foo', var2: 'bar', var3: 'zed' }), 'Template foo string bar');
});

test('§3 str_replace: numbers, booleans, None', () => {
  assert.is(sr('Template number string bar', { number: 1 }), 'Template 1 string bar');
  assert.is(sr('a=x b=y', { x: true, y: false }), 'a=True b=False');
  assert.is(sr('a=x.', { x: null }), 'a=.');
  assert.is(sr('a=x', { x: 1.5 }), 'a=1.5');
});

test('§3 str_replace 2013-05-23..2015-04-30: maps and lists are invalid', () => {
  throwsKiln(() => sr('x jsonvar1', { jsonvar1: { foo: 123 } }, '2013-05-23'), 'FUNCTION_INVALID', '"str_replace" params must be strings or numbers, param jsonvar1 is not valid');
});

test('§3 str_replace 2015-10-15+: maps and lists as JSON with sorted keys', () => {
  assert.is(sr('jsonvar1', { jsonvar1: { foo: 123 } }, '2015-10-15'), '{"foo": 123}');
  assert.is(sr('listvar1', { listvar1: ['foo', 123] }, '2015-10-15'), '["foo", 123]');
  assert.is(sr('v', { v: { b: [1, { d: null, c: true }], a: 'é' } }, '2015-10-15'), '{"a": "\\u00e9", "b": [1, {"c": true, "d": null}]}');
});

test('§3 str_replace parse errors', () => {
  throwsKiln(() => resolve({ str_replace: ['a', 'b'] }), 'FUNCTION_INVALID', 'Arguments to "str_replace" must be a map');
  throwsKiln(() => resolve({ str_replace: { tmpl: 'a', params: {} } }), 'FUNCTION_INVALID', '"str_replace" syntax should be str_replace:\n');
  throwsKiln(() => resolve({ str_replace: { template: 'a', parms: {} } }), 'FUNCTION_INVALID', '"str_replace" syntax should be');
  throwsKiln(() => resolve({ str_replace: { template: 'a', params: ['x'] } }), 'FUNCTION_INVALID', 'str_replace: "str_replace" parameters must be a mapping');
});

test('§3 str_replace resolve errors', () => {
  throwsKiln(() => sr(12345, { a: 'b' }), 'FUNCTION_INVALID', '"str_replace" template must be a string');
  throwsKiln(() => resolve({ str_replace: { template: 'a', params: { get_param: 'p' } } }, { params: { p: 'x' } }), 'FUNCTION_INVALID', '"str_replace" params must be a map');
});

test('§3 str_replace: template and params from get_param (test_str_replace_ref_get_param)', () => {
  const out = resolve(
    { str_replace: { template: { get_param: ['data', 'template'] }, params: { get_param: ['data', 'params'] } } },
    { params: { data: { template: 'foo-replaceme', params: { replaceme: 'success' } } } },
  );
  assert.is(out, 'foo-success');
});

test('§3 str_replace_strict: missing keys', () => {
  throwsKiln(() => sr('Template var1 string var2', { var1: 'foo', var2: 'bar', var3: 'zed' }, '2021-04-16', 'str_replace_strict'), 'FUNCTION_INVALID', 'The following params were not found in the template: var3');
  throwsKiln(
    () => sr('Template string', { var: 'a', longvarname: 'b', var0: 'c' }, '2021-04-16', 'str_replace_strict'),
    'FUNCTION_INVALID',
    'The following params were not found in the template: longvarname,var0,var',
  );
});

test('§3 str_replace_strict: a key counts as found if it split any piece', () => {
  assert.is(
    sr('Template var1 var1 s var2 t varvarvar3', { var1: 'foo', var2: 'bar', var3: 'zed', var: 'tricky ' }, '2021-04-16', 'str_replace_strict'),
    'Template foo foo s bar t tricky tricky zed',
  );
});

test('§3 str_replace_strict: overlap trap and empty values', () => {
  throwsKiln(() => sr('ab', { a: '1', ab: '2' }, '2021-04-16', 'str_replace_strict'), 'FUNCTION_INVALID', 'not found in the template: a');
  assert.is(sr('Template var1 string var2', { var1: 'foo', var2: '' }, '2021-04-16', 'str_replace_strict'), 'Template foo string ');
});

test('§3 str_replace_vstrict: empty values are errors, 0 is allowed', () => {
  const msg = 'str_replace_vstrict has an undefined or empty value for param var2, must be a defined non-empty value';
  for (const empty of [null, '', {}, []]) {
    throwsKiln(() => sr('Template var1 string var2', { var1: 'foo', var2: empty }, '2021-04-16', 'str_replace_vstrict'), 'FUNCTION_INVALID', msg);
  }
  assert.is(sr('Template var1 string var2', { var1: 'foo', var2: 0 }, '2021-04-16', 'str_replace_vstrict'), 'Template foo string 0');
});

const v13 = { version: '2013-05-23' as const };

test('§3 list_join (Join, 2013-05-23)', () => {
  assert.is(resolve({ list_join: [',', ['bar', 'baz']] }, v13), 'bar,baz');
  assert.is(resolve({ list_join: [',', []] }, v13), '');
  assert.is(resolve({ list_join: [',', ['a', null, 'b']] }, v13), 'a,,b');
  throwsKiln(() => resolve({ list_join: [',', [{ foo: 'json' }]] }, v13), 'FUNCTION_INVALID', "Items to join must be strings not {'foo': 'json'}");
  throwsKiln(() => resolve({ list_join: [',', ['a'], ['b']] }, v13), 'FUNCTION_INVALID', 'Incorrect arguments to "list_join" should be: "list_join" : [ " ", [ "str1", "str2"]]');
});

test('§3 list_join (JoinMultiple, 2015-10-15+)', () => {
  assert.is(resolve({ list_join: [',', ['bar', 'baz'], ['bar2', 'baz2']] }), 'bar,baz,bar2,baz2');
  assert.is(resolve({ list_join: [',', [{ foo: 'json' }, { foo2: 'json2' }]] }), '{"foo": "json"},{"foo2": "json2"}');
  assert.is(resolve({ list_join: ['-', ['a', null, 'b'], [], null, [{ z: 1, a: [2] }]] }), 'a--b-{"a": [2], "z": 1}');
});

test('§3 list_join errors', () => {
  for (const bad of ['bad', 5, [',']]) {
    throwsKiln(() => resolve({ list_join: bad }), 'FUNCTION_INVALID', 'list_join: Incorrect arguments to "list_join" should be: ');
  }
  throwsKiln(() => resolve({ list_join: [',', 'abc'] }), 'FUNCTION_INVALID', '"list_join" must operate on a list');
  throwsKiln(() => resolve({ list_join: [1, ['a']] }), 'FUNCTION_INVALID', '"list_join" delimiter must be a string');
  throwsKiln(() => resolve({ list_join: [',', [1]] }), 'FUNCTION_INVALID', 'Items to join must be string, map or list');
});

test('§3 str_split', () => {
  assert.equal(resolve({ str_split: [',', 'bar,baz'] }), ['bar', 'baz']);
  assert.is(resolve({ str_split: [',', 'bar,baz', 1] }), 'baz');
  assert.is(resolve({ str_split: [',', 'bar,baz', '1'] }), 'baz');
  assert.is(resolve({ str_split: ['.', null] }), null);
  assert.equal(resolve({ str_split: [null, 'check'] }), ['check']);
  assert.equal(resolve({ str_split: [null, '  a b\tc '] }), ['a', 'b', 'c']);
  assert.is(resolve({ str_split: [',', 'a,b,c', -1] }), 'c');
});

test('§3 str_split errors', () => {
  const incorrect = 'Incorrect arguments to "str_split" should be: "str_split" : [ ",", "apples,pears", <index>]';
  throwsKiln(() => resolve({ str_split: [','] }), 'FUNCTION_INVALID', incorrect);
  throwsKiln(() => resolve({ str_split: [] }), 'FUNCTION_INVALID', incorrect);
  throwsKiln(() => resolve({ str_split: 'a,b' }), 'FUNCTION_INVALID', incorrect);
  throwsKiln(() => resolve({ str_split: { a: 'b' } }), 'FUNCTION_INVALID', incorrect);
  throwsKiln(() => resolve({ str_split: [',', 'bar,baz', 'bad'] }), 'FUNCTION_INVALID', 'Incorrect index to "str_split" should be: ');
  throwsKiln(() => resolve({ str_split: [',', 'bar,baz', '2'] }), 'FUNCTION_INVALID', 'Incorrect index to "str_split" should be between 0 and 1');
});

test('§3 digest', () => {
  assert.is(resolve({ digest: ['md5', 'foobar'] }), '3858f62230ac3c915f300c664312c63f');
  assert.is(resolve({ digest: ['sha256', 'foobar'] }), 'c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2');
  assert.is(resolve({ digest: ['SHA256', 'foobar'] }), 'c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2');
  assert.is(resolve({ digest: ['sha1', 'foobar'] }), '8843d7f92416211de9ebb963ff4ce28125932878');
  assert.is((resolve({ digest: ['sha224', 'x'] }) as string).length, 56);
  assert.is((resolve({ digest: ['sha384', 'x'] }) as string).length, 96);
  assert.is((resolve({ digest: ['sha512', 'x'] }) as string).length, 128);
  // latin-1: é is one byte.
  assert.is(resolve({ digest: ['md5', '\u00e9'] }), '3406877694691ddd1dfb0aca54681407');
});

test('§3 digest errors', () => {
  for (const bad of ['invalid', { foo: 'invalid' }, [123]]) {
    throwsKiln(() => resolve({ digest: bad }), 'FUNCTION_INVALID', 'Argument to function "digest" must be a list of strings');
  }
  for (const bad of [[], ['foo'], ['md5'], ['md5', 'foo', 'bar']]) {
    throwsKiln(() => resolve({ digest: bad }), 'FUNCTION_INVALID', 'Function "digest" usage: ["<algorithm>", "<value>"]');
  }
  throwsKiln(() => resolve({ digest: ['invalid_algorithm', 'foobar'] }), 'FUNCTION_INVALID', 'Algorithm must be one of ');
});

const url = (args: unknown) => resolve({ make_url: args });

test('§3 make_url', () => {
  assert.is(url({ scheme: 'http', host: 'example.com', path: '/foo/bar' }), 'http://example.com/foo/bar');
  assert.is(url({ scheme: 'http', host: '::1', path: '/foo/bar' }), 'http://[::1]/foo/bar');
  assert.is(url({ scheme: 'http', host: '[::1]', path: '/foo/bar' }), 'http://[::1]/foo/bar');
  assert.is(url({ scheme: 'https', host: 'example.com', port: '80', path: '/foo/bar' }), 'https://example.com:80/foo/bar');
  assert.is(url({ scheme: 'https', host: 'example.com', port: 80, path: '/foo/bar' }), 'https://example.com:80/foo/bar');
  assert.is(url({ scheme: 'http', username: 'wibble', host: 'example.com', path: '/foo/bar' }), 'http://wibble@example.com/foo/bar');
  assert.is(url({ scheme: 'http', username: 'wibble', password: 'blarg', host: 'example.com', path: '/foo/bar' }), 'http://wibble:blarg@example.com/foo/bar');
  assert.is(url({ scheme: 'http', username: 'a b', password: 'p@ss', host: 'h' }), 'http://a%20b:p%40ss@h');
  assert.is(
    url({ scheme: 'http', host: 'example.com', path: '/foo/?bar', query: { 'foo#': 'bar & baz', blarg: '/wib=ble/' } }),
    'http://example.com/foo/%3Fbar?foo%23=bar+%26+baz&blarg=/wib%3Dble/',
  );
  assert.is(url({ scheme: 'http', host: 'example.com', path: 'foo/bar', fragment: 'baz' }), 'http://example.com/foo/bar#baz');
  assert.is(url({ scheme: 'file', path: 'foo/bar' }), 'file:///foo/bar');
  assert.is(url({ scheme: 'file', path: '/foo/bar' }), 'file:///foo/bar');
});

test('§3 make_url errors', () => {
  for (const port of [100000, '0']) throwsKiln(() => url({ scheme: 'http', host: 'h', port }), 'FUNCTION_INVALID', 'must be in range 1-65535');
  throwsKiln(() => url({ scheme: 'http', host: 'h', port: '1.1' }), 'FUNCTION_INVALID', 'Invalid URL port "1.1"');
  throwsKiln(() => url('http://example.com'), 'FUNCTION_INVALID', 'The arguments to "make_url" must be a map');
  throwsKiln(() => url({ scheme: 'http', foo: 'x' }), 'FUNCTION_INVALID', 'Invalid arguments to "make_url": foo');
  throwsKiln(() => url({ scheme: 'http:', host: 'h' }), 'FUNCTION_INVALID', 'should not contain');
  throwsKiln(() => url({ scheme: 'http', host: 5 }), 'FUNCTION_INVALID', 'The "host" argument to "make_url" must be a string');
  throwsKiln(() => url({ scheme: 'http', host: 'h', query: 'a=b' }), 'FUNCTION_INVALID', 'The "query" argument to "make_url" must be a map');
});

test.run();
