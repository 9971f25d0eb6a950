import type { Pending } from './contract.js';

/** A value that needs a deployed resource. A class, so that user data shaped `{pending: x}` is never mistaken for one. */
class PendingValue implements Pending {
  constructor(readonly pending: string) {}
}

export function pending(ref: string): Pending {
  return new PendingValue(ref);
}

export function isPending(v: unknown): v is Pending {
  return v instanceof PendingValue;
}

/** The "no value" produced by a 2-argument `if` whose condition is false (HOT 2021-04-16). */
export const NULL_SENTINEL: unique symbol = Symbol('kiln.template.no-value');

/** The first Pending anywhere inside a resolved value, or undefined. Shared subtrees are visited once. */
export function firstPending(v: unknown): Pending | undefined {
  if (v === null || typeof v !== 'object') return undefined;
  if (v instanceof PendingValue) return v;
  const seen = new Set<object>();
  const stack: object[] = [v];
  while (stack.length > 0) {
    const o = stack.pop() as object;
    if (o instanceof PendingValue) return o;
    if (seen.has(o)) continue;
    seen.add(o);
    const children = Array.isArray(o) ? o : Object.values(o);
    // Reverse so that the first pending in document order is found first.
    for (let i = children.length - 1; i >= 0; i--) {
      const c: unknown = children[i];
      if (c !== null && typeof c === 'object') stack.push(c);
    }
  }
  return undefined;
}
