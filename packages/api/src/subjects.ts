import { KilnError } from '@kiln/core';
import { EVENTS_PREFIX, STACK_TOKEN, TENANT_PATTERN, encodeToken, decodeToken, eventSubjectTail } from '@kiln/engine';

/**
 * Subject layout shared by the API, the gateway and the engine.
 *
 *   kiln.api.v1.<tenant>.<operation>                  request/reply API (operation may hold dots)
 *   kiln.events.<tenant>.<stackId>.<resourceToken>    events stream (stack-level events: `$stack`)
 *
 * The tenant is a subject token so that nats-server publish permissions decide who may speak
 * for which tenant: the server never trusts a tenant named in a body or header.
 */
export const API_PREFIX = 'kiln.api.v1';
/** The runtime's events stream (`<prefix>_events`, default prefix `kiln`). */
export const EVENTS_STREAM = 'kiln_events';
export { EVENTS_PREFIX, STACK_TOKEN, TENANT_PATTERN };

export function checkTenant(tenant: string, path = 'tenant'): string {
  if (!TENANT_PATTERN.test(tenant)) {
    throw new KilnError('REQUEST_INVALID', `tenant '${tenant}' must match ${TENANT_PATTERN.source}`, { path });
  }
  return tenant;
}

export function apiSubject(tenant: string, operation: string): string {
  return `${API_PREFIX}.${checkTenant(tenant)}.${operation}`;
}

/** Splits `kiln.api.v1.<tenant>.<op...>`; undefined when the subject is not an API subject. */
export function parseApiSubject(subject: string): { tenant: string; operation: string } | undefined {
  if (!subject.startsWith(`${API_PREFIX}.`)) return undefined;
  const rest = subject.slice(API_PREFIX.length + 1);
  const dot = rest.indexOf('.');
  if (dot <= 0) return undefined;
  return { tenant: rest.slice(0, dot), operation: rest.slice(dot + 1) };
}

// The token encoding lives in the engine, which publishes the events; the API only filters them.
export { encodeToken, decodeToken } from '@kiln/engine';

/** Subject of an event; `resource` undefined for an event about the stack itself. */
export function eventSubject(tenant: string, stackId: string, resource?: string): string {
  return `${EVENTS_PREFIX}.${eventSubjectTail(tenant, stackId, resource)}`;
}

/** The narrowest stream filter for a tenant and optional stack/resource. */
export function eventFilter(tenant: string, stackId?: string, resource?: string): string {
  if (stackId === undefined) return `${EVENTS_PREFIX}.${tenant}.>`;
  return `${EVENTS_PREFIX}.${tenant}.${encodeToken(stackId)}.${resource === undefined ? '*' : encodeToken(resource)}`;
}

export function parseEventSubject(subject: string): { tenant: string; stackId: string; resource?: string } | undefined {
  const parts = subject.split('.');
  if (parts.length !== 5 || `${parts[0]}.${parts[1]}` !== EVENTS_PREFIX) return undefined;
  const out: { tenant: string; stackId: string; resource?: string } = { tenant: parts[2]!, stackId: decodeToken(parts[3]!) };
  if (parts[4] !== STACK_TOKEN) out.resource = decodeToken(parts[4]!);
  return out;
}
