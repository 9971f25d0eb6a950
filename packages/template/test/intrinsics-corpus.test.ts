// The function layer over the real corpus: every yaql expression parses, and parsing/resolving
// every resource property and output of every template fails, if at all, with a typed error.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { KilnError } from '@kiln/core';
import { canonicalVersion, parseSnippet, pending, resolveSnippet, type FunctionHost } from '../src/functions/index.js';
import { compileYaql } from '../src/yaql/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const corpus = join(root, '..', 'shared', 'conformance', 'hot');

function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (/\.ya?ml$/.test(name)) out.push(p);
  }
  return out;
}

function load(file: string): Record<string, unknown> | undefined {
  try {
    const doc = parse(readFileSync(file, 'utf8'), { version: '1.1', maxAliasCount: -1 } as never) as unknown;
    return doc && typeof doc === 'object' && !Array.isArray(doc) ? (doc as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function yaqlExpressions(v: unknown, out: string[]): void {
  if (Array.isArray(v)) v.forEach((x) => yaqlExpressions(x, out));
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      if (k === 'yaql' && x && typeof x === 'object' && typeof (x as Record<string, unknown>)['expression'] === 'string') {
        out.push((x as Record<string, unknown>)['expression'] as string);
      }
      yaqlExpressions(x, out);
    }
  }
}

const templates = walk(corpus)
  .map((file) => ({ file, doc: load(file) }))
  .filter((t): t is { file: string; doc: Record<string, unknown> } => t.doc !== undefined && 'heat_template_version' in t.doc);

test('corpus is present', () => {
  assert.ok(templates.length > 100, `found ${templates.length} templates under ${corpus}`);
});

test('every yaql expression in the corpus parses', () => {
  const expressions: string[] = [];
  for (const t of templates) yaqlExpressions(t.doc, expressions);
  assert.ok(expressions.length >= 10, `found ${expressions.length}`);
  for (const e of expressions) compileYaql(e);
});

test('every property and output of every template parses and resolves or fails with a KilnError', () => {
  let resolved = 0;
  let total = 0;
  for (const { file, doc } of templates) {
    let version;
    try {
      version = canonicalVersion(doc['heat_template_version']);
    } catch (e) {
      assert.instance(e, KilnError);
      continue;
    }
    const resources = (doc['resources'] ?? {}) as Record<string, Record<string, unknown>>;
    const params = (doc['parameters'] ?? {}) as Record<string, Record<string, unknown>>;
    const host: FunctionHost = {
      version,
      param(name) {
        if (!(name in params)) throw new KilnError('PARAM_MISSING', `The Parameter (${name}) was not provided.`);
        return params[name]?.['default'] ?? null;
      },
      hasResource: (name) => name in resources,
      resourceRef: (name) => pending(`get_resource: ${name}`),
      resourceAttr: (name, attr) => pending(`get_attr: ${name}.${attr}`),
      resourceAllAttrs: (name) => pending(`get_attr: ${name}`),
      file: () => undefined,
      condition: () => true,
      facade: (kind) => (kind === 'metadata' ? {} : kind === 'deletion_policy' ? 'Delete' : {}),
    };
    const values: [string, unknown][] = [];
    for (const [name, r] of Object.entries(resources)) if (r && typeof r === 'object') values.push([`resources.${name}.properties`, r['properties']]);
    for (const [name, o] of Object.entries((doc['outputs'] ?? {}) as Record<string, Record<string, unknown>>)) {
      if (o && typeof o === 'object') values.push([`outputs.${name}.value`, o['value']]);
    }
    for (const [path, raw] of values) {
      total++;
      try {
        resolveSnippet(parseSnippet(raw, version, path), host);
        resolved++;
      } catch (e) {
        if (!(e instanceof KilnError)) assert.unreachable(`${file} ${path}: untyped ${String(e)}`);
      }
    }
  }
  // The rest fail for want of files or real parameter values (typed errors).
  assert.ok(resolved > total * 0.9, `resolved ${resolved} of ${total}`);
});

test.run();
