// Mutated corpus templates (fast-check): whatever the input, every failure of parsing,
// validation, resolution and preview is a KilnError, never an untyped exception.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { KilnError } from '@kiln/core';
import { buildStack, builtinTypeRegistry, parseTemplateText, previewStack, validateResponse, type EnvironmentInput } from '../src/index.js';
import { CORPUS } from './helpers.js';

const SEED = Number(process.env.KILN_FUZZ_SEED ?? 20261128);

const files = readFileSync(join(CORPUS, 'MANIFEST.tsv'), 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .map((l) => l.split('\t'))
  .filter((c) => !c[3]!.startsWith('('))
  .map((c) => c[0]!);
const texts = files.map((f) => readFileSync(join(CORPUS, f), 'utf8'));
const parsed = texts.map((t) => {
  try {
    return parseTemplateText(t);
  } catch {
    return undefined;
  }
}).filter((t): t is Record<string, unknown> => t !== undefined);

/** The whole pipeline a request goes through; returns the typed error, if any. */
/** Runs the whole pipeline; returns the typed error it ended with, if any (an untyped one fails the test). */
function pipeline(input: string | Record<string, unknown>, env: EnvironmentInput = {}, params: Record<string, unknown> = {}): KilnError | undefined {
  try {
    const template = typeof input === 'string' ? parseTemplateText(input) : input;
    for (const validateValues of [false, true]) {
      const stack = buildStack({ template, environment: env, files: {} }, { validateValues, params, types: builtinTypeRegistry(), identity: { stackName: 'fuzz' } });
      if (validateValues) previewStack(stack);
      else validateResponse(stack, { showNested: true });
    }
  } catch (e) {
    if (!(e instanceof KilnError)) throw new Error(`untyped ${(e as Error)?.constructor?.name}: ${(e as Error)?.stack ?? String(e)}`);
    return e;
  }
  return undefined;
}

type Path = (string | number)[];

/** Every path into a value (capped, so huge templates stay cheap). */
function paths(value: unknown, prefix: Path = [], out: Path[] = []): Path[] {
  if (out.length > 2000) return out;
  out.push(prefix);
  if (Array.isArray(value)) value.forEach((v, i) => paths(v, [...prefix, i], out));
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) paths(v, [...prefix, k], out);
  return out;
}

type Mutation = { op: 'drop' | 'duplicate' | 'replace' | 'retype'; at: number; value: unknown };

function mutate(template: Record<string, unknown>, m: Mutation): Record<string, unknown> {
  const copy = structuredClone(template);
  const all = paths(copy).filter((p) => p.length > 0);
  if (all.length === 0) return copy;
  const path = all[m.at % all.length]!;
  let parent: any = copy;
  for (const k of path.slice(0, -1)) parent = parent[k];
  const key = path[path.length - 1]!;
  const current = parent[key];
  switch (m.op) {
    case 'drop':
      if (Array.isArray(parent)) parent.splice(Number(key), 1);
      else delete parent[key];
      break;
    case 'duplicate':
      if (Array.isArray(parent)) parent.push(structuredClone(current));
      else parent[`${String(key)}_copy`] = structuredClone(current);
      break;
    case 'replace':
      // Templates arrive as text or decoded msgpack: plain objects (fast-check also makes
      // null-prototype ones, which no request can contain).
      parent[key] = m.value === undefined ? null : JSON.parse(JSON.stringify(m.value));
      break;
    case 'retype':
      parent[key] = Array.isArray(current) ? { ...current } : current && typeof current === 'object' ? Object.values(current) : typeof current === 'string' ? Number(current.length) : String(current);
      break;
  }
  return copy;
}

const intrinsic = fc.oneof(
  fc.record({ get_param: fc.oneof(fc.string(), fc.array(fc.jsonValue(), { maxLength: 3 })) }),
  fc.record({ get_resource: fc.jsonValue() }),
  fc.record({ get_attr: fc.array(fc.jsonValue(), { maxLength: 4 }) }),
  fc.record({ if: fc.array(fc.jsonValue(), { maxLength: 4 }) }),
  fc.record({ list_join: fc.jsonValue() }),
  fc.record({ str_replace: fc.jsonValue() }),
  fc.record({ repeat: fc.jsonValue() }),
  fc.record({ yaql: fc.record({ expression: fc.string(), data: fc.jsonValue() }) }),
);
const randomValue = fc.oneof(fc.jsonValue({ maxDepth: 3 }), intrinsic, fc.constantFrom('OS::Heat::None', 'OS::Heat::ResourceGroup', 'nested.yaml', null, -1, 1e9, '%index%'));
const mutation: fc.Arbitrary<Mutation> = fc.record({ op: fc.constantFrom('drop', 'duplicate', 'replace', 'retype'), at: fc.nat(), value: randomValue });

test('structural mutations of corpus templates fail only with KilnErrors', () => {
  fc.assert(
    fc.property(fc.nat({ max: parsed.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), (i, ms) => {
      let t = parsed[i]!;
      for (const m of ms) t = mutate(t, m);
      pipeline(t);
    }),
    { numRuns: 1000, seed: SEED, includeErrorInReport: true },
  );
});

test('truncated and corrupted template text fails only with KilnErrors', () => {
  fc.assert(
    fc.property(fc.nat({ max: texts.length - 1 }), fc.nat(), fc.string({ maxLength: 8 }), fc.boolean(), (i, at, insert, truncate) => {
      const text = texts[i]!;
      const pos = at % (text.length + 1);
      pipeline(truncate ? text.slice(0, pos) : text.slice(0, pos) + insert + text.slice(pos));
    }),
    { numRuns: 1000, seed: SEED, includeErrorInReport: true },
  );
});

test('random environments and parameter values fail only with KilnErrors', () => {
  const env = fc.record(
    {
      parameters: fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 2 })),
      parameter_defaults: fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 2 })),
      resource_registry: fc.dictionary(fc.constantFrom('OS::Heat::RandomString', 'OS::Nova::Server', 'OS::*', 'resources', 'x.yaml'), fc.oneof(fc.string(), fc.constant(null), fc.jsonValue({ maxDepth: 2 }))),
      event_sinks: fc.jsonValue({ maxDepth: 1 }),
    },
    { requiredKeys: [] },
  );
  fc.assert(
    fc.property(fc.nat({ max: parsed.length - 1 }), env, fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 2 })), (i, e, params) => {
      pipeline(parsed[i]!, e as EnvironmentInput, params);
    }),
    { numRuns: 1000, seed: SEED, includeErrorInReport: true },
  );
});

test('pathological inputs: deep nesting, alias bombs, huge counts', () => {
  const deep = `{"heat_template_version": "2015-10-15", "resources": {"a": {"type": "OS::Heat::None", "properties": {"p": ${'['.repeat(20000)}${']'.repeat(20000)}}}}}`;
  assert.is(pipeline(deep)?.code, 'TEMPLATE_INVALID', 'nesting beyond the limit is refused');
  const bomb = ['heat_template_version: 2015-10-15', 'a: &a ["x","x","x","x","x","x","x","x","x"]'];
  for (let i = 0; i < 12; i++) bomb.push(`${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)}]`);
  assert.is(pipeline(bomb.join('\n'))?.code, 'YAML_SYNTAX', 'alias expansion is bounded');
  const huge = pipeline('heat_template_version: 2015-10-15\nresources:\n  g: {type: OS::Heat::ResourceGroup, properties: {count: 1e300, resource_def: {type: OS::Heat::None}}}\n');
  assert.equal([huge?.code, huge?.path], ['PROPERTY_INVALID', 'resources.g.properties.count']);
});

test.run();
