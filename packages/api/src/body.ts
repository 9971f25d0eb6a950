import { KilnError, decode, encode } from '@kiln/core';

export type BodyEncoding = 'json' | 'msgpack';

export const JSON_TYPE = 'application/json';
export const MSGPACK_TYPE = 'application/msgpack';

/** The encoding named by a Content-Type header; JSON when absent. */
export function encodingOf(contentType: string | undefined): BodyEncoding {
  const t = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (t === '' || t === JSON_TYPE) return 'json';
  if (t === MSGPACK_TYPE || t === 'application/x-msgpack') return 'msgpack';
  throw new KilnError('REQUEST_INVALID', `unsupported Content-Type '${contentType}' (use ${JSON_TYPE} or ${MSGPACK_TYPE})`, {
    path: 'headers.Content-Type',
  });
}

export function contentTypeOf(enc: BodyEncoding): string {
  return enc === 'json' ? JSON_TYPE : MSGPACK_TYPE;
}

export interface BodyLimits {
  maxBytes: number;
  maxDepth: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes a request body, refusing oversized, malformed and too deeply nested ones before any
 * handler sees them. An empty body is `{}` so that parameterless operations need no payload.
 */
export function decodeBody(data: Uint8Array, enc: BodyEncoding, limits: BodyLimits): unknown {
  if (data.length > limits.maxBytes) {
    throw new KilnError('REQUEST_TOO_LARGE', `request body is ${data.length} bytes, the limit is ${limits.maxBytes}`, {
      path: 'body',
      detail: { limit: limits.maxBytes, actual: data.length },
    });
  }
  if (data.length === 0) return {};
  let value: unknown;
  if (enc === 'json') {
    let text: string;
    try {
      text = utf8.decode(data);
    } catch {
      throw new KilnError('REQUEST_INVALID', 'request body is not valid UTF-8', { path: 'body' });
    }
    // Checked on the text first: nesting depth must be bounded before anything recurses over it.
    if (jsonDepthExceeds(text, limits.maxDepth)) {
      throw new KilnError('REQUEST_INVALID', `request body nests deeper than ${limits.maxDepth} levels`, { path: 'body' });
    }
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw new KilnError('REQUEST_INVALID', `request body is not valid JSON: ${(e as Error).message}`, { path: 'body' });
    }
  } else {
    try {
      value = decode(data);
    } catch (e) {
      throw new KilnError('REQUEST_INVALID', `request body is not valid msgpack: ${(e as Error).message}`, { path: 'body' });
    }
    if (valueDepthExceeds(value, limits.maxDepth)) {
      throw new KilnError('REQUEST_INVALID', `request body nests deeper than ${limits.maxDepth} levels`, { path: 'body' });
    }
  }
  return value;
}

export function encodeBody(value: unknown, enc: BodyEncoding): Uint8Array {
  return enc === 'json' ? new TextEncoder().encode(JSON.stringify(value)) : encode(value);
}

/** Bracket depth of JSON text, ignoring brackets inside strings; linear, no recursion. */
function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/** Nesting depth of a decoded value, iteratively (a hostile body cannot overflow the stack). */
function valueDepthExceeds(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (d + 1 > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, d + 1]);
  }
  return false;
}
