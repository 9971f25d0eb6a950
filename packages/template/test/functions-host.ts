// A small FunctionHost for the function-layer tests (not a suite: no `.test` in the name).
import { KilnError } from '@kiln/core';
import * as assert from 'uvu/assert';
import type { FunctionHost, HotVersion } from '../src/functions/contract.js';
import { parseSnippet, pending, resolveSnippet, type ParseMode } from '../src/functions/index.js';

export interface TestResource {
  ref?: unknown;
  attrs?: Record<string, unknown>;
  /** Not deployed yet: every read is Pending. */
  pending?: boolean;
}

export interface HostOptions {
  version?: HotVersion;
  params?: Record<string, unknown>;
  resources?: Record<string, TestResource>;
  files?: Record<string, string>;
  conditions?: Record<string, boolean>;
  facade?: { metadata?: unknown; deletion_policy?: unknown; update_policy?: unknown };
}

/** StackAttributesTest's resource1 (a generic resource returns its name for unknown attributes). */
export const RESOURCE1: TestResource = {
  ref: 'resource1',
  attrs: {
    foo: 'resource1',
    list: ['foo', 'bar'],
    flat_dict: { key1: 'val1', key2: 'val2', key3: 'val3' },
    nested_dict: { list: [1, 2, 3], string: 'abc', dict: { a: 1, b: 2, c: 3 } },
    none: null,
  },
};

function select(value: unknown, path: readonly unknown[]): unknown {
  let v = value;
  for (const key of path) {
    if (v === null || typeof v !== 'object') return null;
    if (Array.isArray(v)) {
      if (typeof key !== 'number') return null;
      v = v[key];
    } else {
      if (typeof key !== 'string' || !(key in v)) return null;
      v = (v as Record<string, unknown>)[key];
    }
    if (v === undefined) return null;
  }
  return v;
}

export function testHost(opts: HostOptions = {}): FunctionHost {
  const resources = opts.resources ?? { resource1: RESOURCE1 };
  return {
    version: opts.version ?? '2021-04-16',
    param(name) {
      const params = opts.params ?? {};
      if (!Object.prototype.hasOwnProperty.call(params, name)) throw new KilnError('PARAM_MISSING', `The Parameter (${name}) was not provided.`);
      return params[name];
    },
    hasResource: (name) => Object.prototype.hasOwnProperty.call(resources, name),
    resourceRef(name) {
      const r = resources[name];
      if (r?.pending) return pending(`get_resource: ${name}`);
      return r?.ref ?? name;
    },
    resourceAttr(name, attr, path) {
      const r = resources[name];
      if (r?.pending) return pending(`get_attr: ${[name, attr, ...path].join('.')}`);
      const attrs = r?.attrs ?? {};
      const value = Object.prototype.hasOwnProperty.call(attrs, attr) ? attrs[attr] : name;
      return select(value, path);
    },
    resourceAllAttrs(name) {
      const r = resources[name];
      if (r?.pending) return pending(`get_attr: ${name}`);
      return { ...(r?.attrs ?? { Foo: name, foo: name }) };
    },
    file: (key) => opts.files?.[key],
    condition(name) {
      const c = opts.conditions ?? {};
      if (!Object.prototype.hasOwnProperty.call(c, name)) throw new KilnError('CONDITION_INVALID', `Invalid condition "${name}"`);
      return c[name] as boolean;
    },
    facade(kind) {
      const f = opts.facade ?? {};
      if (kind === 'deletion_policy') return f.deletion_policy ?? 'Delete';
      if (kind === 'update_policy') return f.update_policy ?? {};
      return f.metadata ?? {};
    },
  };
}

export const PATH = 'resources.x.properties.Value';

/** Parse and resolve `raw` as a property value. */
export function resolve(raw: unknown, opts: HostOptions = {}, mode: ParseMode = 'value'): unknown {
  const host = testHost(opts);
  return resolveSnippet(parseSnippet(raw, host.version, PATH, mode), host);
}

/** Asserts that `fn` throws a KilnError with `code` whose message contains `text`. */
export function throwsKiln(fn: () => unknown, code: string, text: string): KilnError {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof KilnError)) assert.unreachable(`expected a KilnError, got ${String(e)}`);
    const k = e as KilnError;
    assert.is(k.code, code, `code of: ${k.message}`);
    assert.ok(k.message.includes(text), `message ${JSON.stringify(k.message)} should contain ${JSON.stringify(text)}`);
    return k;
  }
  assert.unreachable(`expected an error containing ${text}`);
  throw new Error('unreachable');
}
