/**
 * Subject tokens shared by the engine (which publishes events) and the API/gateway (which filter
 * them): `kiln.events.<tenant>.<stackToken>.<resourceToken | $stack>`. The encoding lives here,
 * at the bottom of the dependency chain, so the API imports it instead of keeping a copy.
 */

/** Subject prefix of the events stream. */
export const EVENTS_PREFIX = 'kiln.events';
/** Resource token of events about the stack itself. Encoded names never start with `$`. */
export const STACK_TOKEN = '$stack';
/** Tenant of stacks created without one (direct engine use, tests, `kiln up`). */
export const DEFAULT_TENANT = 'default';
/** Tenant names: one subject token, also usable in KV keys. */
export const TENANT_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/**
 * A name (or nested path like `workers/3`) as one subject token: every byte other than
 * [A-Za-z0-9_-] is percent-encoded (`.` `*` `>` `$` `/` space included), so any name is a valid
 * token and the encoding is reversible.
 */
export function encodeToken(name: string): string {
  if (/^[A-Za-z0-9_-]*$/.test(name)) return name;
  let out = '';
  for (const b of new TextEncoder().encode(name)) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9_-]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function decodeToken(token: string): string {
  try {
    return decodeURIComponent(token);
  } catch {
    return token;
  }
}

/** Subject (under `kiln.events.`) of an event; `resource` undefined for the stack itself. */
export function eventSubjectTail(tenant: string, stackId: string, resource?: string): string {
  return `${tenant}.${encodeToken(stackId)}.${resource === undefined ? STACK_TOKEN : encodeToken(resource)}`;
}
