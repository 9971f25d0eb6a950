/** Deterministic, dependency-free hashing and pseudo-randomness (reducers may not use Math.random). */

/** 32-bit FNV-1a. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A seeded PRNG (mulberry32) returning floats in [0, 1). */
export function seededRandom(seed: string): () => number {
  let a = fnv1a(seed);
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** A short lowercase alphanumeric id derived from a seed (Heat's physical-name suffix is 12 chars). */
export function shortId(seed: string, length = 12): string {
  const rnd = seededRandom(seed);
  let out = '';
  for (let i = 0; i < length; i++) out += ALNUM[Math.floor(rnd() * ALNUM.length)];
  return out;
}

/** A UUID-shaped id derived from a seed (same seed, same id: a replayed create finds the same one). */
export function derivedUuid(seed: string): string {
  const rnd = seededRandom(seed);
  const hex = (n: number) => Array.from({ length: n }, () => Math.floor(rnd() * 16).toString(16)).join('');
  return `${hex(8)}-${hex(4)}-4${hex(3)}-${'89ab'[Math.floor(rnd() * 4)]}${hex(3)}-${hex(12)}`;
}

/**
 * Exponential backoff with jitter derived from a seed (the message id), so a replayed reduction
 * picks the same delay: base * 2^(attempt-1), capped, then scaled into [50%, 100%].
 */
export function backoffMs(attempt: number, seed: string, baseMs = 1_000, capMs = 60_000): number {
  const raw = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(raw * (0.5 + 0.5 * seededRandom(`${seed}#${attempt}`)()));
}
