/**
 * Error classification for cloud resource types. The engine retries transient errors with
 * backoff and reports the others; the codes are stable so the engine (and users) can branch.
 */
import { KilnError } from '@kiln/core';
import type { ProviderError } from '@kiln/engine';

/**
 * A cloud object ended in a failed state (server ERROR or stuck in BUILD, volume `error`,
 * Octavia provisioning ERROR). The broken object has been deleted (or its deletion started),
 * so a retry with the same idempotency key makes a fresh one: transient, code RESOURCE_ERROR.
 */
export class CloudResourceError extends Error {
  readonly code = 'RESOURCE_ERROR';
  constructor(
    message: string,
    readonly kind: string,
    readonly id: string,
  ) {
    super(message);
    this.name = 'CloudResourceError';
  }
}

/** The physical resource an update or action needed is gone (deleted behind Kiln's back). */
export class ResourceGoneError extends Error {
  readonly code = 'RESOURCE_GONE';
  constructor(message: string) {
    super(message);
    this.name = 'ResourceGoneError';
  }
}

/**
 * An object this action works on through a reference (an attachment's server) vanished while the
 * action ran: the referenced resource's own actor recreates it and sends its new id, so this is
 * waiting, not failing (transient; the engine retries without limit and re-resolves the reference).
 */
export class DependencyGoneError extends Error {
  readonly code = 'DEPENDENCY_GONE';
  constructor(message: string) {
    super(message);
    this.name = 'DependencyGoneError';
  }
}

/** The task was aborted (the node lost the partition or is stopping): transient, the new owner redoes it. */
export class TaskAbortedError extends Error {
  readonly code = 'ABORTED';
  constructor() {
    super('Task aborted');
    this.name = 'TaskAbortedError';
  }
}

/** Codes whose API calls are retried inside a task (with backoff) before the task gives up. */
export const RETRYABLE_API_CODES: ReadonlySet<string> = new Set(['RATE_LIMITED', 'UNAVAILABLE', 'TIMEOUT', 'CONFLICT']);

function retryAfterOf(e: KilnError): number | undefined {
  const d = e.detail as { retryAfterMs?: unknown } | undefined;
  return typeof d?.retryAfterMs === 'number' && Number.isFinite(d.retryAfterMs) ? d.retryAfterMs : undefined;
}

/**
 * Classifies any error thrown by a cloud type:
 * - RATE_LIMITED (429, with retryAfterMs), UNAVAILABLE (5xx, connection refused), TIMEOUT,
 *   CONFLICT (409: in use, pending state): transient. A cloud outage is never a permanent failure.
 * - RESOURCE_ERROR (object went to ERROR, already cleaned up), ABORTED, DEPENDENCY_GONE (a
 *   referenced object such as an attachment's server vanished mid-action): transient.
 * - QUOTA_EXCEEDED: NOT transient (Heat fails the resource; whether to retry after a long wait,
 *   e.g. to refill a group once quota frees up, is the engine's decision).
 * - REQUEST_INVALID (400), FORBIDDEN (403), RESOURCE_NOT_FOUND (a referenced object is missing),
 *   PROPERTY_INVALID, RESOURCE_GONE: not transient.
 * - anything else: INTERNAL, not transient.
 */
export function classifyCloudError(e: unknown): ProviderError {
  if (e instanceof KilnError) {
    const message = e.message;
    switch (e.code) {
      case 'RATE_LIMITED': {
        const ra = retryAfterOf(e);
        return { code: 'RATE_LIMITED', message, transient: true, ...(ra !== undefined ? { retryAfterMs: ra } : {}) };
      }
      case 'UNAVAILABLE':
      case 'TIMEOUT':
      case 'CONFLICT':
        return { code: e.code, message, transient: true };
      case 'QUOTA_EXCEEDED':
        return { code: 'QUOTA_EXCEEDED', message, transient: false };
      default:
        return { code: e.code, message, transient: false };
    }
  }
  if (e instanceof CloudResourceError) return { code: e.code, message: e.message, transient: true };
  if (e instanceof DependencyGoneError) return { code: e.code, message: e.message, transient: true };
  if (e instanceof TaskAbortedError) return { code: e.code, message: e.message, transient: true };
  if (e instanceof ResourceGoneError) return { code: e.code, message: e.message, transient: false };
  const err = e as { name?: string; message?: string; code?: string } | undefined;
  if (err?.name === 'AbortError') return { code: 'ABORTED', message: 'Task aborted', transient: true };
  if (typeof err?.code === 'string' && /^(ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN)$/.test(err.code)) {
    return { code: 'UNAVAILABLE', message: err.message ?? err.code, transient: true };
  }
  return { code: 'INTERNAL', message: err?.message ?? String(e), transient: false };
}
