import { KilnError } from '@kiln/core';

/**
 * A deliberately small schema language for request bodies: enough to refuse wrong types,
 * missing and unknown fields with the exact field path (`body.parameters.flavor`), nothing more.
 */
export type Schema =
  | { kind: 'string'; minLength?: number; maxLength?: number; pattern?: RegExp; enum?: readonly string[] }
  | { kind: 'integer'; min?: number; max?: number }
  | { kind: 'boolean' }
  /** Any JSON value (null, boolean, number, string, array, plain object). */
  | { kind: 'json' }
  | { kind: 'array'; items: Schema; maxItems?: number }
  /** An object with arbitrary keys, every value matching `values`. */
  | { kind: 'map'; values: Schema; maxKeys?: number }
  | { kind: 'object'; fields: Record<string, Field> }
  /** The first alternative whose `kind` check passes (string vs object for templates). */
  | { kind: 'oneOf'; options: readonly Schema[]; describe: string };

export interface Field {
  schema: Schema;
  required?: boolean;
}

export const str = (o: Omit<Extract<Schema, { kind: 'string' }>, 'kind'> = {}): Schema => ({ kind: 'string', ...o });
export const int = (o: Omit<Extract<Schema, { kind: 'integer' }>, 'kind'> = {}): Schema => ({ kind: 'integer', ...o });
export const bool: Schema = { kind: 'boolean' };
export const json: Schema = { kind: 'json' };
export const arrayOf = (items: Schema, maxItems?: number): Schema => (maxItems === undefined ? { kind: 'array', items } : { kind: 'array', items, maxItems });
export const mapOf = (values: Schema): Schema => ({ kind: 'map', values });
export const obj = (fields: Record<string, Field | Schema>): Schema => ({
  kind: 'object',
  fields: Object.fromEntries(Object.entries(fields).map(([k, f]) => [k, 'schema' in f ? f : { schema: f }])),
});
export const required = (schema: Schema): Field => ({ schema, required: true });
export const oneOf = (describe: string, ...options: Schema[]): Schema => ({ kind: 'oneOf', options, describe });

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (v instanceof Uint8Array) return 'binary';
  return typeof v === 'object' && !isPlainObject(v) ? 'non-JSON object' : typeof v;
}

function invalid(path: string, message: string): KilnError {
  return new KilnError('REQUEST_INVALID', message, { path });
}

function fieldPath(path: string, key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

/** Throws a REQUEST_INVALID KilnError naming the first offending path; returns the value typed. */
export function check<T>(schema: Schema, value: unknown, path = 'body'): T {
  validate(schema, value, path);
  return value as T;
}

function validate(schema: Schema, v: unknown, path: string): void {
  switch (schema.kind) {
    case 'string': {
      if (typeof v !== 'string') throw invalid(path, `expected a string, got ${typeName(v)}`);
      if (schema.minLength !== undefined && v.length < schema.minLength) throw invalid(path, `must have at least ${schema.minLength} characters`);
      if (schema.maxLength !== undefined && v.length > schema.maxLength) throw invalid(path, `must have at most ${schema.maxLength} characters`);
      if (schema.pattern && !schema.pattern.test(v)) throw invalid(path, `must match ${schema.pattern.source}`);
      if (schema.enum && !schema.enum.includes(v)) throw invalid(path, `must be one of ${schema.enum.join(', ')}`);
      return;
    }
    case 'integer': {
      if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw invalid(path, `expected an integer, got ${typeName(v)}`);
      if (schema.min !== undefined && v < schema.min) throw invalid(path, `must be >= ${schema.min}`);
      if (schema.max !== undefined && v > schema.max) throw invalid(path, `must be <= ${schema.max}`);
      return;
    }
    case 'boolean':
      if (typeof v !== 'boolean') throw invalid(path, `expected a boolean, got ${typeName(v)}`);
      return;
    case 'json':
      checkJson(v, path);
      return;
    case 'array': {
      if (!Array.isArray(v)) throw invalid(path, `expected an array, got ${typeName(v)}`);
      if (schema.maxItems !== undefined && v.length > schema.maxItems) throw invalid(path, `must have at most ${schema.maxItems} items`);
      v.forEach((item, i) => validate(schema.items, item, `${path}[${i}]`));
      return;
    }
    case 'map': {
      if (!isPlainObject(v)) throw invalid(path, `expected an object, got ${typeName(v)}`);
      for (const [k, item] of Object.entries(v)) validate(schema.values, item, fieldPath(path, k));
      return;
    }
    case 'object': {
      if (!isPlainObject(v)) throw invalid(path, `expected an object, got ${typeName(v)}`);
      for (const k of Object.keys(v)) {
        if (!(k in schema.fields)) throw invalid(fieldPath(path, k), 'unknown field');
      }
      for (const [k, f] of Object.entries(schema.fields)) {
        const item = v[k];
        if (item === undefined) {
          if (f.required) throw invalid(fieldPath(path, k), 'required field is missing');
          continue;
        }
        validate(f.schema, item, fieldPath(path, k));
      }
      return;
    }
    case 'oneOf': {
      for (const option of schema.options) {
        if (kindMatches(option, v)) return validate(option, v, path);
      }
      throw invalid(path, `expected ${schema.describe}, got ${typeName(v)}`);
    }
  }
}

function kindMatches(schema: Schema, v: unknown): boolean {
  switch (schema.kind) {
    case 'string':
      return typeof v === 'string';
    case 'integer':
      return typeof v === 'number';
    case 'boolean':
      return typeof v === 'boolean';
    case 'array':
      return Array.isArray(v);
    case 'map':
    case 'object':
      return isPlainObject(v);
    case 'json':
    case 'oneOf':
      return true;
  }
}

/** Depth is already bounded by the body decoder, so plain recursion is safe here. */
function checkJson(v: unknown, path: string): void {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw invalid(path, 'numbers must be finite');
    return;
  }
  if (Array.isArray(v)) {
    v.forEach((item, i) => checkJson(item, `${path}[${i}]`));
    return;
  }
  if (isPlainObject(v)) {
    for (const [k, item] of Object.entries(v)) checkJson(item, fieldPath(path, k));
    return;
  }
  throw invalid(path, `expected a JSON value, got ${typeName(v)}`);
}
