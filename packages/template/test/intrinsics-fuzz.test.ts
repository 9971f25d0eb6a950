// Property: whatever data a template holds, parsing, validating and resolving it either succeeds
// or throws a KilnError (never a raw TypeError), and yaql never throws anything but YaqlError.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { KilnError } from '@kiln/core';
import { HOT_VERSIONS, compileYaql, evaluateConditions, parseSnippet, resolveSnippet, validateSnippet, YaqlError } from '../src/functions/index.js';
import { testHost } from './functions-host.js';

const NAMES = [
  'get_param', 'get_resource', 'get_attr', 'get_file', 'str_replace', 'str_replace_strict', 'str_replace_vstrict', 'list_join',
  'repeat', 'digest', 'resource_facade', 'str_split', 'map_merge', 'map_replace', 'yaql', 'equals', 'not', 'and', 'or', 'contains',
  'if', 'filter', 'make_url', 'list_concat', 'list_concat_unique', 'Ref', 'Fn::Select', 'Fn::Join', 'Fn::Split', 'Fn::Replace',
  'Fn::Base64', 'Fn::GetAZs', 'Fn::MemberListToMap', 'Fn::ResourceFacade',
  'template', 'params', 'for_each', 'permutations', 'expression', 'data', 'keys', 'values', 'scheme', 'host', 'port', 'query',
];

const key = fc.oneof(fc.constantFrom(...NAMES), fc.constantFrom('foo', 'list', 'resource1', 'c', 'md5', '%v%', 'metadata'), fc.string({ maxLength: 4 }));
const scalar = fc.oneof(fc.constantFrom(...NAMES), fc.constantFrom('resource1', 'foo', 'c', '$.data', 'md5', '%v%', ''), fc.string({ maxLength: 6 }), fc.integer({ min: -3, max: 70000 }), fc.double(), fc.boolean(), fc.constant(null));
const { value } = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalar, tie('list'), tie('map'), tie('call')),
  list: fc.array(tie('value'), { maxLength: 4 }),
  map: fc.dictionary(key, tie('value'), { maxKeys: 3 }),
  call: fc.tuple(fc.constantFrom(...NAMES), tie('value')).map(([k, v]) => ({ [k]: v })),
}));

const host = (version: (typeof HOT_VERSIONS)[number]) =>
  testHost({ version, params: { foo: 'bar', list: ['a', 'b'], none: null, n: 3 }, files: { foo: 'content' }, conditions: { c: true } });

test('fuzz: parse/validate/resolve throw only KilnErrors', () => {
  fc.assert(
    fc.property(value, fc.constantFrom(...HOT_VERSIONS), fc.constantFrom('value', 'condition'), (raw, version, mode) => {
      try {
        const s = parseSnippet(raw, version, 'resources.x.properties.p', mode as 'value' | 'condition');
        validateSnippet(s, host(version));
        resolveSnippet(s, host(version));
      } catch (e) {
        if (!(e instanceof KilnError)) throw new Error(`untyped ${String(e)} for ${JSON.stringify(raw)}`);
      }
    }),
    { numRuns: 3000, seed: 42 },
  );
});

test('fuzz: the conditions section throws only KilnErrors', () => {
  fc.assert(
    fc.property(fc.dictionary(fc.constantFrom('a', 'b', 'c'), value, { maxKeys: 3 }), (section) => {
      try {
        evaluateConditions(section, '2021-04-16', host('2021-04-16'));
      } catch (e) {
        if (!(e instanceof KilnError)) throw new Error(`untyped ${String(e)}`);
      }
    }),
    { numRuns: 1000, seed: 7 },
  );
});

const token = fc.constantFrom('$', '$.data', '$1', '.', 'select(', 'where(', ')', '(', '[', ']', '{', '}', '=>', '->', ',', '+', '*', ' mod ', ' and ', 'not ', '=', '1', '"s"', 'let(', 'x', 'range(', 'len(', 'regex(', '.search(', 'switch(', 'null', '-');
test('fuzz: yaql throws only YaqlError on arbitrary token soup', () => {
  fc.assert(
    fc.property(fc.array(token, { maxLength: 20 }), fc.anything({ maxDepth: 2 }), (tokens, data) => {
      try {
        compileYaql(tokens.join('')).evaluate({ data });
      } catch (e) {
        assert.instance(e, YaqlError, String(e));
      }
    }),
    { numRuns: 3000, seed: 1 },
  );
});

test.run();
