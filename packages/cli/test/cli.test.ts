import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const MAIN = join(ROOT, 'packages', 'cli', 'dist', 'src', 'main.js');
const CORPUS = join(ROOT, '..', 'shared', 'conformance', 'hot');

function kiln(...args: string[]) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, KILN_LOG_LEVEL: 'warn' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const dir = mkdtempSync(join(tmpdir(), 'kiln-cli-'));
function file(name: string, content: string): string {
  const p = join(dir, name);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, content);
  return p;
}

test('validate --json prints the template-validate response', () => {
  const r = kiln('validate', '-t', join(CORPUS, 'inline/heat_tempest_plugin/test_template_validate/StackTemplateValidateTest.random_template.yaml'), '--json');
  assert.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.is(out.Description, 'the stack description');
  assert.equal(out.Parameters.aparam, { Type: 'Number', Description: 'the param description', NoEcho: 'false', Label: 'aparam', Default: 10 });
});

test('validate with -e and -P shows the environment and the Value', () => {
  const env = file('env.yaml', 'resource_registry:\n  OS::Heat::RandomString: OS::Heat::None\n');
  const r = kiln('validate', '-t', join(CORPUS, 'inline/heat_tempest_plugin/test_template_validate/StackTemplateValidateTest.random_template.yaml'), '-e', env, '-P', 'aparam=5', '--json');
  assert.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.is(out.Parameters.aparam.Value, '5');
  assert.equal(out.Environment.resource_registry, { 'OS::Heat::RandomString': 'OS::Heat::None', resources: {} });
});

test('validate of an invalid template exits 1 with the typed error', () => {
  const r = kiln('validate', '-t', join(CORPUS, 'heat-unit/test_validate.test_template_circular_reference.yaml'), '--json');
  assert.is(r.code, 1);
  const err = JSON.parse(r.stderr);
  assert.is(err.code, 'DEPENDENCY_CYCLE');
  assert.match(err.message, 'Circular Dependency Found: res1 -> res3 -> res2 -> res1');
  const plain = kiln('validate', '-t', join(CORPUS, 'heat-unit/test_validate.test_template_circular_reference.yaml'));
  assert.is(plain.code, 1);
  assert.match(plain.stderr, /^Error \[DEPENDENCY_CYCLE\]/);
});

test('preview resolves values, group members and nested files; pending references are marked', () => {
  file('nested/member.yaml', 'heat_template_version: 2015-10-15\nparameters:\n  idx: {type: string}\nresources: {}\n');
  file('script.sh', 'echo hi\n');
  const t = file(
    'main.yaml',
    `heat_template_version: 2016-10-14
parameters:
  greeting: {type: string, default: hello}
resources:
  v: {type: OS::Heat::Value, properties: {value: {get_param: greeting}}}
  r: {type: OS::Heat::RandomString}
  g:
    type: OS::Heat::ResourceGroup
    properties:
      count: 2
      resource_def: {type: OS::Heat::Value, properties: {value: {list_join: ['-', [{get_attr: [v, value]}, '%index%']]}}}
  n: {type: nested/member.yaml, properties: {idx: '1'}}
  s: {type: OS::Heat::None, properties: {script: {get_file: script.sh}, other: {get_attr: [r, value]}}}
outputs:
  hello: {value: {get_attr: [v, value]}}
  members: {value: {get_attr: [g, value]}}
  random: {value: {get_attr: [r, value]}}
`,
  );
  const r = kiln('preview', '-t', t, '-P', 'greeting=hi', '--json');
  assert.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.outputs, { hello: 'hi', members: ['hi-0', 'hi-1'], random: { pending: 'get_attr: [r, value]' } });
  assert.equal(out.resources.s.properties, { script: 'echo hi\n', other: { pending: 'get_attr: [r, value]' } });
  assert.equal(out.resources.g.members[1], { type: 'OS::Heat::Value', properties: { value: 'hi-1' } });
  assert.match(out.resources.n.type, /^file:\/\/.*\/nested\/member\.yaml$/);
  assert.equal(Object.keys(out.resources), ['v', 'r', 'g', 'n', 's']);
});

test('preview of an invalid template: exit 1, typed error as JSON on stderr', () => {
  const t = file('bad.yaml', 'heat_template_version: 2015-10-15\nresources:\n  a: {type: OS::Heat::None, properties: {x: {get_resource: nope}}}\n');
  const r = kiln('preview', '-t', t, '--json');
  assert.is(r.code, 1);
  const err = JSON.parse(r.stderr);
  assert.is(err.code, 'REFERENCE_UNKNOWN');
  assert.is(err.path, 'resources.a.properties.x.get_resource');
  const missing = kiln('preview', '-t', t.replace('bad', 'absent'), '--json');
  assert.is(missing.code, 1);
  assert.is(JSON.parse(missing.stderr).code, 'FILE_MISSING');
});

test('missing parameters fail preview but not validate', () => {
  const t = file('needs.yaml', 'heat_template_version: 2015-10-15\nparameters:\n  p: {type: string}\n');
  assert.is(kiln('validate', '-t', t, '--json').code, 0);
  const r = kiln('preview', '-t', t, '--json');
  assert.is(r.code, 1);
  assert.is(JSON.parse(r.stderr).code, 'PARAM_MISSING');
  assert.is(JSON.parse(kiln('preview', '-t', t, '-P', 'bad').stderr).code, 'REQUEST_INVALID');
});

test('usage: unknown commands and missing options', () => {
  assert.is(kiln('frobnicate').code, 2);
  assert.is(kiln('--help').code, 0);
  const r = kiln('validate', '--json');
  assert.is(r.code, 1);
  assert.is(JSON.parse(r.stderr).code, 'REQUEST_INVALID');
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
