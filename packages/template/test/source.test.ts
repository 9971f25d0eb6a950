import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseTemplateText, parseEnvironmentText, Template } from '../src/index.js';
import { kilnError } from './helpers.js';

test('heat_template_version dates stay strings; YAML 1.1 booleans are booleans', () => {
  const t = parseTemplateText('heat_template_version: 2013-05-23\nparameters:\n  a: {type: boolean, default: yes}\n  b: {type: string, default: off}\n');
  assert.is(t.heat_template_version, '2013-05-23');
  const params = t.parameters as Record<string, { default: unknown }>;
  assert.is(params.a!.default, true);
  assert.is(params.b!.default, false);
});

test('every version by date and by release name', () => {
  const names: Record<string, string> = { newton: '2016-10-14', ocata: '2017-02-24', pike: '2017-09-01', queens: '2018-03-02', rocky: '2018-08-31', wallaby: '2021-04-16' };
  for (const v of ['2013-05-23', '2014-10-16', '2015-04-30', '2015-10-15', '2016-04-08', '2016-10-14', '2017-02-24', '2017-09-01', '2018-03-02', '2018-08-31', '2021-04-16']) {
    assert.is(Template.from(parseTemplateText(`heat_template_version: ${v}\n`)).version, v);
  }
  for (const [name, date] of Object.entries(names)) assert.is(Template.from(parseTemplateText(`heat_template_version: ${name}\n`)).version, date);
  const e = kilnError(() => Template.from(parseTemplateText('heat_template_version: 2012-01-01\n')));
  assert.is(e.code, 'TEMPLATE_VERSION');
});

test('JSON templates parse', () => {
  const t = Template.from(parseTemplateText('{"heat_template_version": "2015-10-15", "resources": {"a": {"type": "OS::Heat::None"}}}'));
  assert.equal([...t.resources.keys()], ['a']);
});

test('YAML syntax errors are YAML_SYNTAX with line and column', () => {
  const e = kilnError(() => parseTemplateText('heat_template_version: 2015-10-15\nresources: [a,\nb: 1\n'));
  assert.is(e.code, 'YAML_SYNTAX');
  const pos = e.detail as { line: number; column: number };
  assert.is(pos.line, 3);
  assert.ok(pos.column >= 1);
});

test('missing version and non-mapping documents', () => {
  assert.is(kilnError(() => parseTemplateText('resources: {}\n')).message, 'Template format version not found.');
  assert.is(kilnError(() => parseTemplateText('- a\n- b\n')).message, 'The template is not a JSON object or YAML mapping.');
});

test('templates over the size limit are TEMPLATE_TOO_LARGE (limit configurable)', () => {
  const big = `heat_template_version: 2015-10-15\ndescription: "${'x'.repeat(600 * 1024)}"\n`;
  assert.is(kilnError(() => parseTemplateText(big)).code, 'TEMPLATE_TOO_LARGE');
  assert.is(kilnError(() => parseTemplateText('heat_template_version: 2015-10-15\n', { maxBytes: 10 })).code, 'TEMPLATE_TOO_LARGE');
  assert.ok(parseTemplateText(big, { maxBytes: 1024 * 1024 }));
});

test('unknown top-level sections, with Heat wording', () => {
  const e = kilnError(() => Template.from(parseTemplateText('heat_template_version: 2013-05-23\nresources: {}\noutput: {}\n')));
  assert.is(e.code, 'TEMPLATE_INVALID');
  assert.is(e.reason, 'The template section is invalid: output');
  // conditions only exist from 2016-10-14
  assert.is(kilnError(() => Template.from(parseTemplateText('heat_template_version: 2016-04-08\nconditions: {}\n'))).reason, 'The template section is invalid: conditions');
  assert.ok(Template.from(parseTemplateText('heat_template_version: 2016-10-14\nconditions: {}\n')));
});

test('resource and output keys are checked', () => {
  const t = (body: string) => () => Template.from(parseTemplateText(`heat_template_version: 2015-10-15\n${body}`));
  assert.is(kilnError(t('resources:\n  a: {type: X, propertes: {}}\n')).reason, '"propertes" is not a valid keyword inside a resource definition');
  assert.is(kilnError(t('resources:\n  a: {properties: {}}\n')).reason, 'Each resource must contain a type key.');
  assert.is(kilnError(t('resources:\n  a: {type: X, condition: c}\n')).reason, '"condition" is not a valid keyword inside a resource definition');
  assert.is(kilnError(t('resources:\n  a: text\n')).reason, `"resources" must contain a map of resource maps. Found a [<class 'str'>] instead`);
  assert.is(kilnError(t('outputs:\n  o: {description: d}\n')).reason, 'Each output must contain a value key.');
  assert.is(kilnError(t('outputs:\n  o: {value: 1, foo: 2}\n')).reason, '"foo" is not a valid keyword inside a output definition');
});

test('environments: sections checked, YAML errors typed', () => {
  assert.equal(parseEnvironmentText(''), {});
  assert.is(kilnError(() => parseEnvironmentText('paramters: {}\n')).reason, 'environment has wrong section "paramters"');
  assert.is(kilnError(() => parseEnvironmentText('- a\n')).code, 'ENVIRONMENT_INVALID');
  assert.is(kilnError(() => parseEnvironmentText('parameters: [a,\n')).code, 'ENVIRONMENT_INVALID');
  assert.ok(parseEnvironmentText('event_sinks: []\nparameter_defaults: {a: 1}\nencrypted_param_names: []\n'));
});

test('unhashable (map or list) keys are refused like PyYAML does', () => {
  const e = kilnError(() => parseTemplateText('heat_template_version: 2015-10-15\n? {a: 1}\n: x\n'));
  assert.is(e.code, 'YAML_SYNTAX');
  assert.match(e.message, 'found unhashable key');
});

test('indented templates (Python string literals) parse; JSON is tried first', () => {
  const t = parseTemplateText('\n    heat_template_version: 2015-04-30\n    resources:\n      a: {type: OS::Heat::None}\n');
  assert.is(t.heat_template_version, '2015-04-30');
});

test('data nested deeper than the limit is refused before any recursive walk', () => {
  const deep = `{"heat_template_version": "2015-10-15", "resources": {"a": {"type": "X", "properties": {"p": ${'['.repeat(5000)}${']'.repeat(5000)}}}}}`;
  const e = kilnError(() => Template.from(parseTemplateText(deep)));
  assert.is(e.code, 'TEMPLATE_INVALID');
  assert.match(e.message, 'nested more than 512 levels');
});

test('CFN-format templates read as their HOT equivalent', () => {
  const t = Template.from(
    parseTemplateText(`AWSTemplateFormatVersion: 2010-09-09
Parameters:
  size: {Type: Number, Default: 2, MinValue: 1, MaxValue: 5, ConstraintDescription: one to five}
  flag: {Type: String, Default: a, AllowedValues: [a, b]}
Conditions:
  IsA: {"Fn::Equals": [{Ref: flag}, a]}
  NotA: {"Fn::Not": [IsA]}
Resources:
  v: {Type: OS::Heat::Value, Properties: {value: {"Fn::Join": ["-", [{Ref: "AWS::StackName"}, {Ref: size}]]}}, Condition: IsA}
  w: {Type: OS::Heat::Value, DependsOn: v, Properties: {value: {"Fn::If": [NotA, x, {"Fn::GetAtt": [v, value]}]}}}
Outputs:
  out: {Value: {"Fn::GetAtt": [w, value]}}
  ref: {Value: {Ref: v}}
`),
  );
  assert.is(t.version, '2016-10-14');
  assert.equal(t.paramSchemas.get('size')!.constraints.map((c) => c.kind), ['range']);
  const e = kilnError(() => Template.from(parseTemplateText('AWSTemplateFormatVersion: 2011-01-01\nResources: {}\n')));
  assert.is(e.code, 'TEMPLATE_VERSION');
  assert.is(kilnError(() => Template.from(parseTemplateText('HeatTemplateFormatVersion: "2012-12-12"\nOutput: {}\n'))).reason, 'The template section is invalid: Output');
});

test.run();
