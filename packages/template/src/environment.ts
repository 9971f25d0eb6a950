import { KilnError } from '@kiln/core';
import { parseYaml } from './source.js';
import { isMap, pyStr } from './functions/python.js';

export const ENVIRONMENT_SECTIONS = [
  'parameters',
  'resource_registry',
  'parameter_defaults',
  'encrypted_param_names',
  'event_sinks',
  'parameter_merge_strategies',
] as const;

/** An environment as written by a user (one `-e` file, or several merged). */
export interface EnvironmentInput {
  parameters?: Record<string, unknown>;
  parameter_defaults?: Record<string, unknown>;
  resource_registry?: Record<string, unknown>;
  event_sinks?: unknown[];
  encrypted_param_names?: unknown[];
  parameter_merge_strategies?: Record<string, unknown>;
}

/** environment_format.parse + validate. */
export function parseEnvironmentText(text: string, name = 'environment'): EnvironmentInput {
  let env: unknown;
  try {
    env = parseYaml(text, name);
  } catch (e) {
    throw new KilnError('ENVIRONMENT_INVALID', (e as KilnError).message, { detail: (e as KilnError).detail, cause: e });
  }
  return checkEnvironment(env ?? {});
}

/** Checks an environment given as data (request payloads, parsed files). */
export function checkEnvironment(env: unknown): EnvironmentInput {
  if (!isMap(env)) throw new KilnError('ENVIRONMENT_INVALID', 'The environment is not a valid YAML mapping data type.');
  for (const key of Object.keys(env)) {
    if (!(ENVIRONMENT_SECTIONS as readonly string[]).includes(key)) throw new KilnError('ENVIRONMENT_INVALID', `environment has wrong section "${key}"`, { path: key });
  }
  for (const key of ['parameters', 'parameter_defaults', 'resource_registry', 'parameter_merge_strategies'] as const) {
    const v = env[key];
    if (v !== undefined && v !== null && !isMap(v)) throw new KilnError('ENVIRONMENT_INVALID', `The environment section "${key}" must be a mapping.`, { path: key });
  }
  for (const key of ['event_sinks', 'encrypted_param_names'] as const) {
    const v = env[key];
    if (v !== undefined && v !== null && !Array.isArray(v)) throw new KilnError('ENVIRONMENT_INVALID', `The environment section "${key}" must be a list.`, { path: key });
  }
  const registry = env.resource_registry;
  if (isMap(registry)) checkRegistry(registry);
  return env as EnvironmentInput;
}

function checkRegistry(registry: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(registry)) {
    if (key === 'base_url') continue;
    if (key === 'resources') {
      if (value === null || value === undefined) continue;
      if (!isMap(value)) throw new KilnError('ENVIRONMENT_INVALID', 'resource_registry.resources must be a mapping of resource names.', { path: 'resource_registry.resources' });
      for (const [pattern, section] of Object.entries(value)) {
        if (section !== null && !isMap(section)) throw new KilnError('ENVIRONMENT_INVALID', `resource_registry.resources.${pattern} must be a mapping.`, { path: `resource_registry.resources.${pattern}` });
      }
      continue;
    }
    if (value !== null && typeof value !== 'string') {
      throw new KilnError('ENVIRONMENT_INVALID', `Invalid resource_registry entry "${key}": the value must be a resource type or a template.`, { path: `resource_registry.${key}` });
    }
  }
}

type MergeStrategy = 'overwrite' | 'merge' | 'deep_merge';
const MERGE_STRATEGIES: readonly string[] = ['overwrite', 'merge', 'deep_merge'];

function strategyFor(strategies: Record<string, unknown>, key: string, known: Map<string, MergeStrategy>): MergeStrategy {
  const fallback = MERGE_STRATEGIES.includes(String(strategies.default)) ? (strategies.default as MergeStrategy) : 'overwrite';
  const s = strategies[key] ?? known.get(key) ?? fallback;
  return MERGE_STRATEGIES.includes(String(s)) ? (s as MergeStrategy) : fallback;
}

function mergeList(old: unknown, next: unknown): unknown {
  if (!old || (Array.isArray(old) && old.length === 0)) return next;
  if (Array.isArray(next)) return [...(Array.isArray(old) ? old : [old]), ...next];
  return [pyStr(old), pyStr(next)].join(',');
}

/** environment_util.merge_map: top-level keys replaced, or (deep) maps merged, lists joined, strings concatenated. */
function mergeMap(old: unknown, next: Record<string, unknown>, deep = false): Record<string, unknown> {
  if (!isMap(old) || Object.keys(old).length === 0) return next;
  const out: Record<string, unknown> = { ...old };
  for (const [k, v] of Object.entries(next)) {
    if (v === null || v === undefined) continue;
    if (!deep) out[k] = v;
    else if (isMap(v)) out[k] = out[k] ? mergeMap(out[k], v, true) : v;
    else if (Array.isArray(v)) out[k] = out[k] ? mergeList(out[k], v) : v;
    else if (typeof v === 'string') out[k] = `${typeof out[k] === 'string' ? out[k] : ''}${v}`;
    else out[k] = v;
  }
  return out;
}

function mergeParameters(
  old: Record<string, unknown>,
  next: Record<string, unknown>,
  types: Readonly<Record<string, string>> | undefined,
  strategies: Record<string, unknown>,
  known: Map<string, MergeStrategy>,
  file: string,
): Record<string, unknown> {
  if (Object.keys(old).length === 0) return { ...next };
  const out = { ...old };
  for (const [key, value] of Object.entries(next)) {
    // Heat ignores values for parameters the template does not have.
    if ((types && !(key in types)) || value === null || value === undefined) continue;
    const strategy = strategyFor(strategies, key, known);
    const before = known.get(key);
    if (before === undefined) known.set(key, strategy);
    else if (before !== strategy) throw new KilnError('ENVIRONMENT_INVALID', `Conflicting merge strategy '${strategy}' for parameter '${key}' in file '${file}'.`, { path: `parameter_merge_strategies.${key}` });
    if (strategy === 'overwrite') {
      out[key] = value;
      continue;
    }
    const type = types?.[key] ?? (isMap(value) ? 'json' : Array.isArray(value) ? 'comma_delimited_list' : typeof value === 'number' ? 'number' : 'string');
    let parsed = value;
    if (type === 'json' && typeof value === 'string' && value !== '') {
      try {
        parsed = JSON.parse(value);
      } catch (e) {
        throw new KilnError('ENVIRONMENT_INVALID', `Invalid parameter in environment ${(e as Error).message}.`, { path: `parameters.${key}` });
      }
    }
    if (type === 'json') out[key] = mergeMap(out[key] ?? {}, isMap(parsed) ? parsed : {}, strategy === 'deep_merge');
    else if (type === 'comma_delimited_list') out[key] = mergeList(out[key], parsed);
    else if (type === 'string') out[key] = `${pyStr(out[key] ?? '')}${pyStr(parsed)}`;
    else if (type === 'number') out[key] = Number(out[key] ?? 0) + Number(parsed);
    else throw new KilnError('ENVIRONMENT_INVALID', `Invalid merge strategy '${strategy}' for parameter '${key}'.`, { path: `parameter_merge_strategies.${key}` });
  }
  return out;
}

/**
 * Merges environment files in order as Heat's server side does (environment_util): parameters
 * and parameter_defaults by each parameter's merge strategy (`overwrite` unless
 * `parameter_merge_strategies` says `merge` or `deep_merge`), other sections key by key.
 * `paramTypes` (the template's parameter types) decides how `merge` combines values and which
 * values are kept; without it every value is kept.
 */
export function mergeEnvironments(envs: readonly EnvironmentInput[], paramTypes?: Readonly<Record<string, string>>, names: readonly string[] = []): EnvironmentInput {
  const out: Record<string, unknown> = {};
  const known = new Map<string, MergeStrategy>();
  envs.forEach((env, i) => {
    const strategies = isMap(env.parameter_merge_strategies) ? env.parameter_merge_strategies : {};
    for (const [section, value] of Object.entries(env)) {
      if (section === 'parameter_merge_strategies' || value === null || value === undefined) continue;
      if (section === 'parameters' || section === 'parameter_defaults') {
        out[section] = mergeParameters(isMap(out[section]) ? out[section] : {}, value as Record<string, unknown>, paramTypes, strategies, known, names[i] ?? `environment ${i + 1}`);
      } else if (Array.isArray(value)) {
        out[section] = [...(Array.isArray(out[section]) ? (out[section] as unknown[]) : []), ...value];
      } else if (isMap(value)) {
        out[section] = mergeMap(out[section], value);
      }
    }
  });
  return out as EnvironmentInput;
}

/** Whether a type name designates a template file (a provider/nested template). */
export function isTemplateName(type: string): boolean {
  return type.endsWith('.yaml') || type.endsWith('.template');
}

/** fnmatch.fnmatchcase for the `*`, `?` and `[...]` patterns resource sections use. */
function fnmatch(name: string, pattern: string): boolean {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        const body = pattern.slice(i + 1, end);
        re += `[${body.startsWith('!') ? `^${body.slice(1)}` : body.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\/]/g, '\\$&');
  }
  return new RegExp(`${re}$`, 's').test(name);
}

export interface ResolvedType {
  /** The type after registry mappings (aliases, wildcards, per-resource overrides). */
  readonly type: string;
  /** Set when the type is a template: the `files` key holding it. */
  readonly template?: string;
}

const MAX_MAPPING_DEPTH = 32;

/**
 * The environment's resource_registry: aliases (`OS::Foo: OS::Heat::None`), template
 * resources (`OS::Foo: foo.yaml`), wildcards (`OS::Networking*: OS::Neutron*`) and
 * per-resource sections (`resources: {name-pattern: {OS::Foo: bar.yaml, hooks: ...}}`).
 */
export class ResourceRegistry {
  private readonly exact = new Map<string, string>();
  private readonly globs: [prefix: string, target: string][] = [];
  private readonly perResource: [pattern: string, section: Record<string, unknown>][] = [];

  constructor(readonly raw: Record<string, unknown> = {}) {
    for (const [key, value] of Object.entries(raw)) {
      if (key === 'base_url') continue; // heatclient's base for relative template paths
      if (key === 'resources') {
        if (isMap(value)) for (const [pattern, section] of Object.entries(value)) if (isMap(section)) this.perResource.push([pattern, section]);
      } else if (typeof value === 'string') {
        if (key.endsWith('*')) this.globs.push([key.slice(0, -1), value]);
        else this.exact.set(key, value);
      }
    }
    // Longest (most specific) wildcard first, as Heat sorts them.
    this.globs.sort((a, b) => b[0].length - a[0].length);
  }

  /** Resolves a resource's declared type; `resourceName` enables the per-resource sections. */
  resolve(type: string, resourceName?: string): ResolvedType {
    let current = type;
    const seen = new Set<string>();
    for (let depth = 0; depth < MAX_MAPPING_DEPTH; depth++) {
      const next = this.step(current, resourceName, seen);
      if (next === undefined) return isTemplateName(current) ? { type: current, template: current } : { type: current };
      current = next;
    }
    throw new KilnError('ENVIRONMENT_INVALID', `resource_registry maps "${type}" in a loop`, { path: 'resource_registry' });
  }

  private step(type: string, resourceName: string | undefined, seen: Set<string>): string | undefined {
    if (resourceName !== undefined) {
      for (const [pattern, section] of this.perResource) {
        const target = section[type];
        const key = `${pattern}\u0000${type}`;
        if (typeof target === 'string' && !seen.has(key) && fnmatch(resourceName, pattern)) {
          seen.add(key);
          return target === type ? undefined : target;
        }
      }
    }
    const target = this.exact.get(type);
    if (target !== undefined) {
      if (seen.has(type)) return undefined;
      seen.add(type);
      return target === type ? undefined : target;
    }
    for (const [prefix, value] of this.globs) {
      if (!type.startsWith(prefix)) continue;
      // OS::Networking*: OS::Neutron* must not map its own output again.
      if (value.endsWith('*') && type.startsWith(value.slice(0, -1))) continue;
      const key = `${prefix}*\u0000${type}`;
      if (seen.has(key)) continue;
      seen.add(key);
      return value.endsWith('*') ? value.slice(0, -1) + type.slice(prefix.length) : value;
    }
    return undefined;
  }

  /** The per-resource hooks (`pre-create`, ...) that apply to a resource name. */
  hooks(resourceName: string): string[] {
    const out: string[] = [];
    for (const [pattern, section] of this.perResource) {
      if (!fnmatch(resourceName, pattern)) continue;
      const h = section.hooks;
      for (const hook of Array.isArray(h) ? h : h === undefined || h === null ? [] : [h]) out.push(pyStr(hook));
    }
    return out;
  }

  /** The per-resource restricted actions (`update`, `replace`) that apply to a resource name. */
  restrictedActions(resourceName: string): string[] {
    const out: string[] = [];
    for (const [pattern, section] of this.perResource) {
      if (!fnmatch(resourceName, pattern)) continue;
      const r = section.restricted_actions;
      for (const a of Array.isArray(r) ? r : r === undefined || r === null ? [] : [r]) out.push(pyStr(a));
    }
    return out;
  }
}

/** A checked, merged environment. */
export class Environment {
  readonly params: Record<string, unknown>;
  readonly paramDefaults: Record<string, unknown>;
  readonly registry: ResourceRegistry;
  readonly eventSinks: unknown[];
  readonly encryptedParamNames: unknown[];

  constructor(input: EnvironmentInput = {}) {
    const env = checkEnvironment(input);
    this.params = { ...(env.parameters ?? {}) };
    this.paramDefaults = { ...(env.parameter_defaults ?? {}) };
    this.registry = new ResourceRegistry(env.resource_registry ?? {});
    this.eventSinks = [...(env.event_sinks ?? [])];
    this.encryptedParamNames = [...(env.encrypted_param_names ?? [])];
  }

  /** Environment.user_env_as_dict, the shape template-validate returns. */
  toUserDict(extraTemplates: Iterable<string> = []): Record<string, unknown> {
    const registry: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(this.registry.raw)) if (k !== 'resources' && k !== 'base_url' && v !== null) registry[k] = v;
    for (const t of extraTemplates) if (!(t in registry)) registry[t] = t;
    registry.resources = isMap(this.registry.raw.resources) ? this.registry.raw.resources : {};
    return {
      event_sinks: this.eventSinks,
      parameter_defaults: this.paramDefaults,
      parameters: this.params,
      resource_registry: registry,
    };
  }
}
