import { isMap } from './python.js';
import type { Snippet } from './snippet.js';

/** Helpers for construct-time checks on parsed arguments (Heat checks types before resolving). */

export function isFunctionNode(s: Snippet): boolean {
  return s.kind === 'call' || s.kind === 'if' || s.kind === 'removed' || s.kind === 'error';
}

const literal = (value: unknown): Snippet => ({ kind: 'literal', value });

/** The items when the snippet is a list (of data or calls), else undefined. */
export function listItems(s: Snippet): readonly Snippet[] | undefined {
  if (s.kind === 'list') return s.items;
  if (s.kind === 'literal' && Array.isArray(s.value)) return s.value.map(literal);
  return undefined;
}

/** The entries when the snippet is a mapping (of data or calls), else undefined. */
export function mapEntries(s: Snippet): ReadonlyMap<string, Snippet> | undefined {
  if (s.kind === 'map') return new Map(s.entries);
  if (s.kind === 'literal' && isMap(s.value)) return new Map(Object.entries(s.value).map(([k, v]) => [k, literal(v)]));
  return undefined;
}
