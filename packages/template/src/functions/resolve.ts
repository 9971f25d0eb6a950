import { KilnError } from '@kiln/core';
import type { FunctionHost } from './contract.js';
import type { Snippet } from './snippet.js';
import type { ResolveContext } from './table.js';
import { asKilnError, fail, guardStack } from './failure.js';
import { listItems } from './args.js';
import { pyStr, setKey } from './python.js';
import { NULL_SENTINEL, firstPending } from './values.js';

/** Heat's `is_enabled` over a lookup of named conditions. */
export function conditionContext(host: FunctionHost, lookup: (name: string) => boolean): ResolveContext {
  return {
    host,
    isEnabled(cond: unknown): boolean {
      if (cond === null || cond === undefined) return true;
      if (typeof cond === 'boolean') return cond;
      if (typeof cond === 'string') return lookup(cond);
      return fail(`Invalid condition "${pyStr(cond)}"`, 'CONDITION_INVALID');
    },
  };
}

function hostContext(host: FunctionHost): ResolveContext {
  return conditionContext(host, (name) => host.condition(name));
}

/** Resolves a node; the null sentinel (2-argument `if`) is returned as is for the caller to drop. */
export function resolveNode(s: Snippet, ctx: ResolveContext): unknown {
  switch (s.kind) {
    case 'literal':
      return s.value;
    case 'list': {
      const out: unknown[] = [];
      for (const item of s.items) {
        const v = resolveNode(item, ctx);
        if (v !== NULL_SENTINEL) out.push(v);
      }
      return out;
    }
    case 'map': {
      const out: Record<string, unknown> = {};
      for (const [k, item] of s.entries) {
        const v = resolveNode(item, ctx);
        if (v !== NULL_SENTINEL) setKey(out, k, v);
      }
      return out;
    }
    case 'call': {
      let args = resolveNode(s.args, ctx);
      if (args === NULL_SENTINEL) args = null;
      const p = firstPending(args);
      if (p) return p;
      try {
        return s.def.apply(args, s, ctx);
      } catch (e) {
        throw asKilnError(e, s.path);
      }
    }
    case 'if': {
      let enabled: boolean;
      try {
        const cond = resolveNode(s.cond, ctx);
        enabled = ctx.isEnabled(cond === NULL_SENTINEL ? null : cond);
      } catch (e) {
        throw asKilnError(e, s.path);
      }
      if (enabled) return resolveNode(s.then, ctx);
      return s.otherwise ? resolveNode(s.otherwise, ctx) : NULL_SENTINEL;
    }
    case 'removed':
      return s.raw;
    case 'error':
      throw s.error;
  }
}

/**
 * Resolves a snippet with Heat's semantics. The result may hold Pending values (a function over
 * a pending input is the first pending reference); a top-level null sentinel becomes null.
 */
export function resolveSnippet(snippet: Snippet, host: FunctionHost): unknown {
  const v = guardStack(undefined, () => resolveNode(snippet, hostContext(host)));
  return v === NULL_SENTINEL ? null : v;
}

function validateNode(s: Snippet, ctx: ResolveContext): void {
  switch (s.kind) {
    case 'literal':
      return;
    case 'list':
      for (const item of s.items) validateNode(item, ctx);
      return;
    case 'map':
      for (const [, item] of s.entries) validateNode(item, ctx);
      return;
    case 'call': {
      validateNode(s.args, ctx);
      if (s.fn === 'get_resource' || s.fn === 'get_attr') {
        const name = s.fn === 'get_attr' ? listItems(s.args)?.[0] : s.args;
        if (name?.kind === 'literal' && (typeof name.value !== 'string' || !ctx.host.hasResource(name.value))) {
          throw new KilnError('REFERENCE_UNKNOWN', `The specified reference "${pyStr(name.value)}" (in unknown) is incorrect.`, { path: s.path });
        }
      }
      return;
    }
    case 'if': {
      validateNode(s.cond, ctx);
      let enabled: boolean;
      try {
        const cond = resolveNode(s.cond, ctx);
        enabled = ctx.isEnabled(cond === NULL_SENTINEL ? null : cond);
      } catch (e) {
        throw asKilnError(e, s.path);
      }
      const branch = enabled ? s.then : s.otherwise;
      if (branch) validateNode(branch, ctx);
      return;
    }
    case 'removed':
      throw new KilnError('TEMPLATE_VERSION', `The template version is invalid: The function ${s.fn} is not supported in this version of HOT.`, { path: s.path });
    case 'error':
      throw s.error;
  }
}

/**
 * Heat's validation pass: removed functions, references to unknown resources, and construct
 * errors in the chosen branch of each `if` (the other branch is never parsed by Heat).
 */
export function validateSnippet(snippet: Snippet, host: FunctionHost): void {
  guardStack(undefined, () => validateNode(snippet, hostContext(host)));
}

export function validateWithContext(snippet: Snippet, ctx: ResolveContext): void {
  validateNode(snippet, ctx);
}
