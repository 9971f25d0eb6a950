import { KilnError } from '@kiln/core';
import type { HotVersion } from './functions/contract.js';
import { isMap, pyStr, pyTruthy } from './functions/python.js';

/** HOT parameter types. */
export type ParamType = 'string' | 'number' | 'json' | 'comma_delimited_list' | 'boolean';
const PARAM_TYPES: readonly ParamType[] = ['string', 'number', 'comma_delimited_list', 'json', 'boolean'];

export type ParamConstraint =
  | { kind: 'length'; min?: number; max?: number; description?: string }
  | { kind: 'range'; min?: number; max?: number; description?: string }
  | { kind: 'modulo'; step: number; offset: number; description?: string }
  | { kind: 'allowed_values'; values: unknown[]; description?: string }
  | { kind: 'allowed_pattern'; pattern: string; regex: RegExp; description?: string }
  | { kind: 'custom_constraint'; name: string; description?: string };

export interface ParamSchema {
  readonly name: string;
  readonly type: ParamType;
  readonly description?: string;
  readonly label?: string;
  readonly default?: unknown;
  readonly hidden: boolean;
  readonly immutable: boolean;
  readonly tags?: unknown[];
  readonly constraints: readonly ParamConstraint[];
}

/**
 * Named validators (`custom_constraint: nova.flavor`) that providers register later. A name
 * nobody registered is accepted without a check, so templates written for a real cloud validate.
 */
export class CustomConstraintRegistry {
  private readonly validators = new Map<string, (value: unknown) => string | undefined>();

  /** `check` returns an error message, or undefined when the value is fine. */
  register(name: string, check: (value: unknown) => string | undefined): void {
    this.validators.set(name, check);
  }

  get(name: string): ((value: unknown) => string | undefined) | undefined {
    return this.validators.get(name);
  }
}

const BASE_KEYS = ['type', 'description', 'default', 'schema', 'constraints', 'hidden', 'label', 'immutable'];
const CONSTRAINT_KEYS = ['description', 'length', 'range', 'modulo', 'allowed_values', 'allowed_pattern', 'custom_constraint'];

function schemaError(message: string, path: string): KilnError {
  return new KilnError('TEMPLATE_INVALID', message, { path });
}

function checkDict(value: unknown, allowed: readonly string[], entity: string, path: string): Record<string, unknown> {
  if (!isMap(value)) throw schemaError(`Invalid ${entity}, expected a mapping`, path);
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw schemaError(`Invalid key '${key}' for ${entity}`, path);
  }
  return value;
}

/** Python's int()/float() on a string, as Schema.str_to_num does it. */
export function strToNum(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value !== 'string') {
    throw new TypeError(`int() argument must be a string, a bytes-like object or a real number, not '${value === null || value === undefined ? 'NoneType' : Array.isArray(value) ? 'list' : 'dict'}'`);
  }
  const s = value.trim().replace(/(\d)_(?=\d)/g, '$1');
  if (/^[+-]?\d+$/.test(s)) return Number.parseInt(s, 10);
  if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return Number.parseFloat(s);
  if (/^[+-]?(inf|infinity)$/i.test(s)) return s.startsWith('-') ? -Infinity : Infinity;
  if (/^[+-]?nan$/i.test(s)) return Number.NaN;
  throw new RangeError(`could not convert string to float: '${value}'`);
}

function numKey(cdef: Record<string, unknown>, key: string, path: string): number | undefined {
  const v = cdef[key];
  if (v === undefined || v === null) return undefined;
  try {
    return strToNum(v);
  } catch (e) {
    throw schemaError((e as Error).message, path);
  }
}

/** Python `re` syntax that differs from JavaScript's, translated where it is unambiguous. */
function compilePattern(pattern: string, path: string): RegExp {
  const js = pattern.replace(/\(\?P<(\w+)>/g, '(?<$1>').replace(/\(\?P=(\w+)\)/g, '\\k<$1>').replace(/\\Z/g, '$').replace(/\\A/g, '^');
  try {
    return new RegExp(js, 'y');
  } catch (e) {
    throw schemaError(`Invalid allowed_pattern "${pattern}": ${(e as Error).message}`, path);
  }
}

function parseConstraint(c: Record<string, unknown>, version: HotVersion, path: string): ParamConstraint {
  const description = typeof c.description === 'string' ? c.description : c.description == null ? undefined : pyStr(c.description);
  const withDesc = <T extends object>(o: T): T => (description === undefined ? o : { ...o, description });
  if ('range' in c || 'length' in c) {
    const kind = 'range' in c ? 'range' : 'length';
    const cdef = checkDict(c[kind], ['min', 'max'], `${kind} constraint`, path);
    const min = numKey(cdef, 'min', path);
    const max = numKey(cdef, 'max', path);
    if (min === undefined && max === undefined) throw schemaError(`A ${kind} constraint must have a min value and/or a max value specified.`, path);
    if (kind === 'length' && ((min !== undefined && !Number.isInteger(min)) || (max !== undefined && !Number.isInteger(max)))) {
      throw schemaError('min/max length must be integral', path);
    }
    return withDesc({ kind, ...(min === undefined ? {} : { min }), ...(max === undefined ? {} : { max }) });
  }
  if ('modulo' in c && version >= '2017-02-24') {
    const cdef = checkDict(c.modulo, ['step', 'offset'], 'modulo constraint', path);
    const step = numKey(cdef, 'step', path);
    const offset = numKey(cdef, 'offset', path);
    if (step === undefined || offset === undefined) throw schemaError('A modulo constraint must have a step value and an offset value specified.', path);
    if (!Number.isInteger(step) || !Number.isInteger(offset)) throw schemaError('step/offset must be integer', path);
    if (step === 0) throw schemaError('step cannot be 0.', path);
    if (Math.abs(offset) >= Math.abs(step)) throw schemaError('offset must be smaller (by absolute value) than step.', path);
    if (step * offset < 0) throw schemaError('step and offset must be both positive or both negative.', path);
    return withDesc({ kind: 'modulo', step, offset });
  }
  if ('allowed_values' in c) {
    const values = c.allowed_values;
    if (!Array.isArray(values)) throw schemaError('AllowedValues must be a list', path);
    return withDesc({ kind: 'allowed_values', values });
  }
  if ('allowed_pattern' in c) {
    const pattern = c.allowed_pattern;
    if (typeof pattern !== 'string') throw schemaError('AllowedPattern must be a string', path);
    return withDesc({ kind: 'allowed_pattern', pattern, regex: compilePattern(pattern, path) });
  }
  if ('custom_constraint' in c) {
    return withDesc({ kind: 'custom_constraint', name: pyStr(c.custom_constraint) });
  }
  throw schemaError('No constraint expressed', path);
}

/** HOTParamSchema.from_dict: one entry of the `parameters` section. */
export function parseParamSchema(name: string, raw: unknown, version: HotVersion): ParamSchema {
  const path = `parameters.${name}`;
  const keys = version >= '2018-03-02' ? [...BASE_KEYS, 'tags'] : BASE_KEYS;
  if (!isMap(raw)) throw schemaError(`Invalid parameter (${name}), expected a mapping`, path);
  const dict = checkDict(raw, keys, `parameter (${name})`, path);
  if (!('type' in dict)) throw schemaError(`Missing parameter type for parameter: ${name}`, path);
  if (dict.tags !== undefined && dict.tags !== null && !Array.isArray(dict.tags)) throw schemaError(`Tags property should be a list for parameter: ${name}`, path);
  const type = dict.type;
  if (typeof type !== 'string' || !PARAM_TYPES.includes(type as ParamType)) throw schemaError(`Invalid type (${pyStr(type)})`, path);
  let constraints: ParamConstraint[] = [];
  const rawConstraints = dict.constraints;
  if (rawConstraints !== undefined && rawConstraints !== null) {
    if (!Array.isArray(rawConstraints)) throw schemaError(`Invalid parameter constraints for parameter ${name}, expected a list`, path);
    constraints = rawConstraints.map((c, i) => parseConstraint(checkDict(c, CONSTRAINT_KEYS, 'parameter constraints', `${path}.constraints[${i}]`), version, `${path}.constraints[${i}]`));
  }
  const schema: { -readonly [K in keyof ParamSchema]: ParamSchema[K] } = {
    name,
    type: type as ParamType,
    hidden: pyTruthy(dict.hidden),
    immutable: pyTruthy(dict.immutable),
    constraints,
  };
  if (dict.description !== undefined && dict.description !== null) schema.description = pyStr(dict.description);
  if (dict.label !== undefined && dict.label !== null) schema.label = pyStr(dict.label);
  if (dict.default !== undefined && dict.default !== null) schema.default = dict.default;
  if (Array.isArray(dict.tags)) schema.tags = dict.tags;
  return schema;
}

const VALID_TYPES: Record<ParamConstraint['kind'], readonly ParamType[]> = {
  range: ['number'],
  modulo: ['number'],
  length: ['string', 'comma_delimited_list', 'json'],
  allowed_values: ['string', 'number', 'boolean', 'comma_delimited_list'],
  allowed_pattern: ['string'],
  custom_constraint: ['string', 'number', 'boolean', 'comma_delimited_list'],
};
const CONSTRAINT_CLASS: Record<ParamConstraint['kind'], string> = {
  range: 'Range',
  modulo: 'Modulo',
  length: 'Length',
  allowed_values: 'AllowedValues',
  allowed_pattern: 'AllowedPattern',
  custom_constraint: 'CustomConstraint',
};

const TRUE_STRINGS = ['1', 't', 'true', 'on', 'y', 'yes'];
const FALSE_STRINGS = ['0', 'f', 'false', 'off', 'n', 'no'];
const BOOL_ACCEPTABLE = [...TRUE_STRINGS, ...FALSE_STRINGS]
  .sort()
  .map((s) => `'${s}'`)
  .join(', ');

/** oslo strutils.bool_from_string(strict=True). */
export function boolFromString(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  const s = pyStr(value).trim().toLowerCase();
  if (TRUE_STRINGS.includes(s)) return true;
  if (FALSE_STRINGS.includes(s)) return false;
  throw new RangeError(`Unrecognized value '${pyStr(value)}', acceptable values are: ${BOOL_ACCEPTABLE}`);
}

function parseList(value: unknown): string[] {
  if (Array.isArray(value)) return value.map((x) => pyStr(x));
  if (typeof value !== 'string') {
    throw new RangeError(`Value must be a comma-delimited list string: '${value === null ? 'NoneType' : typeof value === 'number' ? (Number.isInteger(value) ? 'int' : 'float') : typeof value === 'boolean' ? 'bool' : 'dict'}' object has no attribute 'split'`);
  }
  return value === '' ? [] : value.split(',');
}

function parseJson(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  if (value === '') return value;
  try {
    return JSON.parse(value);
  } catch (e) {
    throw new RangeError(`Value must be valid JSON: ${(e as Error).message}`);
  }
}

/** The typed value of a parameter (user value or default); throws RangeError/TypeError with Heat's message. */
export function coerceParam(type: ParamType, value: unknown): unknown {
  switch (type) {
    case 'string':
      return pyStr(value);
    case 'number':
      return strToNum(value);
    case 'boolean':
      return boolFromString(value);
    case 'comma_delimited_list':
      return parseList(value);
    case 'json':
      return parseJson(value);
  }
}

function lengthOf(v: unknown): number {
  if (typeof v === 'string') return [...v].length;
  if (Array.isArray(v)) return v.length;
  if (isMap(v)) return Object.keys(v).length;
  throw new TypeError(`object of type '${typeof v}' has no len()`);
}

function pyMod(a: number, b: number): number {
  return a - b * Math.floor(a / b);
}

function toSchemaType(type: ParamType, v: unknown): unknown {
  if (type === 'number') return strToNum(v);
  if (type === 'string') return pyStr(v);
  if (type === 'boolean') return boolFromString(v);
  return v;
}

function sameValue(a: unknown, b: unknown): boolean {
  return a === b || (typeof a === 'object' && JSON.stringify(a) === JSON.stringify(b));
}

/** The message of a failed constraint, or undefined when `value` satisfies it. */
export function checkConstraint(c: ParamConstraint, type: ParamType, value: unknown, customs?: CustomConstraintRegistry): string | undefined {
  let ok = true;
  let msg = '';
  switch (c.kind) {
    case 'range': {
      const n = strToNum(value);
      ok = !((c.min !== undefined && n < c.min) || (c.max !== undefined && n > c.max));
      msg = `${pyStr(value)} is out of range (min: ${pyStr(c.min)}, max: ${pyStr(c.max)})`;
      break;
    }
    case 'length': {
      const n = lengthOf(value);
      ok = !((c.min !== undefined && n < c.min) || (c.max !== undefined && n > c.max));
      msg = `length (${n}) is out of range (min: ${pyStr(c.min)}, max: ${pyStr(c.max)})`;
      break;
    }
    case 'modulo': {
      const n = strToNum(value);
      ok = pyMod(n, c.step) === c.offset;
      msg = `${pyStr(value)} is not a multiple of ${c.step} with an offset of ${c.offset})`;
      break;
    }
    case 'allowed_values': {
      if (Array.isArray(value)) ok = value.every((v) => c.values.some((a) => sameValue(a, v)));
      else {
        const typed = toSchemaType(type, value);
        ok = c.values.some((a) => {
          try {
            return sameValue(toSchemaType(type, a), typed);
          } catch {
            return false;
          }
        });
      }
      msg = `"${pyStr(value)}" is not an allowed value [${c.values.map(pyStr).join(', ')}]`;
      break;
    }
    case 'allowed_pattern': {
      const s = pyStr(value);
      c.regex.lastIndex = 0;
      const m = c.regex.exec(s);
      ok = m !== null && m[0].length === s.length;
      msg = `"${s}" does not match pattern "${c.pattern}"`;
      break;
    }
    case 'custom_constraint': {
      const check = customs?.get(c.name);
      const err = check ? check(value) : undefined;
      ok = err === undefined;
      msg = err ?? '';
      break;
    }
  }
  if (ok) return undefined;
  return c.description ?? msg;
}

export interface ParameterValue {
  readonly schema: ParamSchema;
  /** The value given by the user (environment `parameters` or request), before coercion. */
  readonly userValue?: unknown;
  /** parameter_defaults override of the template default. */
  readonly userDefault?: unknown;
  /** The typed value; undefined only when the parameter has no value at all. */
  readonly value?: unknown;
}

export interface ResolveParamsOptions {
  /** Values from environment `parameters` merged with request parameters (request wins). */
  values?: Record<string, unknown>;
  /** Environment `parameter_defaults`. */
  defaults?: Record<string, unknown>;
  customConstraints?: CustomConstraintRegistry;
  /** When false, only schemas are checked (template-validate without values). */
  validateValues?: boolean;
}

function invalid(name: string, message: string, code: 'PARAM_CONSTRAINT' | 'PARAM_TYPE' | 'TEMPLATE_INVALID'): KilnError {
  return new KilnError(code, `Parameter '${name}' is invalid: ${message}`, { path: `parameters.${name}`, detail: { parameter: name } });
}

function errMessage(e: unknown): string {
  if (e instanceof KilnError) return e.reason;
  return e instanceof Error ? e.message : String(e);
}

/**
 * Parameter.validate: the schema (constraint kinds fit the type, the default satisfies the
 * constraints other than custom ones), then the user value or the default.
 */
export function validateParameter(p: ParameterValue, opts: { customConstraints?: CustomConstraintRegistry; validateValues?: boolean } = {}): void {
  const { schema } = p;
  const name = schema.name;
  for (const c of schema.constraints) {
    if (!VALID_TYPES[c.kind].includes(schema.type)) throw invalid(name, `${CONSTRAINT_CLASS[c.kind]} constraint invalid for ${schema.type}`, 'TEMPLATE_INVALID');
  }
  const def = p.userDefault ?? schema.default;
  if (def !== undefined) {
    let defValue: unknown = def;
    try {
      if (schema.type === 'comma_delimited_list') defValue = parseList(def);
      for (const c of schema.constraints) {
        if (c.kind === 'custom_constraint') continue;
        const err = checkConstraint(c, schema.type, defValue);
        if (err !== undefined) throw new RangeError(err);
      }
    } catch (e) {
      throw invalid(name, `Invalid default ${pyStr(def)} (${errMessage(e)})`, 'TEMPLATE_INVALID');
    }
  }
  if (opts.validateValues === false) return;
  const raw = p.userValue !== undefined && p.userValue !== null ? p.userValue : def;
  if (raw === undefined || raw === null) {
    throw new KilnError('PARAM_MISSING', `The Parameter (${name}) was not provided.`, { path: `parameters.${name}`, detail: { parameter: name } });
  }
  let typed: unknown;
  try {
    typed = coerceParam(schema.type, raw);
  } catch (e) {
    throw invalid(name, errMessage(e), 'PARAM_TYPE');
  }
  const isUser = p.userValue !== undefined && p.userValue !== null;
  // Constraints see the parsed value for lists and JSON, the raw one otherwise (as Heat does).
  const checked = schema.type === 'comma_delimited_list' || schema.type === 'json' ? typed : raw;
  for (const c of schema.constraints) {
    if (c.kind === 'custom_constraint' && !isUser) continue;
    let err: string | undefined;
    try {
      err = checkConstraint(c, schema.type, checked, opts.customConstraints);
    } catch (e) {
      err = errMessage(e);
    }
    if (err !== undefined) throw invalid(name, err, 'PARAM_CONSTRAINT');
  }
}

export const PSEUDO_PARAMETERS = ['OS::stack_id', 'OS::stack_name', 'OS::region', 'OS::project_id'] as const;

/** Identity of the stack, which the pseudo parameters expose. */
export interface StackIdentity {
  stackId?: string;
  stackName?: string;
  projectId?: string;
  region?: string;
}

export class Parameters {
  private readonly entries = new Map<string, ParameterValue>();
  private readonly unusable = new Map<string, KilnError>();

  constructor(
    readonly schemas: ReadonlyMap<string, ParamSchema>,
    private readonly identity: StackIdentity = {},
    opts: ResolveParamsOptions = {},
  ) {
    const values = opts.values ?? {};
    const defaults = opts.defaults ?? {};
    for (const name of Object.keys(values)) {
      if (!schemas.has(name)) {
        throw new KilnError('PARAM_UNKNOWN', `The Parameter (${name}) was not defined in template.`, { path: `parameters.${name}`, detail: { parameter: name } });
      }
    }
    for (const [name, schema] of schemas) {
      const p: { -readonly [K in keyof ParameterValue]: ParameterValue[K] } = { schema };
      if (Object.hasOwn(values, name) && values[name] !== null) p.userValue = values[name];
      if (Object.hasOwn(defaults, name) && defaults[name] !== null) p.userDefault = defaults[name];
      validateParameter(p, opts);
      const raw = p.userValue ?? p.userDefault ?? schema.default;
      if (raw !== undefined) {
        try {
          p.value = coerceParam(schema.type, raw);
        } catch (e) {
          // Only reachable without value validation (template-validate): reading it fails later.
          this.unusable.set(name, invalid(name, errMessage(e), 'PARAM_TYPE'));
        }
      }
      this.entries.set(name, p);
    }
  }

  has(name: string): boolean {
    return this.entries.has(name) || (PSEUDO_PARAMETERS as readonly string[]).includes(name);
  }

  entry(name: string): ParameterValue | undefined {
    return this.entries.get(name);
  }

  names(): IterableIterator<string> {
    return this.entries.keys();
  }

  /** The typed value; throws PARAM_MISSING like Heat's get_param on an absent value. */
  get(name: string): unknown {
    switch (name) {
      case 'OS::stack_id':
        return this.identity.stackId ?? '';
      case 'OS::stack_name':
        if (this.identity.stackName) return this.identity.stackName;
        break;
      case 'OS::project_id':
        return this.identity.projectId ?? '';
      case 'OS::region':
        return this.identity.region ?? 'RegionOne';
    }
    const bad = this.unusable.get(name);
    if (bad) throw bad;
    const e = this.entries.get(name);
    if (!e || e.value === undefined) throw new KilnError('PARAM_MISSING', `The Parameter (${name}) was not provided.`, { detail: { parameter: name } });
    return e.value;
  }

  /** Names of immutable parameters whose value differs in `next` (an update must be refused). */
  immutableChanged(next: Parameters): string[] {
    const out: string[] = [];
    for (const [name, entry] of next.entries) {
      const old = this.entries.get(name);
      if (!old || !entry.schema.immutable) continue;
      if (JSON.stringify(old.value) !== JSON.stringify(entry.value)) out.push(name);
    }
    return out;
  }
}

/** The update-time refusal for changed immutable parameters. */
export function immutableError(names: string[]): KilnError {
  return new KilnError('PARAM_IMMUTABLE', `The following parameters are immutable and may not be updated: ${names.join(', ')}`, { detail: { parameters: names } });
}

export interface ParameterGroup {
  label?: unknown;
  description?: unknown;
  parameters: string[];
}

/** parameter_groups.ParameterGroups.validate with Heat's messages. */
export function validateParameterGroups(raw: unknown, schemas: ReadonlyMap<string, ParamSchema>): ParameterGroup[] {
  if (raw === undefined || raw === null || raw === '' || raw === false || raw === 0) return [];
  const err = (message: string, path: string) => new KilnError('TEMPLATE_INVALID', `Parameter Groups error: ${path}: ${message}`, { path });
  if (!Array.isArray(raw)) throw err('The parameter_groups should be a list.', 'parameter_groups');
  const seen = new Set<string>();
  const groups: ParameterGroup[] = [];
  for (const g of raw) {
    const group = isMap(g) ? g : {};
    const path = `parameter_groups.${pyStr(group.label ?? '')}`;
    const params = group.parameters;
    if (params === undefined || params === null) throw err('The parameters must be provided for each parameter group.', path);
    if (!Array.isArray(params)) throw err('The parameters of parameter group should be a list.', path);
    for (const p of params) {
      const name = pyStr(p);
      if (seen.has(name)) throw err(`The ${name} parameter must be assigned to one parameter group only.`, path);
      seen.add(name);
      if (!schemas.has(name)) throw err(`The grouped parameter ${name} does not reference a valid parameter.`, path);
    }
    groups.push(group as unknown as ParameterGroup);
  }
  return groups;
}
