import { KilnError } from '@kiln/core';
import type { FunctionHost, HotVersion } from './contract.js';
import { parseSnippet } from './snippet.js';
import { asKilnError } from './failure.js';
import { conditionContext, resolveNode, validateWithContext } from './resolve.js';
import { isMap, pyStr } from './python.js';

function invalidCondition(cond: unknown, path: string): KilnError {
  return new KilnError('CONDITION_INVALID', `Invalid condition "${pyStr(cond)}"`, { path });
}

/**
 * Evaluates the `conditions` section with Heat's semantics: each definition is a boolean or a
 * condition function; inside not/and/or a string names another condition; cycles are errors.
 */
export function evaluateConditions(section: unknown, version: HotVersion, host: FunctionHost, path = 'conditions'): Map<string, boolean> {
  const result = new Map<string, boolean>();
  if (section === null || section === undefined) return result;
  if (!isMap(section)) throw new KilnError('CONDITION_INVALID', 'The "conditions" section must be a map', { path });
  const defs = new Map(Object.entries(section).map(([name, raw]) => [name, { raw, snippet: parseSnippet(raw, version, `${path}.${name}`, 'condition') }]));
  const inProgress = new Set<string>();
  const ctx = conditionContext(host, (name) => evaluate(name));
  function evaluate(name: string): boolean {
    const known = result.get(name);
    if (known !== undefined) return known;
    const def = defs.get(name);
    if (!def) throw invalidCondition(name, `${path}`);
    const where = `${path}.${name}`;
    if (inProgress.has(name)) throw new KilnError('CONDITION_INVALID', `Circular definition for condition "${name}"`, { path: where });
    if (def.snippet.kind === 'literal' && typeof def.snippet.value !== 'boolean') {
      throw new KilnError('CONDITION_INVALID', `The definition of condition "${name}" is invalid: ${pyStr(def.raw)}`, { path: where });
    }
    inProgress.add(name);
    let value: unknown;
    try {
      validateWithContext(def.snippet, ctx);
      value = resolveNode(def.snippet, ctx);
    } catch (e) {
      throw asKilnError(e, where);
    } finally {
      inProgress.delete(name);
    }
    if (typeof value !== 'boolean') {
      throw new KilnError('CONDITION_INVALID', `The definition of condition "${name}" is invalid: ${pyStr(value)}`, { path: where });
    }
    result.set(name, value);
    return value;
  }
  for (const name of defs.keys()) evaluate(name);
  // Keep the section's order.
  return new Map([...defs.keys()].map((name) => [name, result.get(name) as boolean]));
}

/** A resource/output `condition:`: a condition name, a boolean, or an inline condition function. */
export function evaluateCondition(raw: unknown, version: HotVersion, path: string, conditions: Map<string, boolean>, host: FunctionHost): boolean {
  if (raw === null || raw === undefined) return true;
  if (typeof raw === 'boolean') return raw;
  const lookup = (name: string): boolean => {
    const v = conditions.get(name);
    if (v === undefined) throw invalidCondition(name, path);
    return v;
  };
  if (typeof raw === 'string') return lookup(raw);
  const snippet = parseSnippet(raw, version, path, 'condition');
  if (snippet.kind === 'literal') throw invalidCondition(raw, path);
  const ctx = conditionContext(host, lookup);
  let value: unknown;
  try {
    validateWithContext(snippet, ctx);
    value = resolveNode(snippet, ctx);
  } catch (e) {
    throw asKilnError(e, path);
  }
  if (typeof value !== 'boolean') throw invalidCondition(value, path);
  return value;
}
