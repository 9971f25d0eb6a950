import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CustomConstraintRegistry, Parameters, Template, parseTemplateText, immutableError } from '../src/index.js';
import { kilnError } from './helpers.js';

function params(schema: string, values: Record<string, unknown> = {}, opts: { version?: string; defaults?: Record<string, unknown>; customs?: CustomConstraintRegistry; validateValues?: boolean } = {}) {
  const t = Template.from(parseTemplateText(`heat_template_version: ${opts.version ?? '2017-02-24'}\nparameters:\n${schema}`));
  return new Parameters(t.paramSchemas, { stackName: 's', stackId: 'id-1', projectId: 'p-1', region: 'r1' }, { values, defaults: opts.defaults, customConstraints: opts.customs, validateValues: opts.validateValues });
}

const fail = (schema: string, values: Record<string, unknown> = {}, opts = {}) => kilnError(() => params(schema, values, opts));

test('number coercion', () => {
  assert.is(params('  n: {type: number}\n', { n: '3' }).get('n'), 3);
  assert.is(params('  n: {type: number}\n', { n: '3.5' }).get('n'), 3.5);
  const e = fail('  n: {type: number}\n', { n: 'str' });
  assert.is(e.code, 'PARAM_TYPE');
  assert.match(e.reason, /^Parameter 'n' is invalid: .*float/);
});

test('boolean coercion', () => {
  for (const v of ['1', 't', 'true', 'on', 'y', 'yes', true, 1, 'True']) assert.is(params('  b: {type: boolean}\n', { b: v }).get('b'), true, String(v));
  for (const v of ['0', 'f', 'false', 'off', 'n', 'no', false, 0]) assert.is(params('  b: {type: boolean}\n', { b: v }).get('b'), false, String(v));
  assert.match(fail('  b: {type: boolean}\n', { b: 'foo' }).reason, "Unrecognized value 'foo'");
});

test('comma_delimited_list and json', () => {
  assert.equal(params('  l: {type: comma_delimited_list}\n', { l: 'baz,foo,bar' }).get('l'), ['baz', 'foo', 'bar']);
  assert.equal(params("  l: {type: comma_delimited_list, default: ''}\n").get('l'), []);
  assert.equal(params('  l: {type: comma_delimited_list, default: [1, 2]}\n').get('l'), ['1', '2']);
  assert.equal(params('  j: {type: json}\n', { j: '{"a": [1]}' }).get('j'), { a: [1] });
  assert.equal(params('  j: {type: json, default: {k: v}}\n').get('j'), { k: 'v' });
  assert.match(fail('  j: {type: json}\n', { j: '{nope' }).reason, 'Value must be valid JSON');
});

test('string values are text', () => {
  assert.is(params('  s: {type: string}\n', { s: 42 }).get('s'), '42');
});

test('schema errors with Heat wording', () => {
  assert.is(fail('  p: {type: Unicode}\n').reason, 'Invalid type (Unicode)');
  assert.is(fail('  param1: {default: 1}\n').reason, 'Missing parameter type for parameter: param1');
  assert.is(fail('  param1: {type: string, foo: 1}\n').reason, "Invalid key 'foo' for parameter (param1)");
  assert.is(fail('  param1: {type: string, constraints: [{allowed_valus: [a]}]}\n').reason, "Invalid key 'allowed_valus' for parameter constraints");
  assert.is(fail('  param1: {type: string, constraints: {length: {min: 1}}}\n').reason, 'Invalid parameter constraints for parameter param1, expected a list');
  assert.is(fail('  param1: {type: string, constraints: [a]}\n').reason, 'Invalid parameter constraints, expected a mapping');
  assert.is(fail('  param1: {type: string, constraints: [{description: d}]}\n').reason, 'No constraint expressed');
  assert.is(fail('  param1: {type: number, constraints: [{range: 5}]}\n').reason, 'Invalid range constraint, expected a mapping');
  assert.is(fail('  param1: {type: number, constraints: [{range: {foo: 1}}]}\n').reason, "Invalid key 'foo' for range constraint");
  assert.is(fail('  param1: {type: string, constraints: [{allowed_pattern: [1]}]}\n').reason, 'AllowedPattern must be a string');
  assert.is(fail('  param1: {type: string, constraints: [{range: {min: 1}}]}\n').reason, "Parameter 'param1' is invalid: Range constraint invalid for string");
  // tags only from 2018-03-02
  assert.is(fail('  p: {type: string, default: a, tags: [x]}\n').reason, "Invalid key 'tags' for parameter (p)");
  assert.equal(params('  p: {type: string, default: a, tags: [x]}\n', {}, { version: '2018-03-02' }).entry('p')!.schema.tags, ['x']);
});

test('range is inclusive; the description replaces the message', () => {
  const schema = '  p: {type: number, constraints: [{range: {min: 30000, max: 50000}, description: "between 30000 and 50000"}]}\n';
  assert.is(params(schema, { p: 30000 }).get('p'), 30000);
  assert.is(params(schema, { p: '50000' }).get('p'), 50000);
  for (const v of [29999, 50001]) {
    const e = fail(schema, { p: v });
    assert.is(e.code, 'PARAM_CONSTRAINT');
    assert.is(e.reason, "Parameter 'p' is invalid: between 30000 and 50000");
  }
  assert.is(fail('  p: {type: number, constraints: [{range: {min: 1, max: 5}}]}\n', { p: 7 }).reason, "Parameter 'p' is invalid: 7 is out of range (min: 1, max: 5)");
});

test('length on strings and lists', () => {
  assert.is(fail('  p: {type: string, constraints: [{length: {min: 2, max: 3}}]}\n', { p: 'abcd' }).reason, "Parameter 'p' is invalid: length (4) is out of range (min: 2, max: 3)");
  assert.is(fail('  p: {type: comma_delimited_list, constraints: [{length: {max: 1}}]}\n', { p: 'a,b' }).reason, "Parameter 'p' is invalid: length (2) is out of range (min: None, max: 1)");
});

test('allowed_pattern must match the whole value', () => {
  const schema = '  p: {type: string, constraints: [{allowed_pattern: "[a-zA-Z]+"}]}\n';
  assert.is(params(schema, { p: 'abcdefgh' }).get('p'), 'abcdefgh');
  assert.is(fail(schema, { p: 'abcdefgh1' }).reason, `Parameter 'p' is invalid: "abcdefgh1" does not match pattern "[a-zA-Z]+"`);
});

test('allowed_values, typed', () => {
  assert.is(params('  p: {type: number, constraints: [{allowed_values: [1, 2]}]}\n', { p: '2' }).get('p'), 2);
  assert.is(fail('  p: {type: string, constraints: [{allowed_values: [a, b]}]}\n', { p: 'c' }).reason, `Parameter 'p' is invalid: "c" is not an allowed value [a, b]`);
  assert.equal(params('  p: {type: comma_delimited_list, constraints: [{allowed_values: [a, b]}]}\n', { p: 'a,b' }).get('p'), ['a', 'b']);
  assert.ok(fail('  p: {type: comma_delimited_list, constraints: [{allowed_values: [a, b]}]}\n', { p: 'a,c' }));
});

test('modulo (2017-02-24+): step 2 offset 1', () => {
  const schema = '  p: {type: number, constraints: [{modulo: {step: 2, offset: 1}}]}\n';
  for (const v of [1, 3, 777]) assert.is(params(schema, { p: v }).get('p'), v);
  for (const v of [2, 100]) assert.is(fail(schema, { p: v }).code, 'PARAM_CONSTRAINT');
  // before 2017-02-24 modulo is not a constraint
  assert.is(fail(schema, { p: 1 }, { version: '2016-10-14' }).reason, 'No constraint expressed');
});

test('a default that breaks a constraint is a schema error carrying the description', () => {
  const e = fail('  p: {type: string, default: toolong, constraints: [{length: {max: 3}, description: too long}]}\n');
  assert.is(e.reason, "Parameter 'p' is invalid: Invalid default toolong (too long)");
});

test('custom constraints: registered ones are checked on user values only; unknown ones pass', () => {
  const customs = new CustomConstraintRegistry();
  customs.register('nova.flavor', (v) => (v === 'm1.small' ? undefined : `Error validating value '${String(v)}'`));
  const schema = '  f: {type: string, default: bogus, constraints: [{custom_constraint: nova.flavor}]}\n';
  assert.is(params(schema, {}, { customs }).get('f'), 'bogus');
  assert.is(params(schema, { f: 'm1.small' }, { customs }).get('f'), 'm1.small');
  assert.is(fail(schema, { f: 'm1.huge' }, { customs }).reason, "Parameter 'f' is invalid: Error validating value 'm1.huge'");
  assert.is(params('  g: {type: string, constraints: [{custom_constraint: glance.image}]}\n', { g: 'anything' }).get('g'), 'anything');
});

test('missing and unknown parameters', () => {
  const e = fail('  p: {type: string}\n');
  assert.is(e.code, 'PARAM_MISSING');
  assert.is(e.reason, 'The Parameter (p) was not provided.');
  assert.ok(params('  p: {type: string}\n', {}, { validateValues: false }));
  const u = fail('  p: {type: string, default: a}\n', { q: 1 });
  assert.is(u.code, 'PARAM_UNKNOWN');
  assert.is(u.reason, 'The Parameter (q) was not defined in template.');
});

test('precedence: parameters > parameter_defaults > template default', () => {
  const schema = '  p: {type: string, default: template}\n';
  assert.is(params(schema).get('p'), 'template');
  assert.is(params(schema, {}, { defaults: { p: 'env-default' } }).get('p'), 'env-default');
  assert.is(params(schema, { p: 'value' }, { defaults: { p: 'env-default' } }).get('p'), 'value');
  // parameter_defaults for unknown parameters are ignored
  assert.ok(params(schema, {}, { defaults: { other: 1 } }));
});

test('pseudo parameters', () => {
  const p = params('  a: {type: string, default: x}\n');
  assert.is(p.get('OS::stack_name'), 's');
  assert.is(p.get('OS::stack_id'), 'id-1');
  assert.is(p.get('OS::project_id'), 'p-1');
  assert.is(p.get('OS::region'), 'r1');
});

test('hidden, label, description, immutable', () => {
  const p = params('  a: {type: string, default: x, hidden: true, label: L, description: D, immutable: true}\n');
  const s = p.entry('a')!.schema;
  assert.is(s.hidden, true);
  assert.is(s.label, 'L');
  assert.is(s.description, 'D');
  const next = params('  a: {type: string, default: y, immutable: true}\n');
  assert.equal(p.immutableChanged(next), ['a']);
  assert.is(immutableError(['a']).reason, 'The following parameters are immutable and may not be updated: a');
});

test('parameter_groups validation', () => {
  const t = (groups: string) => () => Template.from(parseTemplateText(`heat_template_version: 2015-10-15\nparameters:\n  a: {type: string}\n  b: {type: string}\nparameter_groups:\n${groups}`));
  assert.ok(t('- label: g\n  parameters: [a, b]\n')());
  assert.match(kilnError(t('- label: g\n  parameters: [a, c]\n')).reason, 'The grouped parameter c does not reference a valid parameter.');
  assert.match(kilnError(t('- label: g\n  parameters: [a]\n- label: h\n  parameters: [a]\n')).reason, 'The a parameter must be assigned to one parameter group only.');
  assert.match(kilnError(t('- label: g\n')).reason, 'The parameters must be provided for each parameter group.');
});

test.run();
