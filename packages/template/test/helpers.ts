import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { KilnError } from '@kiln/core';
import { buildStack, parseTemplateText, type StackOptions } from '../src/index.js';

/** The repository root (4 levels above dist/test/x.test.js). */
export const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
export const CORPUS = join(REPO_ROOT, '..', 'shared', 'conformance', 'hot');

/** A StackDefinition from YAML text. */
export function stackOf(yaml: string, opts: Omit<StackOptions, 'environment' | 'files'> & { env?: Record<string, unknown>; files?: Record<string, string> } = {}) {
  const { env, files, ...rest } = opts;
  return buildStack({ template: parseTemplateText(yaml), environment: env ?? {}, files: files ?? {} }, rest);
}

/** Runs fn and returns the KilnError it throws (fails when it throws nothing or something untyped). */
export function kilnError(fn: () => unknown): KilnError {
  try {
    fn();
  } catch (e) {
    if (e instanceof KilnError) return e;
    throw new Error(`expected a KilnError, got ${String(e)}`);
  }
  throw new Error('expected a KilnError, nothing was thrown');
}
