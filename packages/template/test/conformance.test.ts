// Walks the HOT conformance corpus (../shared/conformance/hot, MANIFEST.tsv): every template
// validates, or fails with the typed error Heat gives it; the template-validate responses the
// tempest tests assert are reproduced exactly.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { KilnError, type ErrorCode } from '@kiln/core';
import { buildStack, builtinTypeRegistry, loadTemplate, parseEnvironmentText, parseTemplateText, previewStack, validateResponse, type EnvironmentInput } from '../src/index.js';
import { CORPUS } from './helpers.js';

interface Row {
  file: string;
  version: string;
  needsCloud: string;
  notes: string;
}

const rows: Row[] = readFileSync(join(CORPUS, 'MANIFEST.tsv'), 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .map((line) => {
    const cols = line.split('\t');
    return { file: cols[0]!, version: cols[3]!, needsCloud: cols[6]!, notes: cols[7] ?? '' };
  });
const templates = rows.filter((r) => !r.version.startsWith('('));

/** Templates that do not validate as written, with the error Heat gives them. */
const EXPECTED_FAILURES: Record<string, { code: ErrorCode; message: string; why: string }> = {
  'heat-unit/test_validate.test_template_circular_reference.yaml': {
    code: 'DEPENDENCY_CYCLE',
    message: 'Circular Dependency Found: res1 -> res3 -> res2 -> res1',
    why: 'Heat raises CircularDependencyException',
  },
  'heat-unit/test_validate.test_template_invalid_outputs.yaml': {
    code: 'FUNCTION_INVALID',
    message: 'outputs.string.value.get_attr: Arguments to "get_attr" must be of the form [resource_name, attribute, (path), ...]',
    why: 'the exact message test_validate asserts',
  },
  'inline/heat_integrationtests/test_resource_group/ResourceGroupTestNullParams.template.yaml': {
    code: 'TEMPLATE_INVALID',
    message: 'parameters.param: Invalid type (empty)',
    why: '`empty` is a placeholder the test replaces with a real type',
  },
  'inline/heat_integrationtests/test_resource_group/ResourceGroupTestNullParams.nested_template_file.yaml': {
    code: 'TEMPLATE_INVALID',
    message: 'parameters.param: Invalid type (empty)',
    why: '`empty` is a placeholder the test replaces with a real type',
  },
  'inline/heat_integrationtests/test_conditions/nested_output_tmpl.yaml': {
    code: 'PARAM_MISSING',
    message: 'conditions.cd1.equals[0].get_param: The Parameter (env_type) was not provided.',
    why: 'a nested template: its conditions need env_type, which only the parent passes',
  },
};

/** Python placeholders the tests substitute before use. */
/** Scenario pairings the manifest notes do not record (the test swaps `the.yaml` per scenario). */
const TRU = 'inline/heat_integrationtests/test_template_resource/TemplateResourceUpdateTest';
const FILE_PAIRS: Record<string, Record<string, string>> = {
  [`${TRU}.main_template_change_prop.yaml`]: { 'the.yaml': `${TRU}.prop_change_tmpl.yaml` },
  [`${TRU}.main_template_add_prop.yaml`]: { 'the.yaml': `${TRU}.prop_add_tmpl.yaml` },
  [`${TRU}.main_template_remove_prop.yaml`]: { 'the.yaml': `${TRU}.prop_remove_tmpl.yaml` },
};

const SUBSTITUTIONS: Record<string, [string, string][]> = {
  'inline/heat_tempest_plugin/test_remote_stack/RemoteStackTest.template.yaml': [['$MULTI_CLOUD_PROPERTIES\n', '']],
};

/** The tests a manifest row is used by ("used by: a, b; ..."). */
function usedBy(row: Row): Set<string> {
  const m = /used by: ([^;[]+)/.exec(row.notes);
  return new Set(m ? m[1]!.split(',').map((s) => s.trim()).filter(Boolean) : []);
}

/**
 * `files[...]` keys the tests upload alongside this template (same module, a shared test). A key
 * several files are uploaded under (scenario variants) is left out: which one pairs with this
 * template is not recorded, so that reference stays unchecked.
 */
function filesFor(row: Row): Record<string, string> {
  const candidates = new Map<string, Set<string>>();
  const dir = dirname(row.file);
  const tests = usedBy(row);
  for (const other of rows) {
    if (dirname(other.file) !== dir || ![...usedBy(other)].some((t) => tests.has(t))) continue;
    for (const m of other.notes.matchAll(/files\[(?:'|")([^'"]+)(?:'|")\]/g)) {
      const set = candidates.get(m[1]!) ?? new Set<string>();
      set.add(readFileSync(join(CORPUS, other.file), 'utf8'));
      candidates.set(m[1]!, set);
    }
  }
  const files: Record<string, string> = {};
  for (const [key, set] of candidates) if (set.size === 1) files[key] = [...set][0]!;
  for (const [key, file] of Object.entries(FILE_PAIRS[row.file] ?? {})) files[key] = readFileSync(join(CORPUS, file), 'utf8');
  return files;
}

function load(row: Row): { template: Record<string, unknown>; files: Record<string, string> } {
  const subs = SUBSTITUTIONS[row.file];
  if (!subs) return loadTemplate(join(CORPUS, row.file), filesFor(row), { missingFiles: 'keep' });
  let text = readFileSync(join(CORPUS, row.file), 'utf8');
  for (const [from, to] of subs) text = text.split(from).join(to);
  const template = parseTemplateText(text);
  return { template, files: filesFor(row) };
}

function attempt(row: Row): KilnError | undefined {
  try {
    const { template, files } = load(row);
    const stack = buildStack({ template, environment: {}, files }, { validateValues: false, types: builtinTypeRegistry() });
    validateResponse(stack, { showNested: true });
    return undefined;
  } catch (e) {
    if (e instanceof KilnError) return e;
    throw new Error(`${row.file}: untyped failure: ${(e as Error).stack}`);
  }
}

test('the manifest lists the corpus', () => {
  assert.ok(templates.length >= 250, `only ${templates.length} templates`);
});

test('every HOT template validates or fails with the error Heat gives it', () => {
  const unexpected: string[] = [];
  let validated = 0;
  for (const row of templates) {
    const err = attempt(row);
    const expected = EXPECTED_FAILURES[row.file];
    if (expected) {
      if (!err) unexpected.push(`${row.file}: validated, expected ${expected.code} (${expected.why})`);
      else if (err.code !== expected.code || (err.message !== expected.message && err.reason !== expected.message)) unexpected.push(`${row.file}: got ${err.code} ${err.message}, expected ${expected.code} ${expected.message}`);
      continue;
    }
    if (err) unexpected.push(`${row.file}: ${err.code} ${err.message}`);
    else validated++;
  }
  assert.equal(unexpected, []);
  assert.ok(validated >= 245, `${validated} validated`);
});

test('templates that need no cloud preview without untyped errors', () => {
  let previewed = 0;
  for (const row of templates) {
    if (row.needsCloud !== 'no' || EXPECTED_FAILURES[row.file]) continue;
    const { template, files } = load(row);
    try {
      previewStack(buildStack({ template, environment: {}, files }, { types: builtinTypeRegistry(), identity: { stackName: 'conformance' } }));
      previewed++;
    } catch (e) {
      // Missing parameter values, or real-world defaults that are placeholders, may stop a
      // preview; the failure must still be typed.
      if (!(e instanceof KilnError)) throw new Error(`${row.file}: untyped failure: ${(e as Error).stack}`);
    }
  }
  assert.ok(previewed > 100, `${previewed} previewed`);
});

// The template-validate responses the tempest tests assert, with the inputs those tests send.
const TV = 'inline/heat_tempest_plugin/test_template_validate/StackTemplateValidateTest';
const UNI = 'inline/heat_tempest_plugin/test_unicode_template/StackUnicodeTemplateTest';
const read = (f: string) => readFileSync(join(CORPUS, f), 'utf8');
const VALIDATE_CASES: { expected: string; template: string; edit?: [string, string]; env?: EnvironmentInput; files?: Record<string, string>; showNested?: boolean }[] = [
  { expected: `${TV}.test_template_validate_basic.expected.json`, template: `${TV}.random_template.yaml` },
  { expected: `${TV}.test_template_validate_basic_required_param.expected.json`, template: `${TV}.random_template.yaml`, edit: ['default: 10', ''] },
  { expected: `${TV}.test_template_validate_override_default.expected.json`, template: `${TV}.random_template.yaml`, env: { parameters: { aparam: 5 } } },
  { expected: `${TV}.test_template_validate_override_none.expected.json`, template: `${TV}.random_template.yaml`, env: parseEnvironmentText(read(`${TV}.test_template_validate_override_none.env.yaml`)) },
  { expected: `${TV}.test_template_validate_parameter_groups.expected.json`, template: `${TV}.random_template_groups.yaml` },
  { expected: `${TV}.test_template_validate_nested_off.expected.json`, template: `${TV}.parent_template.yaml`, files: { 'mynested.yaml': read(`${TV}.random_template.yaml`) } },
  { expected: `${TV}.test_template_validate_nested_on.expected.json`, template: `${TV}.parent_template_noprop.yaml`, files: { 'mynested.yaml': read(`${TV}.random_template.yaml`) }, showNested: true },
  { expected: `${UNI}.test_template_validate_basic.expected.json`, template: `${UNI}.random_template.yaml` },
  { expected: `${UNI}.test_template_validate_override_default.expected.json`, template: `${UNI}.random_template.yaml`, env: { parameters: { 参数: 5 } } },
  { expected: 'inline/heat_integrationtests/test_resource_group/ResourceGroupTest.test_validation.expected.json', template: 'inline/heat_integrationtests/test_resource_group/ResourceGroupTest.test_validation.resource_group.yaml' },
];

test('all ten template-validate responses in the corpus are reproduced exactly', () => {
  const expectedFiles = rows.filter((r) => r.version === '(expected API output)').map((r) => r.file).sort();
  assert.equal(VALIDATE_CASES.map((c) => c.expected).sort(), expectedFiles);
  for (const c of VALIDATE_CASES) {
    let text = read(c.template);
    if (c.edit) text = text.split(c.edit[0]).join(c.edit[1]);
    const stack = buildStack({ template: parseTemplateText(text), environment: c.env ?? {}, files: c.files ?? {} }, { validateValues: false, types: builtinTypeRegistry() });
    assert.equal(validateResponse(stack, { showNested: c.showNested }), JSON.parse(read(c.expected)), c.expected);
  }
});

test('nested templates beside their parents are read like heatclient (file URLs in files)', () => {
  const { template, files } = loadTemplate(join(CORPUS, 'heat-templates/resource_group/resource_group_index_lookup.yaml'));
  const url = pathToFileURL(join(CORPUS, 'heat-templates/resource_group/random.yaml')).href;
  assert.ok(files[url]);
  const stack = buildStack({ template, environment: {}, files });
  const group = stack.group('random_group', stack.resolveResource('random_group').properties)!;
  assert.is(group.memberType, url);
  assert.equal(group.member(2).properties.index, '2');
});

test.run();
