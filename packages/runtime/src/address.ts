import { createHash } from 'node:crypto';
import { KilnError } from '@kiln/core';
import type { ActorAddress } from './types.js';

const TYPE_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
const PLAIN_TOKEN_RE = /^[A-Za-z0-9_-]{1,200}$/;

export interface ParsedAddress {
  readonly type: string;
  readonly id: string;
}

/** Splits `<type>/<id>`; a typed error for anything else. */
export function parseAddress(address: ActorAddress): ParsedAddress {
  const slash = address.indexOf('/');
  const type = slash < 0 ? '' : address.slice(0, slash);
  const id = slash < 0 ? '' : address.slice(slash + 1);
  if (!TYPE_RE.test(type) || id.length === 0) {
    throw new KilnError('REQUEST_INVALID', `actor address must be "<type>/<id>" with a lowercase type, got ${JSON.stringify(address)}`, {
      path: 'address',
    });
  }
  return { type, id };
}

/**
 * A string as one token valid both in a KV key and in a subject: kept as is when it only uses
 * [A-Za-z0-9_-], otherwise '=' + base64url of its UTF-8 ('=' never starts a plain token, so the
 * two forms cannot collide).
 */
export function encodeToken(s: string): string {
  return PLAIN_TOKEN_RE.test(s) ? s : '=' + Buffer.from(s, 'utf8').toString('base64url');
}

export function decodeToken(token: string): string {
  return token.startsWith('=') ? Buffer.from(token.slice(1), 'base64url').toString('utf8') : token;
}

/** `<type>.<token(id)>`: the actor's key in the state bucket and the tail of its mailbox subject. */
export function actorKey(address: ActorAddress): string {
  const { type, id } = parseAddress(address);
  return `${type}.${encodeToken(id)}`;
}

/** Inverse of actorKey; undefined when `key` is not one. */
export function addressOfKey(key: string): ActorAddress | undefined {
  const dot = key.indexOf('.');
  if (dot < 1 || key.indexOf('.', dot + 1) >= 0) return undefined;
  const type = key.slice(0, dot);
  const token = key.slice(dot + 1);
  if (!TYPE_RE.test(type) || token.length === 0) return undefined;
  if (!token.startsWith('=') && !PLAIN_TOKEN_RE.test(token)) return undefined;
  const id = decodeToken(token);
  return id.length === 0 ? undefined : `${type}/${id}`;
}

/** 32-bit FNV-1a over the UTF-8 bytes: stable across processes, versions and platforms. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  const bytes = Buffer.from(s, 'utf8');
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function partitionOf(address: ActorAddress, partitions: number): number {
  return fnv1a(address) % partitions;
}

/**
 * Deterministic id of the `index`-th effect of the step that processed `msgId` at `self`: the
 * idempotency key handed to tasks and the Nats-Msg-Id of sends, identical when a step is replayed.
 */
export function effectId(self: ActorAddress, msgId: string, index: number): string {
  return createHash('sha256').update(`${self}\u0000${msgId}\u0000${index}`).digest('base64url').slice(0, 24);
}
