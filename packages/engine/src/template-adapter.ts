/**
 * The TemplateAdapter over @kiln/template: planning builds the StackDefinition once per
 * generation; resolving a single expression (a resource's properties, an output) builds a tiny
 * stack holding that expression as an output, the scope's parameters, conditions and files, and
 * stubs for the referenced resources whose data comes from the dependency messages. That keeps
 * the whole function layer (all intrinsics, all versions) in @kiln/template, with no second
 * implementation here. (A direct `resolveValue(raw, scope, source)` export from @kiln/template
 * would make this cheaper; see docs/engine.md.)
 */
import { KilnError } from '@kiln/core';
import {
  Environment,
  PSEUDO_PARAMETERS,
  StackDefinition,
  Template,
  collectPending,
  pending,
  parseEnvironmentText,
  parseTemplateText,
  type EnvironmentInput,
  type ResourceDataSource,
} from '@kiln/template';
import type { AttributesRead, DepView, NestedTemplate, PlannedResource, Resolved, StackPlan, TemplateAdapter } from './spec.js';
import type { ResolveScope, StackSpec } from './types.js';

/** A spec as Heat's stack show describes it. */
export interface StackDescription {
  readonly description: string;
  readonly parameters: Record<string, unknown>;
  /** Output key -> its description. */
  readonly outputs: Record<string, string | undefined>;
}

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function templateObject(t: unknown): Record<string, unknown> {
  if (typeof t === 'string') return parseTemplateText(t);
  if (isMap(t)) return t;
  throw new KilnError('TEMPLATE_INVALID', 'The template must be a map or a YAML/JSON text');
}

function environmentInput(e: unknown): EnvironmentInput | undefined {
  if (e === undefined || e === null) return undefined;
  if (typeof e === 'string') return parseEnvironmentText(e, 'environment');
  return e as EnvironmentInput;
}

/** Names referenced by get_resource/get_attr (and CFN Ref/Fn::GetAtt) inside a raw expression. */
export function referencedNames(raw: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(raw)) {
    for (const v of raw) referencedNames(v, out);
  } else if (isMap(raw)) {
    const keys = Object.keys(raw);
    if (keys.length === 1) {
      const k = keys[0]!;
      const v = raw[k];
      if ((k === 'get_resource' || k === 'Ref') && typeof v === 'string') out.add(v);
      else if ((k === 'get_attr' || k === 'Fn::GetAtt') && Array.isArray(v) && typeof v[0] === 'string') out.add(v[0]);
    }
    for (const v of Object.values(raw)) referencedNames(v, out);
  }
  return out;
}

/**
 * The attribute names read through get_attr (and CFN Fn::GetAtt) inside a raw expression, by
 * resource: `true` when some read names no literal attribute (the whole resource, or a computed
 * name), so every attribute may be read.
 */
export function attributesReadIn(raw: unknown, out = new Map<string, Set<string> | true>()): Map<string, Set<string> | true> {
  if (Array.isArray(raw)) {
    for (const v of raw) attributesReadIn(v, out);
  } else if (isMap(raw)) {
    const keys = Object.keys(raw);
    if (keys.length === 1 && (keys[0] === 'get_attr' || keys[0] === 'Fn::GetAtt')) {
      const v = raw[keys[0]!];
      if (Array.isArray(v) && typeof v[0] === 'string') {
        const have = out.get(v[0]);
        if (typeof v[1] !== 'string') out.set(v[0], true);
        else if (have !== true) out.set(v[0], (have ?? new Set<string>()).add(v[1]));
      }
    }
    for (const v of Object.values(raw)) attributesReadIn(v, out);
  }
  return out;
}

/**
 * What of a resolve scope a raw expression reads: the `files` keys (get_file) and the parameter
 * names (get_param, and CFN Ref, which may name one); null when one of them is computed (any may
 * be read).
 */
export interface ScopeReads {
  files: Set<string> | null;
  params: Set<string> | null;
}

export function scopeReadIn(raw: unknown, out: ScopeReads = { files: new Set(), params: new Set() }): ScopeReads {
  if (Array.isArray(raw)) {
    for (const v of raw) scopeReadIn(v, out);
  } else if (isMap(raw)) {
    const keys = Object.keys(raw);
    if (keys.length === 1) {
      const k = keys[0]!;
      const v = raw[k];
      if (k === 'get_file') {
        if (typeof v === 'string') out.files?.add(v);
        else out.files = null;
      } else if (k === 'get_param' || k === 'Ref') {
        const name = Array.isArray(v) && k === 'get_param' ? v[0] : v;
        if (typeof name === 'string') out.params?.add(name);
        else out.params = null;
      }
    }
    for (const v of Object.values(raw)) scopeReadIn(v, out);
  }
  return out;
}

/** A get_file whose argument is a function call or a list, in template text. */
const COMPUTED_GET_FILE = /get_file"?\s*:\s*[{[]/;

/**
 * The part of a files map a nested template's stack can read: every file whose key is named in
 * the template or the environment (get_file, a template type, a registry entry), and so on through
 * the files kept (a nested template's own nested templates). A substring match over-keeps at
 * worst; a get_file with a computed key keeps the whole map. The nested template itself is sent
 * parsed, so its own text is dropped unless something names it.
 */
export function filesNeeded(template: unknown, environment: unknown, files: Record<string, string>): Record<string, string> {
  const keys = Object.keys(files);
  if (keys.length === 0 || scopeReadIn(template).files === null) return files;
  const kept: Record<string, string> = {};
  const texts = [JSON.stringify(template), JSON.stringify(environment ?? null)];
  for (let i = 0; i < texts.length; i++) {
    const text = texts[i]!;
    // Named in JSON (escaped) or in a file's own text (as is).
    const json = i < 2;
    for (const k of keys) {
      if (Object.hasOwn(kept, k) || !text.includes(json ? JSON.stringify(k).slice(1, -1) : k)) continue;
      const content = files[k]!;
      if (COMPUTED_GET_FILE.test(content)) return files;
      kept[k] = content;
      texts.push(content);
    }
  }
  return kept;
}

/** Every intrinsic function name of any HOT version (CFN forms start with `Fn::`). */
const FUNCTION_NAMES = new Set([
  'get_param', 'get_resource', 'get_attr', 'get_file', 'list_join', 'str_replace', 'str_replace_strict',
  'str_replace_vstrict', 'str_split', 'resource_facade', 'repeat', 'digest', 'map_merge', 'map_replace',
  'if', 'yaql', 'equals', 'not', 'and', 'or', 'filter', 'make_url', 'list_concat', 'list_concat_unique',
  'contains', 'Ref',
]);

/** Whether a raw value holds anything that could be a function call (a one-key map named like one). */
function mayCallFunctions(raw: unknown): boolean {
  if (Array.isArray(raw)) return raw.some(mayCallFunctions);
  if (isMap(raw)) {
    const keys = Object.keys(raw);
    if (keys.length === 1 && (FUNCTION_NAMES.has(keys[0]!) || keys[0]!.startsWith('Fn::'))) return true;
    return keys.some((k) => mayCallFunctions(raw[k]));
  }
  return false;
}

/** A resource's entry of `attributesReadIn` as the plan states it (sorted names; false: none read). */
function attributesReadOf(read: Set<string> | true | undefined): AttributesRead | false {
  return read === undefined ? false : read === true ? true : [...read].sort();
}

function paramType(v: unknown): string {
  if (typeof v === 'number') return 'number';
  if (typeof v === 'boolean') return 'boolean';
  if (typeof v === 'string') return 'string';
  return 'json';
}

/** A raw template (HOT or CFN) without its resources section. */
function withoutResources(raw: Record<string, unknown>): Record<string, unknown> {
  const out = { ...raw };
  delete out.resources;
  delete out.Resources;
  return out;
}

export class HotTemplateAdapter implements TemplateAdapter {
  /**
   * What Heat's stack show tells about a spec: its description, every parameter's value (hidden
   * ones masked, pseudo parameters included) and each output's description.
   */
  describe(spec: StackSpec, identity: { stackId: string; stackName: string; tenant: string }): StackDescription {
    // Neither needs the resources: checking and defining 10,000 of them took 120-600 ms, and each
    // generation of a stack under a stream of updates was described anew.
    const template = Template.from(withoutResources(templateObject(spec.template)));
    const stack = new StackDefinition(Template.from({ ...template.raw, outputs: {} }), {
      environment: new Environment(environmentInput(spec.environment)),
      params: spec.parameters ?? {},
      files: spec.files ?? {},
      identity: { stackId: identity.stackId, stackName: identity.stackName, projectId: identity.tenant },
    });
    const parameters: Record<string, unknown> = {};
    for (const name of PSEUDO_PARAMETERS) parameters[name] = stack.parameters.get(name);
    for (const name of stack.parameters.names()) {
      try {
        parameters[name] = stack.parameters.entry(name)?.schema.hidden ? '******' : stack.parameters.get(name);
      } catch {
        parameters[name] = null;
      }
    }
    const outputs: Record<string, string | undefined> = {};
    for (const [key, o] of template.outputs) outputs[key] = typeof o.description === 'string' ? o.description : undefined;
    return { description: template.description, parameters, outputs };
  }

  plan(spec: StackSpec, identity: { stackId: string; stackName: string }): StackPlan {
    const files = spec.files ?? {};
    const template = Template.from(templateObject(spec.template));
    const env = environmentInput(spec.environment);
    const stack = new StackDefinition(template, {
      environment: new Environment(env),
      params: spec.parameters ?? {},
      files,
      identity: { stackId: identity.stackId, stackName: identity.stackName },
      ...(spec.facade ? { facade: spec.facade } : {}),
    });
    const params: Record<string, unknown> = {};
    for (const name of stack.parameters.names()) {
      try {
        params[name] = stack.parameters.get(name);
      } catch {
        // A parameter without a value is reported when (if) a resource reads it.
      }
    }
    const scope: ResolveScope = {
      version: stack.version,
      params,
      conditions: Object.fromEntries(stack.conditions),
      files,
      stackId: identity.stackId,
      stackName: identity.stackName,
      ...(spec.facade ? { facade: spec.facade } : {}),
    };
    // The attributes something reads, by resource: only these travel in `ready` (groups collect
    // member data only when any is read).
    const attrsRead = new Map<string, Set<string> | true>();
    for (const def of stack.resources.values()) attributesReadIn([def.rawProperties, def.rawMetadata, def.rawUpdatePolicy], attrsRead);
    for (const o of stack.outputs.values()) if (o.enabled) attributesReadIn(template.outputs.get(o.name)?.value, attrsRead);
    const resources: PlannedResource[] = [];
    const nestedEnv = { parameter_defaults: stack.environment.paramDefaults, resource_registry: stack.environment.registry.raw };
    const nested = (key: string, path: string): NestedTemplate => {
      const text = files[key];
      if (text === undefined) throw new KilnError('FILE_MISSING', `Could not fetch remote template "${key}": not in the files map`, { path });
      const parsed = parseTemplateText(text, { name: key });
      return { template: parsed, files: filesNeeded(parsed, nestedEnv, files), environment: nestedEnv };
    };
    for (const def of stack.resources.values()) {
      const nestedTemplate = def.resolved.template !== undefined ? nested(def.resolved.template, `resources.${def.name}.type`) : undefined;
      let groupMember: PlannedResource['groupMember'];
      const isAsg = def.resolved.type === 'OS::Heat::AutoScalingGroup';
      const memberDef = isMap(def.rawProperties) ? def.rawProperties[isAsg ? 'resource' : 'resource_def'] : undefined;
      if ((isAsg || def.resolved.type === 'OS::Heat::ResourceGroup') && isMap(memberDef) && typeof memberDef.type === 'string') {
        const m = stack.environment.registry.resolve(memberDef.type);
        groupMember = m.template !== undefined ? { type: m.type, nestedTemplate: nested(m.template, `resources.${def.name}.properties.resource_def.type`) } : { type: m.type };
      }
      resources.push({
        name: def.name,
        type: nestedTemplate ? '$template' : def.resolved.type,
        properties: def.rawProperties ?? {},
        requires: def.requires,
        deletionPolicy: def.deletionPolicy,
        updatePolicy: def.rawUpdatePolicy ?? null,
        metadata: def.rawMetadata ?? null,
        attributesRead: attributesReadOf(attrsRead.get(def.name)),
        ...(groupMember ? { groupMember } : {}),
        ...(nestedTemplate ? { nestedTemplate } : {}),
      });
    }
    const outputs: Record<string, { value: unknown; description?: string; requires: string[] }> = {};
    for (const o of stack.outputs.values()) {
      const raw = o.enabled ? template.outputs.get(o.name)?.value : null;
      outputs[o.name] = {
        value: raw ?? null,
        ...(o.description !== undefined ? { description: o.description } : {}),
        requires: [...referencedNames(raw)].filter((n) => stack.resources.has(n)),
      };
    }
    return { resources, scope, outputs };
  }

  resolve(expr: unknown, scope: ResolveScope, deps: DepView): Resolved {
    if (!mayCallFunctions(expr)) return { value: expr };
    const names = [...referencedNames(expr)];
    const parameters: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(scope.params)) parameters[k] = { type: paramType(v) };
    const raw: Record<string, unknown> = {
      heat_template_version: scope.version,
      parameters,
      resources: Object.fromEntries(names.map((n) => [n, { type: 'OS::Heat::None' }])),
      outputs: { value: { value: expr } },
    };
    if (scope.version >= '2016-10-14' && Object.keys(scope.conditions).length > 0) {
      // Conditions are already evaluated; true/false stand-ins that any version accepts.
      raw.conditions = Object.fromEntries(Object.entries(scope.conditions).map(([k, v]) => [k, v ? { equals: [1, 1] } : { equals: [1, 2] }]));
    }
    const stack = new StackDefinition(Template.from(raw), {
      params: scope.params,
      files: scope.files,
      identity: { stackId: scope.stackId, stackName: scope.stackName },
      ...(scope.facade ? { facade: scope.facade } : {}),
    });
    const source: ResourceDataSource = {
      ref: (n) => deps.ref(n) ?? pending(`get_resource: ${n}`),
      attr: (n, a, path) => {
        const v = deps.attr(n, a, path);
        return v === undefined ? pending(`get_attr: [${n}, ${a}]`) : v;
      },
      allAttrs: (n) => deps.allAttrs(n) ?? pending(`get_attr: [${n}]`),
    };
    const value = stack.resolveOutputs(source).value;
    const pendings = collectPending(value);
    if (pendings.length > 0) return { pending: pendings[0]! };
    return { value };
  }
}
