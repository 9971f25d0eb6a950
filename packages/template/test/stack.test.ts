import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { builtinTypeRegistry, previewStack, ResourceTypeRegistry, type ResourceDataSource } from '../src/index.js';
import { kilnError, stackOf } from './helpers.js';

test('implicit and explicit dependencies; order and levels', () => {
  const s = stackOf(`heat_template_version: 2015-10-15
resources:
  c:
    type: OS::Heat::None
    properties: {x: {get_attr: [b, value]}}
  b:
    type: OS::Heat::None
    properties: {x: {get_resource: a}}
  a: {type: OS::Heat::None}
  d:
    type: OS::Heat::None
    depends_on: [a, c]
    metadata: {m: {get_resource: b}}
`);
  assert.equal(s.graph.order(), ['a', 'b', 'c', 'd']);
  assert.equal(s.graph.levels(), [['a'], ['b'], ['c'], ['d']]);
  assert.equal([...s.resources.get('d')!.requires].sort(), ['a', 'b', 'c']);
  assert.equal(s.graph.requiredBy('a').sort(), ['b', 'd']);
});

test('a depends_on cycle names the whole cycle (heat-unit circular reference)', () => {
  const e = kilnError(() =>
    stackOf(`heat_template_version: 2013-05-23
resources:
  res1: {type: OS::Heat::None, depends_on: res3}
  res2: {type: OS::Heat::None, depends_on: res1}
  res3: {type: OS::Heat::None, depends_on: res2}
`),
  );
  assert.is(e.code, 'DEPENDENCY_CYCLE');
  assert.is(e.reason, 'Circular Dependency Found: res1 -> res3 -> res2 -> res1');
});

test('a self reference is a cycle', () => {
  const e = kilnError(() => stackOf('heat_template_version: 2013-05-23\nresources:\n  a: {type: OS::Heat::None, properties: {x: {get_resource: a}}}\n'));
  assert.is(e.reason, 'Circular Dependency Found: a -> a');
});

test('unknown references: Heat message and a path', () => {
  const e = kilnError(() => stackOf('heat_template_version: 2013-05-23\nresources:\n  web:\n    type: OS::Heat::None\n    properties:\n      networks: [{port: {get_resource: prt}}]\n'));
  assert.is(e.code, 'REFERENCE_UNKNOWN');
  assert.match(e.reason, /^The specified reference "prt" \(in resources\.web\.properties\.networks\[0\]\.port\) is incorrect\.$/);
  assert.match(e.path ?? '', /^resources\.web\.properties\.networks\[0\]\.port/);
  const d = kilnError(() => stackOf('heat_template_version: 2013-05-23\nresources:\n  a: {type: OS::Heat::None, depends_on: nope}\n'));
  assert.is(d.reason, 'The specified reference "nope" (in a) is incorrect.');
  const o = kilnError(() => stackOf('heat_template_version: 2013-05-23\nresources: {}\noutputs:\n  o: {value: {get_attr: [ghost, x]}}\n'));
  assert.is(o.code, 'REFERENCE_UNKNOWN');
});

test('false conditions remove resources and drop depends_on edges to them (heat-unit depends_condition)', () => {
  const s = stackOf(`heat_template_version: 2016-10-14
resources:
  one: {type: OS::Heat::None}
  two: {type: OS::Heat::None, condition: False}
  three: {type: OS::Heat::None, depends_on: two}
`);
  assert.equal([...s.resources.keys()], ['one', 'three']);
  assert.equal(s.resources.get('three')!.dependsOn, []);
  assert.ok(s.disabled.has('two'));
});

test('conditions from parameters; output condition false gives null', () => {
  const t = `heat_template_version: 2016-10-14
parameters:
  env: {type: string, default: test}
conditions:
  prod: {equals: [{get_param: env}, prod]}
resources:
  big: {type: OS::Heat::Value, condition: prod, properties: {value: big}}
  small: {type: OS::Heat::Value, properties: {value: small}}
outputs:
  big_out: {value: {get_attr: [big, value]}, condition: prod}
  small_out: {value: {get_attr: [small, value]}}
`;
  const test1 = previewStack(stackOf(t));
  assert.equal(Object.keys(test1.resources), ['small']);
  assert.equal(test1.outputs, { big_out: null, small_out: 'small' });
  const prod = previewStack(stackOf(t, { params: { env: 'prod' } }));
  assert.equal(Object.keys(prod.resources), ['big', 'small']);
  assert.equal(prod.outputs, { big_out: 'big', small_out: 'small' });
});

test('deletion_policy: names, 2016-10-14 lowercase aliases, functions, invalid ones', () => {
  const policies = (v: string, dp: string) => stackOf(`heat_template_version: ${v}\nparameters:\n  p: {type: string, default: Retain}\nresources:\n  a: {type: OS::Heat::None, deletion_policy: ${dp}}\n`).resources.get('a')!.deletionPolicy;
  assert.is(policies('2013-05-23', 'Retain'), 'Retain');
  assert.is(policies('2016-10-14', 'snapshot'), 'Snapshot');
  assert.is(policies('2016-10-14', '{get_param: p}'), 'Retain');
  assert.is(kilnError(() => policies('2015-10-15', 'delete')).reason, 'Invalid deletion policy "delete"');
  assert.is(kilnError(() => policies('2016-10-14', 'Keep')).reason, 'Invalid deletion policy "Keep"');
  assert.is(stackOf('heat_template_version: 2013-05-23\nresources:\n  a: {type: OS::Heat::None}\n').resources.get('a')!.deletionPolicy, 'Delete');
});

test('resource field types, with Heat wording', () => {
  const e = (body: string) => kilnError(() => stackOf(`heat_template_version: 2016-10-14\nresources:\n  a: ${body}\n`)).reason;
  assert.is(e('{type: [x]}'), 'Resource a type type must be string');
  assert.is(e('{type: X, properties: [1]}'), 'Resource a properties type must be object');
  assert.is(e('{type: X, metadata: 3}'), 'Resource a metadata type must be object');
  assert.is(e('{type: X, depends_on: {a: 1}}'), 'Resource a depends_on type must be list or string');
  assert.is(e('{type: X, depends_on: [1]}'), 'Resource a depends_on must be a list of strings');
  assert.is(e('{type: X, update_policy: x}'), 'Resource a update_policy type must be object');
  assert.is(e('{type: X, external_id: [1]}'), 'Resource a external_id type must be string');
});

test('the engine data source fills references and attributes; the rest is reported pending', () => {
  const s = stackOf(`heat_template_version: 2015-10-15
parameters:
  size: {type: number, default: 2}
resources:
  server: {type: OS::Nova::Server}
  port:
    type: OS::Neutron::Port
    properties:
      server: {get_resource: server}
      ip: {get_attr: [server, networks, private, 0]}
      size: {get_param: size}
outputs:
  ip: {value: {get_attr: [port, fixed_ips]}}
`);
  const none = s.resolveResource('port');
  assert.equal(none.pending, ['get_resource: server', 'get_attr: [server, networks, private, 0]']);
  const deployed: ResourceDataSource = {
    ref: (n) => `${n}-id`,
    attr: (n, a, path) => (n === 'server' && a === 'networks' ? [{ private: ['10.0.0.5'] }][0]![path[0] as 'private']![path[1] as number] : null),
    allAttrs: () => ({}),
  };
  const r = s.resolveResource('port', deployed);
  assert.equal(r.properties, { server: 'server-id', ip: '10.0.0.5', size: 2 });
  assert.equal(r.pending, []);
});

test('ResourceGroup members share one definition, resolved on demand with %index% / index_var', () => {
  const s = stackOf(`heat_template_version: 2015-04-30
resources:
  g:
    type: OS::Heat::ResourceGroup
    properties:
      count: 1000000
      resource_def:
        type: OS::Heat::Value
        properties:
          value: node-%index%
          list: [a-%index%, {k: "%index%"}]
  h:
    type: OS::Heat::ResourceGroup
    properties:
      count: 3
      index_var: $i
      resource_def: {type: OS::Heat::None, properties: {name: srv-$i}}
`);
  const g = s.group('g', s.resolveResource('g').properties)!;
  assert.is(g.count, 1000000);
  assert.equal(g.member(999999).properties, { value: 'node-999999', list: ['a-999999', { k: '999999' }] });
  assert.is(g.member(7).name, '7');
  assert.is(kilnError(() => g.member(1000000)).code, 'RESOURCE_NOT_FOUND');
  const h = s.group('h', s.resolveResource('h').properties)!;
  assert.equal([...h.members()].map((m) => m.properties.name), ['srv-0', 'srv-1', 'srv-2']);
});

test('preview: Value/TestResource/None attributes resolve, group member attributes, the rest pending', () => {
  const p = previewStack(
    stackOf(`heat_template_version: 2015-10-15
resources:
  v: {type: OS::Heat::Value, properties: {value: {a: [1, 2]}, type: json}}
  n: {type: OS::Heat::None, properties: {anything: 1}}
  t: {type: OS::Heat::TestResource, properties: {value: tv}}
  r: {type: OS::Heat::RandomString}
  g:
    type: OS::Heat::ResourceGroup
    properties:
      count: 2
      resource_def: {type: OS::Heat::Value, properties: {value: m%index%}}
outputs:
  whole: {value: {get_attr: [v, value]}}
  path: {value: {get_attr: [v, value, a, 1]}}
  none: {value: {get_attr: [n, whatever]}}
  test: {value: {get_attr: [t, output]}}
  random: {value: {get_attr: [r, value]}}
  ref: {value: {get_resource: r}}
  members: {value: {get_attr: [g, value]}}
  member1: {value: {get_attr: [g, resource.1, value]}}
  all: {value: {get_attr: [v]}}
`),
  );
  assert.equal(JSON.parse(JSON.stringify(p.outputs)), {
    whole: { a: [1, 2] },
    path: 2,
    none: null,
    test: 'tv',
    random: { pending: 'get_attr: [r, value]' },
    ref: { pending: 'get_resource: r' },
    members: ['m0', 'm1'],
    member1: 'm1',
    all: { value: { a: [1, 2] } },
  });
  assert.equal(p.resources.g!.members, [
    { type: 'OS::Heat::Value', properties: { value: 'm0' } },
    { type: 'OS::Heat::Value', properties: { value: 'm1' } },
  ]);
});

test('registered schemas: unknown and missing properties, unknown attributes; authoritative registries refuse unknown types', () => {
  const types = builtinTypeRegistry();
  const e = kilnError(() => stackOf('heat_template_version: 2015-10-15\nresources:\n  v: {type: OS::Heat::Value, properties: {value: 1, colour: red}}\n', { types }));
  assert.is(e.code, 'PROPERTY_INVALID');
  assert.is(e.reason, 'Unknown Property colour');
  assert.is(e.path, 'resources.v.properties');
  assert.is(kilnError(() => stackOf('heat_template_version: 2015-10-15\nresources:\n  v: {type: OS::Heat::Value}\n', { types })).reason, 'Property value not assigned');
  // OS::Heat::None takes anything
  assert.ok(stackOf('heat_template_version: 2015-10-15\nresources:\n  n: {type: OS::Heat::None, properties: {ignored: 1}}\n', { types }));
  assert.ok(stackOf('heat_template_version: 2015-10-15\nresources:\n  s: {type: OS::Nova::Server}\n', { types }));
  const strict = new ResourceTypeRegistry(true);
  const u = kilnError(() => stackOf('heat_template_version: 2015-10-15\nresources:\n  s: {type: OS::Nova::Server}\n', { types: strict }));
  assert.is(u.code, 'RESOURCE_TYPE_UNKNOWN');
  assert.is(u.reason, 'The Resource Type (OS::Nova::Server) could not be found.');
  // mapped by the registry to a registered type: accepted
  assert.ok(stackOf('heat_template_version: 2015-10-15\nresources:\n  s: {type: OS::Nova::Server}\n', { types: strict.register('OS::Heat::None', {}), env: { resource_registry: { 'OS::Nova::Server': 'OS::Heat::None' } } }));
});

test('template resources: properties checked against the nested template parameters', () => {
  const files = { 'nested.yaml': 'heat_template_version: 2015-10-15\nparameters:\n  size: {type: number, default: 1}\nresources: {}\noutputs:\n  o: {value: {get_param: size}}\n' };
  assert.ok(stackOf('heat_template_version: 2015-10-15\nresources:\n  n: {type: nested.yaml, properties: {size: 3}}\n', { files }));
  const e = kilnError(() => stackOf('heat_template_version: 2015-10-15\nresources:\n  n: {type: nested.yaml, properties: {colour: red}}\n', { files }));
  assert.is(e.reason, 'Unknown Property colour');
  const s = stackOf('heat_template_version: 2015-10-15\nresources:\n  n: {type: nested.yaml, properties: {size: 3}}\n', { files });
  assert.equal(s.nestedStack('n', { size: 3 })!.resolveOutputs(), { o: 3 });
});

test('get_attr of an attribute a registered type does not have: InvalidTemplateAttribute wording', () => {
  const types = builtinTypeRegistry();
  const e = kilnError(() => stackOf('heat_template_version: 2015-10-15\nresources:\n  v: {type: OS::Heat::Value, properties: {value: 1}}\noutputs:\n  o: {value: {get_attr: [v, valu]}}\n', { types }));
  assert.is(e.code, 'REFERENCE_UNKNOWN');
  assert.is(e.reason, 'The Referenced Attribute (v valu) is incorrect.');
  assert.is(e.path, 'outputs.o.value.get_attr');
  // None has every attribute; unregistered types are not checked
  assert.ok(stackOf('heat_template_version: 2015-10-15\nresources:\n  n: {type: OS::Heat::None}\n  s: {type: OS::Nova::Server}\noutputs:\n  a: {value: {get_attr: [n, x]}}\n  b: {value: {get_attr: [s, y]}}\n', { types }));
});

test('preview does not expand groups above the member limit', () => {
  const s = stackOf(`heat_template_version: 2015-10-15
resources:
  g:
    type: OS::Heat::ResourceGroup
    properties: {count: 50, resource_def: {type: OS::Heat::Value, properties: {value: v%index%}}}
outputs:
  all: {value: {get_attr: [g, value]}}
  one: {value: {get_attr: [g, resource.49, value]}}
`);
  const p = previewStack(s, { maxGroupMembers: 10 });
  assert.is(p.resources.g!.members, undefined);
  assert.is(p.resources.g!.member_count, 50);
  assert.equal(JSON.parse(JSON.stringify(p.outputs)), { all: { pending: 'get_attr: [g, value]' }, one: 'v49' });
});

test('template-validate mode: a default of the wrong type only fails when read', () => {
  const t = 'heat_template_version: 2015-10-15\nparameters:\n  n: {type: number, default: abc}\nresources: {}\n';
  const s = stackOf(t, { validateValues: false });
  const e = kilnError(() => s.parameters.get('n'));
  assert.is(e.code, 'PARAM_TYPE');
  assert.match(e.reason, "Parameter 'n' is invalid");
  assert.is(kilnError(() => stackOf(t)).code, 'PARAM_TYPE');
});

test('CFN templates resolve like HOT (Ref, Fn::GetAtt, Fn::If, conditions)', () => {
  const t = `HeatTemplateFormatVersion: '2012-12-12'
Parameters:
  flag: {Type: String, Default: a}
Conditions:
  IsA: {"Fn::Equals": [{Ref: flag}, a]}
Resources:
  v: {Type: OS::Heat::Value, Properties: {value: {"Fn::Join": ["-", [{Ref: "AWS::StackName"}, {Ref: flag}]]}}}
  w: {Type: OS::Heat::Value, Properties: {value: {"Fn::If": [IsA, {"Fn::GetAtt": [v, value]}, other]}}}
Outputs:
  out: {Value: {"Fn::GetAtt": [w, value]}}
  ref: {Value: {Ref: v}}
`;
  const p = previewStack(stackOf(t, { identity: { stackName: 'st' } }));
  assert.equal(JSON.parse(JSON.stringify(p.outputs)), { out: 'st-a', ref: { pending: 'get_resource: v' } });
  const q = previewStack(stackOf(t, { identity: { stackName: 'st' }, params: { flag: 'b' } }));
  assert.is(q.outputs.out, 'other');
});

test('group members of a template type: each member is a nested stack built on demand', () => {
  const files = { 'member.yaml': 'heat_template_version: 2015-10-15\nparameters:\n  index: {type: number}\nresources: {}\noutputs:\n  double: {value: {get_param: index}}\n' };
  const s = stackOf(`heat_template_version: 2015-10-15
resources:
  g:
    type: OS::Heat::ResourceGroup
    properties: {count: 1000000, resource_def: {type: member.yaml, properties: {index: '%index%'}}}
`, { files });
  const g = s.group('g', s.resolveResource('g').properties)!;
  assert.equal(g.memberStack(123456)!.resolveOutputs(), { double: 123456 });
  assert.is(g.memberStack(0)!.parameters.get('index'), 0);
});

test('external resources (external_id) depend on nothing; explicit depends_on is refused', () => {
  const s = stackOf('heat_template_version: 2016-10-14\nresources:\n  a: {type: OS::Heat::None}\n  ext: {type: OS::Nova::Server, external_id: abc-123, properties: {x: {get_resource: a}}}\n');
  assert.is(s.resources.get('ext')!.externalId, 'abc-123');
  assert.equal(s.resources.get('ext')!.requires, []);
  const e = kilnError(() => stackOf('heat_template_version: 2016-10-14\nresources:\n  a: {type: OS::Heat::None}\n  ext: {type: OS::Nova::Server, external_id: abc, depends_on: a}\n'));
  assert.is(e.reason, 'Invalid dependency with external OS::Nova::Server resource: abc');
});

test('preview: template resources and template-typed group members expose their nested outputs', () => {
  const files = { 'n.yaml': 'heat_template_version: 2015-10-15\nparameters:\n  x: {type: string}\nresources:\n  v: {type: OS::Heat::Value, properties: {value: {list_join: [":", [in, {get_param: x}]]}}}\noutputs:\n  out: {value: {get_attr: [v, value]}}\n  deep: {value: {a: [1, {b: 2}]}}\n' };
  const p = previewStack(
    stackOf(`heat_template_version: 2015-10-15
resources:
  n: {type: n.yaml, properties: {x: one}}
  g:
    type: OS::Heat::ResourceGroup
    properties: {count: 2, resource_def: {type: n.yaml, properties: {x: m%index%}}}
  r: {type: OS::Heat::RandomString}
  unknown: {type: n.yaml, properties: {x: {get_attr: [r, value]}}}
outputs:
  nested: {value: {get_attr: [n, out]}}
  nested_path: {value: {get_attr: [n, deep, a, 1, b]}}
  members: {value: {get_attr: [g, out]}}
  member_paths: {value: {get_attr: [g, deep, a, 0]}}
  by_member: {value: {get_attr: [g, attributes, out]}}
  pending: {value: {get_attr: [unknown, out]}}
`, { files }),
  );
  assert.equal(JSON.parse(JSON.stringify(p.outputs)), {
    nested: 'in:one',
    nested_path: 2,
    members: ['in:m0', 'in:m1'],
    member_paths: [1, 1],
    by_member: { 0: 'in:m0', 1: 'in:m1' },
    pending: { pending: 'get_attr: [unknown, out]' },
  });
});

test.run();
