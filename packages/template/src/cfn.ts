import { KilnError } from '@kiln/core';
import { isMap } from './functions/python.js';

/**
 * CFN-format templates (AWSTemplateFormatVersion 2010-09-09, HeatTemplateFormatVersion
 * 2012-12-12), which Heat also accepts, read as the equivalent HOT 2016-10-14 template: the same
 * sections, parameter schemas and functions under their HOT names, so everything after parsing
 * is shared. Paths in errors therefore use the HOT names.
 */
const CFN_VERSIONS: Record<string, string> = { AWSTemplateFormatVersion: '2010-09-09', HeatTemplateFormatVersion: '2012-12-12' };
const SECTIONS: Record<string, string> = { Description: 'description', Parameters: 'parameters', Resources: 'resources', Outputs: 'outputs', Conditions: 'conditions', Mappings: '' };
const RESOURCE_KEYS: Record<string, string> = {
  Type: 'type',
  Properties: 'properties',
  Metadata: 'metadata',
  DependsOn: 'depends_on',
  DeletionPolicy: 'deletion_policy',
  UpdatePolicy: 'update_policy',
  Description: 'description',
  Condition: 'condition',
};
const OUTPUT_KEYS: Record<string, string> = { Value: 'value', Description: 'description', Condition: 'condition' };
/** CFN parameter type names and their HOT equivalents. */
export const CFN_PARAM_TYPES: Record<string, string> = { String: 'string', Number: 'number', CommaDelimitedList: 'comma_delimited_list', Json: 'json', Boolean: 'boolean' };
const PSEUDO: Record<string, string> = { 'AWS::StackName': 'OS::stack_name', 'AWS::StackId': 'OS::stack_id', 'AWS::Region': 'OS::region' };
const RENAMED: Record<string, string> = { 'Fn::GetAtt': 'get_attr', 'Fn::Join': 'list_join', 'Fn::Split': 'str_split', 'Fn::If': 'if', 'Fn::Equals': 'equals', 'Fn::And': 'and', 'Fn::Or': 'or' };

export function isCfnTemplate(raw: Record<string, unknown>): boolean {
  return 'AWSTemplateFormatVersion' in raw || 'HeatTemplateFormatVersion' in raw;
}

function renameKeys(data: unknown, names: Record<string, string>): unknown {
  if (!isMap(data)) return data;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) out[names[k] ?? k] = v;
  return out;
}

function translateParam(schema: unknown): unknown {
  if (!isMap(schema)) return schema;
  const out: Record<string, unknown> = {};
  const constraints: Record<string, unknown>[] = [];
  const desc = schema.ConstraintDescription;
  const withDesc = (c: Record<string, unknown>) => constraints.push(desc === undefined ? c : { ...c, description: desc });
  for (const [k, v] of Object.entries(schema)) {
    switch (k) {
      case 'Type':
        out.type = typeof v === 'string' ? CFN_PARAM_TYPES[v] ?? v : v;
        break;
      case 'Default':
        out.default = v;
        break;
      case 'NoEcho':
        out.hidden = String(v).toLowerCase() === 'true';
        break;
      case 'Description':
        out.description = v;
        break;
      case 'Label':
        out.label = v;
        break;
      case 'AllowedValues':
        withDesc({ allowed_values: v });
        break;
      case 'AllowedPattern':
        withDesc({ allowed_pattern: v });
        break;
      case 'ConstraintDescription':
      case 'MinValue':
      case 'MaxValue':
      case 'MinLength':
      case 'MaxLength':
        break;
      default:
        out[k] = v; // an unknown key: the HOT schema check reports it
    }
  }
  const range = (min: string, max: string) => ({ ...(schema[min] === undefined ? {} : { min: schema[min] }), ...(schema[max] === undefined ? {} : { max: schema[max] }) });
  if ('MinValue' in schema || 'MaxValue' in schema) withDesc({ range: range('MinValue', 'MaxValue') });
  if ('MinLength' in schema || 'MaxLength' in schema) withDesc({ length: range('MinLength', 'MaxLength') });
  if (constraints.length > 0) out.constraints = constraints;
  return out;
}

/** CFN functions into their HOT equivalents (Ref becomes get_param or get_resource). */
function translateValue(v: unknown, params: Set<string>, mappings: Record<string, unknown>): unknown {
  if (Array.isArray(v)) return v.map((x) => translateValue(x, params, mappings));
  if (!isMap(v)) return v;
  const keys = Object.keys(v);
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = translateValue(x, params, mappings);
  if (keys.length !== 1) return out;
  const fn = keys[0]!;
  const args = out[fn];
  if (fn === 'Ref' && typeof args === 'string') return PSEUDO[args] ? { get_param: PSEUDO[args] } : params.has(args) ? { get_param: args } : { get_resource: args };
  if (RENAMED[fn]) return { [RENAMED[fn]]: args };
  // CFN's Fn::Not takes a one-item list; HOT's not takes the condition itself.
  if (fn === 'Fn::Not') return { not: Array.isArray(args) && args.length === 1 ? args[0] : args };
  if (fn === 'Fn::Base64') return args;
  if (fn === 'Fn::Replace' && Array.isArray(args) && args.length === 2) return { str_replace: { template: args[1], params: args[0] } };
  if (fn === 'Fn::ResourceFacade' && typeof args === 'string') return { resource_facade: args.replace(/[A-Z]/g, (c, i: number) => (i ? '_' : '') + c.toLowerCase()) };
  if (fn === 'Fn::FindInMap' && Array.isArray(args) && args.length === 3 && args.every((a) => typeof a === 'string')) {
    const [map, k1, k2] = args as [string, string, string];
    const found = (mappings[map] as Record<string, Record<string, unknown>> | undefined)?.[k1]?.[k2];
    if (found === undefined) throw new KilnError('TEMPLATE_INVALID', `Fn::FindInMap: no ${map}.${k1}.${k2} in Mappings`);
    return found;
  }
  return out;
}

/** The HOT 2016-10-14 equivalent of a CFN-format template. */
export function cfnToHot(raw: Record<string, unknown>): Record<string, unknown> {
  const versionKey = 'AWSTemplateFormatVersion' in raw ? 'AWSTemplateFormatVersion' : 'HeatTemplateFormatVersion';
  const version = raw[versionKey];
  const v = version instanceof Date ? version.toISOString().slice(0, 10) : String(version);
  if (v !== CFN_VERSIONS[versionKey]) {
    throw new KilnError('TEMPLATE_VERSION', `The template version is invalid: "${versionKey}: ${v}". "${versionKey}" should be: ${CFN_VERSIONS[versionKey]}`, { path: versionKey });
  }
  const out: Record<string, unknown> = { heat_template_version: '2016-10-14' };
  for (const key of Object.keys(raw)) {
    if (key === versionKey) continue;
    if (!(key in SECTIONS)) throw new KilnError('TEMPLATE_INVALID', `The template section is invalid: ${key}`, { path: key });
  }
  const params = isMap(raw.Parameters) ? raw.Parameters : {};
  const mappings = isMap(raw.Mappings) ? raw.Mappings : {};
  const names = new Set(Object.keys(params));
  if (raw.Description !== undefined) out.description = raw.Description;
  if (raw.Parameters !== undefined) out.parameters = isMap(raw.Parameters) ? Object.fromEntries(Object.entries(params).map(([k, s]) => [k, translateParam(s)])) : raw.Parameters;
  if (raw.Conditions !== undefined) out.conditions = translateValue(raw.Conditions, names, mappings);
  const section = (data: unknown, keys: Record<string, string>) =>
    isMap(data) ? Object.fromEntries(Object.entries(data).map(([k, d]) => [k, translateValue(renameKeys(d, keys), names, mappings)])) : data;
  if (raw.Resources !== undefined) out.resources = section(raw.Resources, RESOURCE_KEYS);
  if (raw.Outputs !== undefined) out.outputs = section(raw.Outputs, OUTPUT_KEYS);
  return out;
}
