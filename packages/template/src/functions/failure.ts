import { KilnError, type ErrorCode } from '@kiln/core';

/**
 * An error raised inside a function before the call's path is known; the parser and the
 * resolver turn it into a KilnError prefixed with the path of the call.
 */
export class FunctionFailure extends Error {
  constructor(
    message: string,
    readonly code: ErrorCode = 'FUNCTION_INVALID',
  ) {
    super(message);
  }
}

export function fail(message: string, code: ErrorCode = 'FUNCTION_INVALID'): never {
  throw new FunctionFailure(message, code);
}

/** Any error thrown while handling the call at `path`, as a KilnError. */
export function asKilnError(e: unknown, path: string): KilnError {
  if (e instanceof KilnError) return e.path === undefined ? new KilnError(e.code, e.message, { path, detail: e.detail, cause: e }) : e;
  if (e instanceof FunctionFailure) return new KilnError(e.code, e.message, { path });
  if (e instanceof RangeError) return new KilnError('FUNCTION_INVALID', `Evaluation too deep: ${e.message}`, { path, cause: e });
  return new KilnError('FUNCTION_INVALID', e instanceof Error ? e.message : String(e), { path, cause: e });
}

/** Runs `fn`, turning a stack overflow (data nested absurdly deep, e.g. a host value) into a KilnError. */
export function guardStack<T>(path: string | undefined, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof RangeError) throw new KilnError('TEMPLATE_INVALID', `Value nested too deeply: ${e.message}`, { path, cause: e });
    throw e;
  }
}
