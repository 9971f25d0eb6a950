import type { ParameterValue, ParamType } from './parameters.js';
import { pyTruthy } from './functions/python.js';
import { KilnError } from '@kiln/core';
import type { FunctionHost } from './functions/contract.js';
import { pending } from './fn.js';
import { pendingSource, type StackDefinition } from './stack.js';

/** A host where a parameter without a value reads as pending instead of failing. */
function lenientHost(stack: StackDefinition): FunctionHost {
  const host = stack.host();
  return {
    ...host,
    param: (name) => {
      try {
        return host.param(name);
      } catch (e) {
        if (e instanceof KilnError && e.code === 'PARAM_MISSING') return pending(`get_param: ${name}`);
        throw e;
      }
    },
  };
}

const API_TYPES: Record<ParamType, string> = {
  string: 'String',
  number: 'Number',
  comma_delimited_list: 'CommaDelimitedList',
  json: 'Json',
  boolean: 'Boolean',
};

/** api.format_validate_parameter: one parameter in the template-validate response. */
export function formatValidateParameter(p: ParameterValue): Record<string, unknown> {
  const s = p.schema;
  const res: Record<string, unknown> = {
    Type: API_TYPES[s.type],
    Description: s.description ?? '',
    NoEcho: s.hidden ? 'true' : 'false',
    Label: s.label ?? s.name,
  };
  const def = p.userDefault ?? s.default;
  if (def !== undefined) res.Default = def;
  // Heat shows `Value` only when the user value is truthy in Python.
  if (pyTruthy(p.userValue)) res.Value = p.userValue;
  if (s.tags && s.tags.length > 0) res.Tags = s.tags;
  const descriptions: string[] = [];
  for (const c of s.constraints) {
    switch (c.kind) {
      case 'length':
        if (c.min !== undefined) res.MinLength = c.min;
        if (c.max !== undefined) res.MaxLength = c.max;
        break;
      case 'range':
        if (c.min !== undefined) res.MinValue = c.min;
        if (c.max !== undefined) res.MaxValue = c.max;
        break;
      case 'modulo':
        res.Step = c.step;
        res.Offset = c.offset;
        break;
      case 'allowed_values':
        res.AllowedValues = c.values;
        break;
      case 'allowed_pattern':
        res.AllowedPattern = c.pattern;
        break;
      case 'custom_constraint':
        res.CustomConstraint = c.name;
        break;
    }
    if (c.description) descriptions.push(c.description);
  }
  if (descriptions.length > 0) res.ConstraintDescription = descriptions.join(' ');
  return res;
}

function parametersOf(stack: StackDefinition): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of stack.parameters.names()) out[name] = formatValidateParameter(stack.parameters.entry(name)!);
  return out;
}

function nestedParameters(stack: StackDefinition): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const def of stack.resources.values()) {
    if (def.resolved.template === undefined) continue;
    // Parameters without a value (validate needs none) are simply not passed down.
    const props = stack.resolveResource(def.name, pendingSource, lenientHost(stack)).properties;
    const nested = stack.nestedStack(def.name, props, { validateValues: false });
    if (!nested) continue;
    const entry: Record<string, unknown> = { Type: def.type, Description: nested.template.description, Parameters: parametersOf(nested) };
    Object.assign(entry, nestedParameters(nested));
    result[def.name] = entry;
  }
  return Object.keys(result).length > 0 ? { NestedParameters: result } : {};
}

/** Heat's template-validate response (Description, Parameters, ParameterGroups, Environment, NestedParameters). */
export function validateResponse(stack: StackDefinition, opts: { showNested?: boolean } = {}): Record<string, unknown> {
  const result: Record<string, unknown> = {
    Description: stack.template.description,
    Parameters: parametersOf(stack),
  };
  if (stack.template.parameterGroups.length > 0) result.ParameterGroups = stack.template.parameterGroups;
  if (opts.showNested) Object.assign(result, nestedParameters(stack));
  result.Environment = stack.environment.toUserDict(stack.templateTypes);
  return result;
}
