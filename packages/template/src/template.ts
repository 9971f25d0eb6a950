import { KilnError } from '@kiln/core';
import type { HotVersion } from './functions/contract.js';
import { cfnToHot, isCfnTemplate } from './cfn.js';
import { canonicalVersion } from './fn.js';
import { parseParamSchema, validateParameterGroups, type ParamSchema, type ParameterGroup } from './parameters.js';
import { isMap } from './functions/python.js';

const BASE_SECTIONS = ['heat_template_version', 'description', 'parameter_groups', 'parameters', 'resources', 'outputs'];
const BASE_RESOURCE_KEYS = ['type', 'properties', 'metadata', 'depends_on', 'deletion_policy', 'update_policy', 'description'];
const BASE_OUTPUT_KEYS = ['description', 'value'];

/** One entry of the `resources` section, structurally checked but not yet interpreted. */
export interface RawResource {
  readonly name: string;
  readonly type: unknown;
  readonly properties?: unknown;
  readonly metadata?: unknown;
  readonly depends_on?: unknown;
  readonly deletion_policy?: unknown;
  readonly update_policy?: unknown;
  readonly description?: unknown;
  readonly external_id?: unknown;
  readonly condition?: unknown;
}

export interface RawOutput {
  readonly name: string;
  readonly value: unknown;
  readonly description?: unknown;
  readonly condition?: unknown;
}

function invalid(message: string, path?: string): KilnError {
  return new KilnError('TEMPLATE_INVALID', message, { path });
}

/** Python's type(x).__name__ for template data. */
function pyTypeName(value: unknown): string {
  if (value === null || value === undefined) return 'NoneType';
  if (typeof value === 'string') return 'str';
  if (typeof value === 'boolean') return 'bool';
  if (typeof value === 'number') return Number.isInteger(value) ? 'int' : 'float';
  return Array.isArray(value) ? 'list' : 'dict';
}

function pyClass(v: unknown): string {
  return `<class '${pyTypeName(v)}'>`;
}

/**
 * HOTemplate.validate_section: every entry a non-empty map, with only known keys, holding the
 * required key. Entries are checked in sorted name order so the first error is Heat's.
 */
function validateSection(section: 'resources' | 'outputs', required: string, data: Record<string, unknown>, allowed: readonly string[]): void {
  const objName = section.slice(0, -1);
  for (const name of Object.keys(data).sort()) {
    const attrs = data[name];
    const path = `${section}.${name}`;
    const missing = `Each ${objName} must contain a ${required} key.`;
    if (attrs === null || attrs === undefined || attrs === '' || attrs === false || attrs === 0 || (isMap(attrs) && Object.keys(attrs).length === 0) || (Array.isArray(attrs) && attrs.length === 0)) {
      throw invalid(missing, path);
    }
    if (!isMap(attrs)) throw invalid(`"${section}" must contain a map of ${objName} maps. Found a [${pyClass(attrs)}] instead`, path);
    for (const key of Object.keys(attrs)) {
      if (!allowed.includes(key)) throw invalid(`"${key}" is not a valid keyword inside a ${objName} definition`, `${path}.${key}`);
    }
    if (!(required in attrs)) throw invalid(missing, path);
  }
}

/** Deeper data than this is refused up front, so no recursive walk further on can overflow the stack. */
export const MAX_TEMPLATE_DEPTH = 512;

/** Refuses data nested deeper than MAX_TEMPLATE_DEPTH (the recursion itself is bounded by it). */
function checkDepth(value: unknown, depth = 0): void {
  if (depth > MAX_TEMPLATE_DEPTH) throw invalid(`The template is nested more than ${MAX_TEMPLATE_DEPTH} levels deep.`);
  if (Array.isArray(value)) for (const v of value) checkDepth(v, depth + 1);
  else if (isMap(value)) for (const k in value) checkDepth(value[k], depth + 1);
}

/** A structurally valid HOT template: version, sections, parameter schemas, resources, outputs. */
export class Template {
  readonly version: HotVersion;
  readonly description: string;
  readonly paramSchemas: ReadonlyMap<string, ParamSchema>;
  readonly parameterGroups: readonly ParameterGroup[];
  readonly resources: ReadonlyMap<string, RawResource>;
  readonly outputs: ReadonlyMap<string, RawOutput>;
  readonly conditions: Record<string, unknown>;

  private constructor(readonly raw: Record<string, unknown>) {
    checkDepth(raw);
    this.version = canonicalVersion(raw.heat_template_version, 'heat_template_version');
    const sections = this.version >= '2016-10-14' ? [...BASE_SECTIONS, 'conditions'] : BASE_SECTIONS;
    for (const key of Object.keys(raw)) {
      if (!sections.includes(key)) throw invalid(`The template section is invalid: ${key}`, key);
    }
    const description = raw.description;
    this.description = description === undefined || description === null || description === '' ? 'No description' : typeof description === 'string' ? description : JSON.stringify(description);

    const params = raw.parameters ?? {};
    if (!isMap(params)) throw invalid(`The "parameters" section must be a map of parameter definitions. Found a [${pyClass(params)}] instead`, 'parameters');
    const schemas = new Map<string, ParamSchema>();
    for (const [name, def] of Object.entries(params)) schemas.set(name, parseParamSchema(name, def, this.version));
    this.paramSchemas = schemas;
    this.parameterGroups = validateParameterGroups(raw.parameter_groups, schemas);

    const resourceKeys = this.version >= '2016-10-14' ? [...BASE_RESOURCE_KEYS, 'external_id', 'condition'] : BASE_RESOURCE_KEYS;
    const resources = raw.resources || {};
    if (!isMap(resources)) throw invalid(`"resources" must contain a map of resource maps. Found a [${pyClass(resources)}] instead`, 'resources');
    validateSection('resources', 'type', resources, resourceKeys);
    const res = new Map<string, RawResource>();
    for (const [name, def] of Object.entries(resources)) res.set(name, { name, ...(def as Record<string, unknown>) } as RawResource);
    this.resources = res;

    const outputKeys = this.version >= '2016-10-14' ? [...BASE_OUTPUT_KEYS, 'condition'] : BASE_OUTPUT_KEYS;
    const outputs = raw.outputs || {};
    if (!isMap(outputs)) throw invalid(`"outputs" must contain a map of output maps. Found a [${pyClass(outputs)}] instead`, 'outputs');
    validateSection('outputs', 'value', outputs, outputKeys);
    const outs = new Map<string, RawOutput>();
    for (const [name, def] of Object.entries(outputs)) outs.set(name, { name, ...(def as Record<string, unknown>) } as RawOutput);
    this.outputs = outs;

    const conditions = raw.conditions ?? {};
    if (!isMap(conditions)) throw invalid(`Condition definitions must be a map. Found a ${pyTypeName(conditions)} instead`, 'conditions');
    this.conditions = conditions;
  }

  /** Checks a parsed template (from parseTemplateText or a request) and returns it typed. */
  static from(raw: Record<string, unknown>): Template {
    if (!isCfnTemplate(raw)) return new Template(raw);
    checkDepth(raw);
    return new Template(cfnToHot(raw));
  }
}
