// INTRINSICS.md §4: map_merge, map_replace, repeat, list_concat(_unique), filter, contains (yaql: yaql.test.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { resolve, throwsKiln } from './functions-host.js';

test('§4 map_merge', () => {
  assert.equal(resolve({ map_merge: [{ f1: 'b1', f2: 'b2' }, { f1: 'b2' }] }), { f1: 'b2', f2: 'b2' });
  assert.equal(resolve({ map_merge: [{ f1: 'b1', f2: 'b2' }, null] }), { f1: 'b1', f2: 'b2' });
  assert.equal(resolve({ map_merge: [{ a: { x: 1 } }, { a: { y: 2 } }] }), { a: { y: 2 } });
});

test('§4 map_merge over a repeat', () => {
  const rep = (forEach: unknown, extra: Record<string, unknown> = {}) =>
    resolve({ map_merge: { repeat: { template: { ROLE: 'ROLE' }, for_each: forEach, ...extra } } });
  assert.equal(rep({ ROLE: ['role1', 'role2'] }), { role1: 'role1', role2: 'role2' });
  assert.equal(rep({ ROLE: null }), {});
  assert.equal(rep({ ROLE: ['a'], OTHER: null }, { permutations: false }), {});
});

test('§4 map_merge errors', () => {
  throwsKiln(() => resolve({ map_merge: [{ a: 1 }, 'x'] }), 'FUNCTION_INVALID', 'Incorrect arguments: Items to merge must be maps.');
  throwsKiln(() => resolve({ map_merge: { a: 1 } }), 'FUNCTION_INVALID', 'Incorrect arguments to "map_merge" should be: ');
});

const mr = (input: unknown, repl: unknown) => resolve({ map_replace: [input, repl] });

test('§4 map_replace', () => {
  const m = { f1: 'b1', f2: 'b2' };
  assert.equal(mr(m, { keys: { f1: 'F1' }, values: { b2: 'B2' } }), { F1: 'b1', f2: 'B2' });
  assert.equal(mr(m, { values: { b2: 'B2' } }), { f1: 'b1', f2: 'B2' });
  assert.equal(mr(m, { keys: { f2: 'F2' } }), { f1: 'b1', F2: 'b2' });
  assert.equal(mr(m, { keys: { f2: 'f2' } }), m);
  assert.equal(mr(m, { values: null }), m);
  assert.equal(mr(m, { keys: null }), m);
  assert.equal(mr({ f1: 'b1', f2: [] }, { values: {} }), { f1: 'b1', f2: [] });
  assert.equal(mr({ f1: ['b1'] }, { values: { b1: 'x' } }), { f1: ['b1'] });
});

test('§4 map_replace errors', () => {
  const m = { f1: 'b1', f2: 'b2' };
  throwsKiln(() => mr(m, { keys: { f2: 'f1' } }), 'FUNCTION_INVALID', 'key replacement f1 collides with a key in the input map');
  throwsKiln(() => mr(m, { keys: { f1: 'f3', f2: 'f3' } }), 'FUNCTION_INVALID', 'key replacement f3 collides with a key in the output map');
  for (const bad of ['ab', [], { f1: 'b1' }, [{ keys: { f1: 'f3' } }]]) {
    throwsKiln(() => resolve({ map_replace: bad }), 'FUNCTION_INVALID', 'Incorrect arguments to "map_replace" should be: ');
  }
  throwsKiln(() => mr(m, 'string'), 'FUNCTION_INVALID', 'Incorrect arguments: to "map_replace", arguments must be a list of maps');
  throwsKiln(() => mr(m, { keys: {}, other: {} }), 'FUNCTION_INVALID', 'Incorrect arguments to "map_replace" should be: ');
});

const rp = (args: unknown, version: '2015-04-30' | '2016-10-14' | '2017-09-01' = '2017-09-01', params = {}) =>
  resolve({ repeat: args }, { version, params });

test('§4 repeat: strings, maps (keys too) and lists', () => {
  assert.equal(rp({ template: 'this is %var%', for_each: { '%var%': ['a', 'b', 'c'] } }), ['this is a', 'this is b', 'this is c']);
  assert.equal(rp({ template: { 'key-%var%': 'this is %var%' }, for_each: { '%var%': ['a', 'b', 'c'] } }), [
    { 'key-a': 'this is a' },
    { 'key-b': 'this is b' },
    { 'key-c': 'this is c' },
  ]);
  assert.equal(rp({ template: ['this is %var%', 'static'], for_each: { '%var%': ['a', 'b', 'c'] } }), [
    ['this is a', 'static'],
    ['this is b', 'static'],
    ['this is c', 'static'],
  ]);
  assert.equal(rp({ template: { SERVICE_enabled: true }, for_each: { SERVICE: ['x', 'y', 'z'] } }), [
    { x_enabled: true },
    { y_enabled: true },
    { z_enabled: true },
  ]);
});

test('§4 repeat: several lists give the cartesian product in for_each key order', () => {
  assert.equal(rp({ template: '%var1%-%var2%', for_each: { '%var1%': ['a', 'b', 'c'], '%var2%': ['1', '2'] } }), ['a-1', 'a-2', 'b-1', 'b-2', 'c-1', 'c-2']);
});

test('§4 repeat: permutations false zips lists of equal length', () => {
  const out = rp({
    template: { network: '%net%', port: '%port%', subnet: '%sub%' },
    for_each: { '%net%': ['n1', 'n2', 'n3', 'n4'], '%port%': ['p1', 'p2', 'p3', 'p4'], '%sub%': ['s1', 's2', 's3', 's4'] },
    permutations: false,
  });
  assert.equal(out, [1, 2, 3, 4].map((i) => ({ network: `n${i}`, port: `p${i}`, subnet: `s${i}` })));
  throwsKiln(
    () => rp({ template: '%a%%b%', for_each: { '%a%': ['1', '2'], '%b%': ['1'] }, permutations: false }),
    'FUNCTION_INVALID',
    'For repeat, the length of for_each values should be equal if no nested loop.',
  );
  throwsKiln(() => rp({ template: '%a%', for_each: { '%a%': { x: 1 } }, permutations: false }), 'FUNCTION_INVALID', 'must be lists');
  throwsKiln(() => rp({ template: '%a%', for_each: { '%a%': ['x'] }, permutations: 'non bool' }), 'FUNCTION_INVALID', '"permutations" should be boolean type for repeat function.');
});

test('§4 repeat: map values iterate keys from 2016-10-14; lists only before', () => {
  assert.equal(rp({ template: '%a%-%b%', for_each: { '%a%': ['a', 'b'], '%b%': { x: 'v', y: 'v' } } }, '2016-10-14'), ['a-x', 'a-y', 'b-x', 'b-y']);
  throwsKiln(() => rp({ template: '%a%', for_each: { '%a%': { x: 1 } } }, '2015-04-30'), 'FUNCTION_INVALID', 'The values of the "for_each" argument to "repeat" must be lists');
});

test('§4 repeat: permutations is ignored before 2017-09-01', () => {
  const out = resolve({ repeat: { template: '%a%%b%', for_each: { '%a%': ['1', '2'], '%b%': ['x', 'y'] }, permutations: false } }, { version: '2016-10-14' });
  assert.equal(out, ['1x', '1y', '2x', '2y']);
});

test('§4 repeat: None counts as an empty list (product is empty)', () => {
  assert.equal(rp({ template: '%a%%b%', for_each: { '%a%': ['1', '2'], '%b%': null } }), []);
});

test('§4 repeat: for_each values from functions', () => {
  assert.equal(rp({ template: 'x-%v%', for_each: { '%v%': { get_param: 'list' } } }, '2017-09-01', { list: ['a', 'b', 'c'] }), ['x-a', 'x-b', 'x-c']);
  const out = resolve(
    { repeat: { template: '<%v%>', for_each: { '%v%': { get_attr: ['res', 'list'] } } } },
    { resources: { res: { attrs: { list: ['this is foo', 'this is bar'] } } } },
  );
  assert.equal(out, ['<this is foo>', '<this is bar>']);
});

test('§4 repeat errors', () => {
  throwsKiln(() => rp({ template: 'x', for_eac: { x: ['a'] } }), 'FUNCTION_INVALID', '"repeat" syntax should be ');
  throwsKiln(() => rp({ tmpl: 'x', for_each: { x: ['a'] } }), 'FUNCTION_INVALID', '"repeat" syntax should be ');
  throwsKiln(() => rp({ template: 'x', for_each: ['a'] }), 'FUNCTION_INVALID', 'repeat: The "for_each" argument to "repeat" must contain a map');
});

test('§4 list_concat', () => {
  assert.equal(resolve({ list_concat: [['v1', 'v2'], ['v3', 'v4']] }), ['v1', 'v2', 'v3', 'v4']);
  assert.equal(resolve({ list_concat: [['v1', 'v2'], ['v3', 'v4'], null] }), ['v1', 'v2', 'v3', 'v4']);
  assert.equal(resolve({ list_concat: [['v1', 'v2'], ['v2', 'v3']] }), ['v1', 'v2', 'v2', 'v3']);
  assert.equal(resolve({ list_concat: [[{ a: 1 }], [{ b: 2 }]] }), [{ a: 1 }, { b: 2 }]);
});

test('§4 list_concat_unique', () => {
  assert.equal(resolve({ list_concat_unique: [['v1', 'v2'], ['v1', 'v3']] }), ['v1', 'v2', 'v3']);
  assert.equal(resolve({ list_concat_unique: [[{ v1: 'v2' }], [{ v1: 'v2' }]] }), [{ v1: 'v2' }]);
});

test('§4 list_concat errors', () => {
  for (const fn of ['list_concat', 'list_concat_unique']) {
    throwsKiln(() => resolve({ [fn]: [{ k1: 'v2' }, ['v1']] }), 'FUNCTION_INVALID', 'Incorrect arguments');
    throwsKiln(() => resolve({ [fn]: 'I am string' }), 'FUNCTION_INVALID', 'Incorrect arguments');
    throwsKiln(
      () => resolve({ [fn]: ['v1', 'v2'] }),
      'FUNCTION_INVALID',
      'Incorrect arguments: Items to concat must be lists. ["v1", "v2"] contains an item that is not a list: "v1"',
    );
  }
});

test('§4 filter', () => {
  assert.equal(resolve({ filter: [[null], [1, null, 4, 2, null]] }), [1, 4, 2]);
  assert.equal(resolve({ filter: [[1], []] }), []);
  assert.is(resolve({ filter: [[1], null] }), null);
  assert.equal(resolve({ filter: [[], [1, 2]] }), [1, 2]);
  assert.equal(resolve({ filter: [null, [1, 2]] }), [1, 2]);
});

test('§4 filter errors', () => {
  throwsKiln(() => resolve({ filter: 'foo' }), 'FUNCTION_INVALID', 'Argument to "filter" must be a list');
  throwsKiln(() => resolve({ filter: [[1], [1], [2]] }), 'FUNCTION_INVALID', '"filter" expected 2 arguments of the form [values, sequence] but got 3 arguments instead');
  throwsKiln(() => resolve({ filter: [[1], { a: 1 }] }), 'FUNCTION_INVALID', '"filter" only works with lists');
  throwsKiln(() => resolve({ filter: [[1], 'abc'] }), 'FUNCTION_INVALID', '"filter" only works with lists');
  throwsKiln(() => resolve({ filter: ['abcd', [1, 2]] }), 'FUNCTION_INVALID', '"filter" filters a list of values');
});

test('§4 contains', () => {
  assert.is(resolve({ contains: ['v1', ['v1', 'v2']] }), true);
  assert.is(resolve({ contains: ['v3', ['v1', 'v2']] }), false);
  assert.is(resolve({ contains: ['a', 'abc'] }), true);
  assert.is(resolve({ contains: [1, [1.0, 2]] }), true);
});

test('§4 contains errors', () => {
  throwsKiln(() => resolve({ contains: { key: 'value' } }), 'FUNCTION_INVALID', 'Incorrect arguments to "contains" should be: ');
  throwsKiln(() => resolve({ contains: ['a', ['a'], 'b'] }), 'FUNCTION_INVALID', 'Arguments to "contains" must be of the form: [value1, [value1, value2]]');
  throwsKiln(() => resolve({ contains: ['a', { a: 1 }] }), 'FUNCTION_INVALID', 'Second argument to "contains" should be a sequence.');
});

test.run();
