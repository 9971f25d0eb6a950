import { Immer, current, isDraft } from 'immer';

/**
 * The engine's immer: no auto-freeze. Freezing walks every new state tree (a supervisor's holds
 * the whole template) on every step; nothing mutates states outside a recipe anyway.
 */
const immer = new Immer({ autoFreeze: false });
export const produce: Immer['produce'] = immer.produce;
import type { Effect } from '@kiln/runtime';

/** A value with every immer draft inside replaced by its current plain copy (effects outlive the recipe). */
export function undraft<T>(value: T): T {
  if (isDraft(value)) return current(value as object) as T;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    value.forEach((v, i) => {
      const u = undraft(v);
      if (u !== v) (out ??= [...value])[i] = u;
    });
    return (out ?? value) as T;
  }
  if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    let out: Record<string, unknown> | undefined;
    for (const [k, v] of Object.entries(value)) {
      const u = undraft(v);
      if (u !== v) (out ??= { ...(value as Record<string, unknown>) })[k] = u;
    }
    return (out ?? value) as T;
  }
  return value;
}

/** Replaces drafts in collected effects; call at the end of a produce recipe. */
export function undraftEffects(effects: Effect[]): void {
  for (let i = 0; i < effects.length; i++) effects[i] = undraft(effects[i]!);
}
