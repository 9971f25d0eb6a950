import { KilnError } from '@kiln/core';
import type { FunctionHost, HotVersion, Pending } from './functions/contract.js';
import { evaluateCondition, evaluateConditions, isPending, parseSnippet, pending, resolveSnippet, snippetReferences, validateSnippet, type Snippet } from './fn.js';
import { Environment, isTemplateName, type ResolvedType } from './environment.js';
import { DependencyGraph } from './graph.js';
import { CustomConstraintRegistry, Parameters, type StackIdentity } from './parameters.js';
import { isMap, pyStr } from './functions/python.js';
import { parseTemplateText } from './source.js';
import { Template, type RawResource } from './template.js';
import { ResourceTypeRegistry } from './types.js';

export type DeletionPolicy = 'Delete' | 'Retain' | 'Snapshot';

/** A resource of the stack whose condition holds, with its parsed (unresolved) sections. */
export interface ResourceDefinition {
  readonly name: string;
  /** The type as written in the template. */
  readonly type: string;
  /** The type after the environment's resource_registry. */
  readonly resolved: ResolvedType;
  readonly properties: Snippet | undefined;
  readonly metadata: Snippet | undefined;
  readonly updatePolicy: Snippet | undefined;
  readonly rawProperties: unknown;
  readonly rawMetadata: unknown;
  readonly rawUpdatePolicy: unknown;
  /** Explicit depends_on, minus resources whose condition is false. */
  readonly dependsOn: readonly string[];
  /** Every resource this one needs first: depends_on plus get_resource/get_attr references. */
  readonly requires: readonly string[];
  readonly deletionPolicy: DeletionPolicy;
  readonly externalId: string | undefined;
  readonly description: string | undefined;
  readonly hooks: readonly string[];
  readonly restrictedActions: readonly string[];
}

export interface OutputDefinition {
  readonly name: string;
  readonly description: string | undefined;
  /** Undefined when the output's condition is false (its value is then null). */
  readonly value: Snippet | undefined;
  readonly enabled: boolean;
}

/**
 * Where the values that only exist once resources are deployed come from. The engine
 * supplies real references and attributes; `pendingSource` reports everything as pending.
 */
export interface ResourceDataSource {
  ref(name: string): unknown;
  /** `path` is non-empty only for 2014-10-16+ templates; the source applies it to the attribute. */
  attr(name: string, attr: string, path: readonly unknown[]): unknown;
  allAttrs(name: string): unknown;
}

export interface ResolvedResource {
  readonly name: string;
  readonly type: string;
  readonly properties: Record<string, unknown>;
  readonly metadata: unknown;
  readonly updatePolicy: unknown;
  /** The references in properties/metadata not known yet (e.g. `get_attr: [server, first_address]`). */
  readonly pending: readonly string[];
}

export interface StackOptions {
  /** The merged environment (see mergeEnvironments). */
  environment?: Environment;
  /** Request parameters; they win over the environment's `parameters`. */
  params?: Record<string, unknown>;
  /** The `files` map: get_file contents and nested templates by key. */
  files?: Readonly<Record<string, string>>;
  identity?: StackIdentity;
  types?: ResourceTypeRegistry;
  customConstraints?: CustomConstraintRegistry;
  /** False for template-validate: parameter values are not required nor checked. */
  validateValues?: boolean;
  /** The parent resource's sections, for resource_facade in a nested stack. */
  facade?: { metadata?: unknown; deletion_policy?: unknown; update_policy?: unknown };
  /** Maximum template size in bytes for nested templates read from `files`. */
  maxTemplateBytes?: number;
  /** Nesting depth of this stack (guards against templates that nest themselves). */
  depth?: number;
}

const MAX_NESTING_DEPTH = 5;

const DELETION_POLICIES: Record<string, DeletionPolicy> = { Delete: 'Delete', Retain: 'Retain', Snapshot: 'Snapshot' };
const DELETION_ALIASES: Record<string, DeletionPolicy> = { delete: 'Delete', retain: 'Retain', snapshot: 'Snapshot' };

function formatRef(name: string, attr: string, path: readonly unknown[]): string {
  return `get_attr: [${[name, attr, ...path].map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(', ')}]`;
}

/** A source where nothing is deployed: every reference and attribute is pending. */
export const pendingSource: ResourceDataSource = {
  ref: (name) => pending(`get_resource: ${name}`),
  attr: (name, attr, path) => pending(formatRef(name, attr, path)),
  allAttrs: (name) => pending(`get_attr: [${name}]`),
};

/** Heat's select_from_attribute: follow a path into an attribute value; null when it leads nowhere. */
export function selectPath(value: unknown, path: readonly unknown[]): unknown {
  let cur = value;
  for (const key of path) {
    if (isPending(cur)) return cur;
    if (Array.isArray(cur) && typeof key === 'number') cur = cur[key < 0 ? cur.length + key : key];
    else if (isMap(cur) && (typeof key === 'string' || typeof key === 'number')) cur = cur[String(key)];
    else return null;
    if (cur === undefined) return null;
  }
  return cur;
}

/** Every pending reference in a resolved value. */
export function collectPending(value: unknown, out: string[] = []): string[] {
  if (isPending(value)) out.push(value.pending);
  else if (Array.isArray(value)) for (const v of value) collectPending(v, out);
  else if (isMap(value)) for (const v of Object.values(value)) collectPending(v, out);
  return out;
}

function fieldTypeError(name: string, key: string, typename: string): KilnError {
  return new KilnError('TEMPLATE_INVALID', `Resource ${name} ${key} type must be ${typename}`, { path: `resources.${name}.${key}` });
}

function isFunctionCall(v: unknown): boolean {
  return isMap(v) && Object.keys(v).length === 1;
}

/** The validated, parsed stack: parameters, conditions, enabled resources, outputs and graph. */
export class StackDefinition {
  readonly version: HotVersion;
  readonly parameters: Parameters;
  readonly conditions: ReadonlyMap<string, boolean>;
  readonly resources: ReadonlyMap<string, ResourceDefinition>;
  /** Resources whose condition is false (left out of the stack). */
  readonly disabled: ReadonlySet<string>;
  readonly outputs: ReadonlyMap<string, OutputDefinition>;
  readonly graph: DependencyGraph;
  readonly environment: Environment;
  readonly files: Readonly<Record<string, string>>;
  /** Template resources (files keys) used by this stack, for the validate response. */
  readonly templateTypes: ReadonlySet<string>;
  /** Nested stacks of template resources, by resource name (parsed with the given properties). */
  private readonly nestedTemplates = new Map<string, Template>();

  constructor(
    readonly template: Template,
    readonly options: StackOptions = {},
  ) {
    this.version = template.version;
    this.environment = options.environment ?? new Environment();
    this.files = options.files ?? {};
    this.parameters = new Parameters(template.paramSchemas, options.identity, {
      values: { ...this.environment.params, ...(options.params ?? {}) },
      defaults: this.environment.paramDefaults,
      customConstraints: options.customConstraints,
      validateValues: options.validateValues ?? true,
    });
    const paramHost = this.host(pendingSource, new Map());
    this.conditions = evaluateConditions(template.conditions, this.version, paramHost);
    const condHost = this.host(pendingSource, this.conditions);

    const resources = new Map<string, ResourceDefinition>();
    const disabled = new Set<string>();
    const templateTypes = new Set<string>();
    const parsedDefs: { raw: RawResource; type: string; enabled: boolean }[] = [];
    for (const raw of template.resources.values()) {
      const type = raw.type;
      if (typeof type !== 'string') throw fieldTypeError(raw.name, 'type', 'string');
      let enabled = true;
      if (raw.condition !== undefined && raw.condition !== null) {
        const c = raw.condition;
        if (!(typeof c === 'string' || typeof c === 'boolean' || isMap(c))) throw fieldTypeError(raw.name, 'condition', 'string_or_boolean');
        enabled = evaluateCondition(c, this.version, `resources.${raw.name}.condition`, this.conditions as Map<string, boolean>, paramHost);
      }
      if (!enabled) disabled.add(raw.name);
      parsedDefs.push({ raw, type, enabled });
    }
    this.disabled = disabled;

    for (const { raw, type, enabled } of parsedDefs) {
      if (!enabled) continue;
      const def = this.defineResource(raw, type, condHost);
      if (isTemplateName(type)) templateTypes.add(type);
      resources.set(raw.name, def);
    }
    this.resources = resources;
    this.templateTypes = templateTypes;

    // References need the full set of enabled resources, hence a second pass.
    const requires: string[][] = [];
    for (const def of resources.values()) requires.push(this.checkReferences(def, condHost));
    this.resources = new Map([...resources.values()].map((d, i) => [d.name, { ...d, requires: requires[i]! }]));

    const outputs = new Map<string, OutputDefinition>();
    for (const raw of template.outputs.values()) {
      let enabled = true;
      if (raw.condition !== undefined && raw.condition !== null) {
        enabled = evaluateCondition(raw.condition, this.version, `outputs.${raw.name}.condition`, this.conditions as Map<string, boolean>, condHost);
      }
      const description = raw.description === undefined || raw.description === null ? undefined : pyStr(raw.description);
      if (!enabled) {
        outputs.set(raw.name, { name: raw.name, description, value: undefined, enabled });
        continue;
      }
      const value = parseSnippet(raw.value, this.version, `outputs.${raw.name}.value`);
      this.referencedResources(value);
      validateSnippet(value, condHost);
      outputs.set(raw.name, { name: raw.name, description, value, enabled });
    }
    this.outputs = outputs;

    const names = [...this.resources.keys()];
    this.graph = new DependencyGraph(
      names,
      names.map((n) => this.resources.get(n)!.requires),
    );
    this.checkTypes();
  }

  private unknownReference(name: string, refPath: string): KilnError {
    const where = refPath.replace(/\.(get_resource|get_attr)$/, '');
    return new KilnError('REFERENCE_UNKNOWN', `The specified reference "${name}" (in ${where}) is incorrect.`, { path: refPath });
  }

  private defineResource(raw: RawResource, type: string, condHost: FunctionHost): ResourceDefinition {
    const name = raw.name;
    const base = `resources.${name}`;
    const section = (key: 'properties' | 'metadata' | 'update_policy'): Snippet | undefined => {
      const v = raw[key];
      if (v === undefined || v === null) return undefined;
      if (!isMap(v)) throw fieldTypeError(name, key, 'object');
      return parseSnippet(v, this.version, `${base}.${key}`);
    };
    const properties = section('properties');
    const metadata = section('metadata');
    const updatePolicy = section('update_policy');

    let dependsOn: string[] = [];
    const dep = raw.depends_on;
    if (typeof dep === 'string') dependsOn = [dep];
    else if (Array.isArray(dep)) {
      for (const d of dep) {
        if (typeof d !== 'string') throw new KilnError('TEMPLATE_INVALID', `Resource ${name} depends_on must be a list of strings`, { path: `${base}.depends_on` });
      }
      dependsOn = dep as string[];
    } else if (dep !== undefined && dep !== null) throw fieldTypeError(name, 'depends_on', 'list or string');

    let deletionPolicy: DeletionPolicy = 'Delete';
    if (raw.deletion_policy !== undefined && raw.deletion_policy !== null) {
      const dp = raw.deletion_policy;
      if (typeof dp !== 'string' && !isFunctionCall(dp)) throw fieldTypeError(name, 'deletion_policy', 'string');
      const value = typeof dp === 'string' ? dp : resolveSnippet(parseSnippet(dp, this.version, `${base}.deletion_policy`), condHost);
      const policy = typeof value === 'string' ? DELETION_POLICIES[value] ?? (this.version >= '2016-10-14' ? DELETION_ALIASES[value] : undefined) : undefined;
      if (!policy) throw new KilnError('TEMPLATE_INVALID', `Invalid deletion policy "${pyStr(value)}"`, { path: `${base}.deletion_policy` });
      deletionPolicy = policy;
    }

    let externalId: string | undefined;
    if (raw.external_id !== undefined && raw.external_id !== null) {
      const ext = raw.external_id;
      if (typeof ext !== 'string' && !isFunctionCall(ext)) throw fieldTypeError(name, 'external_id', 'string');
      const value = typeof ext === 'string' ? ext : resolveSnippet(parseSnippet(ext, this.version, `${base}.external_id`), condHost);
      if (typeof value !== 'string') throw fieldTypeError(name, 'external_id', 'string');
      externalId = value;
    }
    if (raw.description !== undefined && raw.description !== null && typeof raw.description !== 'string') throw fieldTypeError(name, 'description', 'string');

    const registry = this.environment.registry;
    return {
      name,
      type,
      resolved: registry.resolve(type, name),
      properties,
      metadata,
      updatePolicy,
      rawProperties: raw.properties,
      rawMetadata: raw.metadata,
      rawUpdatePolicy: raw.update_policy,
      dependsOn: dependsOn.filter((d) => !this.disabled.has(d)),
      requires: [],
      deletionPolicy,
      externalId,
      description: raw.description as string | undefined,
      hooks: registry.hooks(name),
      restrictedActions: registry.restrictedActions(name),
    };
  }

  /** The resources `def` needs: depends_on plus function references in properties and metadata. */
  private checkReferences(def: ResourceDefinition, host: FunctionHost): string[] {
    const out = new Set<string>();
    const raw = this.template.resources.get(def.name)!;
    const explicit = typeof raw.depends_on === 'string' ? [raw.depends_on] : ((raw.depends_on as string[] | undefined) ?? []);
    for (const d of explicit) {
      if (this.resources.has(d)) out.add(d);
      else if (!this.disabled.has(d)) {
        throw new KilnError('REFERENCE_UNKNOWN', `The specified reference "${d}" (in ${def.name}) is incorrect.`, { path: `resources.${def.name}.depends_on` });
      }
    }
    for (const snippet of [def.properties, def.metadata]) {
      if (!snippet) continue;
      for (const name of this.referencedResources(snippet)) out.add(name);
      validateSnippet(snippet, host);
    }
    if (def.updatePolicy) validateSnippet(def.updatePolicy, host);
    // An adopted (external) resource is never created, so it waits for nothing (as Heat).
    if (def.externalId !== undefined) {
      if (explicit.length > 0) {
        throw new KilnError('TEMPLATE_INVALID', `Invalid dependency with external ${def.type} resource: ${def.externalId}`, { path: `resources.${def.name}.depends_on` });
      }
      return [];
    }
    return [...out];
  }

  /**
   * The resources a snippet refers to (only the chosen branch of each `if`), each checked to
   * exist: get_resource, get_attr, and CFN Ref when it names a resource.
   */
  private referencedResources(snippet: Snippet): string[] {
    const refs = snippetReferences(snippet, (name) => {
      const v = this.conditions.get(name);
      if (v === undefined) throw new KilnError('CONDITION_INVALID', `Invalid condition "${name}"`);
      return v;
    });
    const out: string[] = [];
    for (const ref of refs.resources) {
      if (!this.resources.has(ref.name)) throw this.unknownReference(ref.name, ref.path);
      out.push(ref.name);
    }
    for (const ref of refs.refs) if (this.resources.has(ref.name)) out.push(ref.name);
    this.checkAttributes(snippet);
    return out;
  }

  /** get_attr names against registered attribute schemas: Heat's InvalidTemplateAttribute. */
  private checkAttributes(snippet: Snippet): void {
    const types = this.options.types;
    if (!types) return;
    const walk = (s: Snippet): void => {
      switch (s.kind) {
        case 'list':
          s.items.forEach(walk);
          return;
        case 'map':
          for (const [, item] of s.entries) walk(item);
          return;
        case 'if': {
          const cond = s.cond.kind === 'literal' ? s.cond.value : undefined;
          const chosen = typeof cond === 'boolean' ? cond : typeof cond === 'string' ? this.conditions.get(cond) : undefined;
          if (chosen !== false) walk(s.then);
          if (chosen !== true && s.otherwise) walk(s.otherwise);
          return;
        }
        case 'call': {
          walk(s.args);
          if (s.fn !== 'get_attr') return;
          // Literal arguments stay raw data; arguments holding calls are a list node.
          const args = s.args.kind === 'literal' ? s.args.value : s.args.kind === 'list' ? s.args.items.map((i) => (i.kind === 'literal' ? i.value : undefined)) : undefined;
          if (!Array.isArray(args)) return;
          const [res, attr] = args as unknown[];
          if (typeof res !== 'string' || typeof attr !== 'string') return;
          const def = this.resources.get(res);
          const known = def && def.resolved.template === undefined ? types.get(def.resolved.type)?.attributes : undefined;
          if (known && !known.includes(attr)) {
            throw new KilnError('REFERENCE_UNKNOWN', `The Referenced Attribute (${res} ${attr}) is incorrect.`, { path: s.path });
          }
          return;
        }
        default:
          return;
      }
    };
    walk(snippet);
  }

  /** Property names against registered schemas or nested templates' parameters; unknown types when the registry is authoritative. */
  private checkTypes(): void {
    const types = this.options.types;
    for (const def of this.resources.values()) {
      const props = isMap(def.rawProperties) ? def.rawProperties : undefined;
      const propsPath = `resources.${def.name}.properties`;
      if (def.resolved.template !== undefined) {
        const nested = this.nestedTemplate(def);
        if (!nested || !props) continue;
        for (const key of Object.keys(props)) {
          if (!nested.paramSchemas.has(key)) throw new KilnError('PROPERTY_INVALID', `Unknown Property ${key}`, { path: propsPath });
        }
        continue;
      }
      const schema = types?.get(def.resolved.type);
      if (!schema) {
        if (types?.authoritative) {
          throw new KilnError('RESOURCE_TYPE_UNKNOWN', `The Resource Type (${def.resolved.type}) could not be found.`, { path: `resources.${def.name}.type` });
        }
        continue;
      }
      if (!schema.properties || (def.rawProperties !== undefined && !props)) continue;
      for (const key of Object.keys(props ?? {})) {
        if (!(key in schema.properties)) throw new KilnError('PROPERTY_INVALID', `Unknown Property ${key}`, { path: propsPath });
      }
      for (const [key, p] of Object.entries(schema.properties)) {
        if (p.required && (!props || props[key] === undefined)) throw new KilnError('PROPERTY_INVALID', `Property ${key} not assigned`, { path: propsPath });
      }
    }
  }

  /** The nested template of a template resource, when its file is in the `files` map. */
  nestedTemplate(def: ResourceDefinition): Template | undefined {
    return def.resolved.template === undefined ? undefined : this.templateFile(def.resolved.template, `resources.${def.name}.type`);
  }

  /** A template from the `files` map, parsed once per stack. */
  templateFile(key: string, path: string): Template | undefined {
    const cached = this.nestedTemplates.get(key);
    if (cached) return cached;
    const text = this.files[key];
    if (text === undefined) {
      if (this.options.types?.authoritative) throw new KilnError('FILE_MISSING', `Could not fetch remote template "${key}": not in the files map`, { path });
      return undefined;
    }
    if ((this.options.depth ?? 0) >= MAX_NESTING_DEPTH) throw new KilnError('TEMPLATE_INVALID', `Recursion depth exceeds ${MAX_NESTING_DEPTH}.`, { path });
    const t = Template.from(parseTemplateText(text, { name: key, maxBytes: this.options.maxTemplateBytes }));
    this.nestedTemplates.set(key, t);
    return t;
  }

  /** The stack a template resource creates, given its resolved properties as parameters. */
  nestedStack(name: string, properties: Record<string, unknown>, opts: { validateValues?: boolean } = {}): StackDefinition | undefined {
    const def = this.resources.get(name);
    const t = def && this.nestedTemplate(def);
    if (!def || !t) return undefined;
    return this.childStack(t, properties, { metadata: def.rawMetadata, deletion_policy: def.deletionPolicy, update_policy: def.rawUpdatePolicy }, opts);
  }

  /** A nested stack of template `t` whose parameters are `properties` (pending values left out). */
  childStack(t: Template, properties: Record<string, unknown>, facade: StackOptions['facade'], opts: { validateValues?: boolean } = {}): StackDefinition {
    const params: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(properties)) if (v !== undefined && v !== null && collectPending(v).length === 0) params[k] = v;
    return new StackDefinition(t, {
      ...this.options,
      // parameter_defaults reach nested stacks; parameters do not.
      environment: new Environment({ parameter_defaults: this.environment.paramDefaults, resource_registry: this.environment.registry.raw }),
      params,
      validateValues: opts.validateValues ?? this.options.validateValues,
      facade,
      depth: (this.options.depth ?? 0) + 1,
    });
  }

  /** The FunctionHost the function layer resolves against, backed by `source` for deployed data. */
  host(source: ResourceDataSource = pendingSource, conditions: ReadonlyMap<string, boolean> = this.conditions): FunctionHost {
    return {
      version: this.version,
      param: (name) => this.parameters.get(name),
      hasResource: (name) => this.resources?.has(name) ?? false,
      resourceRef: (name) => source.ref(name),
      resourceAttr: (name, attr, path) => source.attr(name, attr, path),
      resourceAllAttrs: (name) => source.allAttrs(name) as Record<string, unknown> | Pending,
      file: (key) => this.files[key],
      condition: (name) => {
        const v = conditions.get(name);
        if (v === undefined) throw new KilnError('CONDITION_INVALID', `Invalid condition "${name}"`);
        return v;
      },
      facade: (kind) => this.options.facade?.[kind],
    };
  }

  /** A resource's resolved properties and metadata against what `source` knows. */
  resolveResource(name: string, source: ResourceDataSource = pendingSource, host = this.host(source)): ResolvedResource {
    const def = this.resources.get(name);
    if (!def) throw new KilnError('RESOURCE_NOT_FOUND', `The Resource (${name}) could not be found.`, { path: `resources.${name}` });
    const props = def.properties ? resolveSnippet(def.properties, host) : {};
    const metadata = def.metadata ? resolveSnippet(def.metadata, host) : undefined;
    const updatePolicy = def.updatePolicy ? resolveSnippet(def.updatePolicy, host) : undefined;
    const properties = isMap(props) ? props : {};
    const pendingRefs = collectPending(properties);
    if (metadata !== undefined) collectPending(metadata, pendingRefs);
    return { name, type: def.type, properties, metadata, updatePolicy, pending: pendingRefs };
  }

  /** Outputs resolved against `source`; an output whose condition is false is null. */
  resolveOutputs(source: ResourceDataSource = pendingSource, host = this.host(source)): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const o of this.outputs.values()) out[o.name] = o.value ? resolveSnippet(o.value, host) : null;
    return out;
  }

  /** A ResourceGroup's members, without expanding them (see GroupView). */
  group(name: string, resolvedProperties: Record<string, unknown>): GroupView | undefined {
    const def = this.resources.get(name);
    if (!def || def.resolved.type !== 'OS::Heat::ResourceGroup') return undefined;
    return new GroupView(this, name, resolvedProperties);
  }
}

export interface GroupMember {
  readonly name: string;
  readonly type: string;
  readonly resolved: ResolvedType;
  readonly properties: Record<string, unknown>;
  readonly metadata: unknown;
}

function replaceIndex(value: unknown, indexVar: string, index: string): unknown {
  if (typeof value === 'string') return value.includes(indexVar) ? value.split(indexVar).join(index) : value;
  if (Array.isArray(value)) return value.map((v) => replaceIndex(v, indexVar, index));
  if (isMap(value) && !isPending(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = replaceIndex(v, indexVar, index);
    return out;
  }
  return value;
}

/**
 * The members of an OS::Heat::ResourceGroup. They share one definition (the resolved
 * `resource_def`); a member's properties are produced on demand with the index variable
 * replaced, so a group of a million members costs one definition in memory.
 */
export class GroupView {
  readonly count: number;
  readonly indexVar: string;
  readonly memberType: string;
  readonly memberResolved: ResolvedType;
  private readonly def: Record<string, unknown>;

  constructor(
    readonly stack: StackDefinition,
    readonly name: string,
    props: Record<string, unknown>,
  ) {
    const count = props.count === undefined || props.count === null ? 1 : Number(props.count);
    if (!Number.isSafeInteger(count) || count < 0) {
      throw new KilnError('PROPERTY_INVALID', `Property error: resources.${name}.properties.count: Value '${pyStr(props.count)}' is not an integer`, { path: `resources.${name}.properties.count` });
    }
    this.count = count;
    this.indexVar = typeof props.index_var === 'string' ? props.index_var : '%index%';
    const def = props.resource_def;
    if (!isMap(def) || typeof def.type !== 'string') {
      throw new KilnError('PROPERTY_INVALID', 'Property error: resource_def: the resource definition must be a map with a type', { path: `resources.${name}.properties.resource_def` });
    }
    this.def = def;
    this.memberType = def.type as string;
    this.memberResolved = stack.environment.registry.resolve(this.memberType);
  }

  /** Member names are their indices, as in Heat ("0", "1", ...). */
  member(index: number): GroupMember {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) {
      throw new KilnError('RESOURCE_NOT_FOUND', `The Resource (${index}) could not be found in group ${this.name}.`, { path: `resources.${this.name}` });
    }
    const i = String(index);
    const props = this.def.properties;
    return {
      name: i,
      type: this.memberType,
      resolved: this.memberResolved,
      properties: isMap(props) ? (replaceIndex(props, this.indexVar, i) as Record<string, unknown>) : {},
      metadata: this.def.metadata,
    };
  }

  /** The nested stack of member `index` when the member type is a template (else undefined). */
  memberStack(index: number, opts: { validateValues?: boolean } = {}): StackDefinition | undefined {
    const key = this.memberResolved.template;
    const t = key === undefined ? undefined : this.stack.templateFile(key, `resources.${this.name}.properties.resource_def.type`);
    if (!t) return undefined;
    const m = this.member(index);
    return this.stack.childStack(t, m.properties, { metadata: m.metadata }, opts);
  }

  *members(): IterableIterator<GroupMember> {
    for (let i = 0; i < this.count; i++) yield this.member(i);
  }
}

