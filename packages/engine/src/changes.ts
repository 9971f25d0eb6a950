/**
 * Heal on change notifications: a cloud object is mapped back to the resource actor that made it
 * through the idempotency key it was created with (`res/<stackId>/<name>#<incarnation>`, the key
 * every task action gets), so no object -> resource index is kept anywhere.
 */
import { RESOURCE_ACTOR } from './resource.js';

const KEY_RE = new RegExp(`^(${RESOURCE_ACTOR}/[^/#]+/[^#]+)#(\\d+)(?::|$)`);

/** The resource actor and incarnation behind an idempotency key (with or without a `:<suffix>`); null for other keys. */
export function resourceOfKey(key: string): { address: string; inc: number } | null {
  const m = KEY_RE.exec(key);
  return m ? { address: m[1]!, inc: Number(m[2]) } : null;
}
