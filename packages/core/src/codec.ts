import { Packr } from 'msgpackr';
import { KilnError } from './errors.js';

/**
 * The one msgpack codec for every stored state and wire message. Records are off so that a
 * message written by one process version decodes the same in any other (no shared structure
 * table to lose across restarts).
 */
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, int64AsType: 'number' });

export function encode(value: unknown): Uint8Array {
  return packr.pack(value);
}

export function decode<T = unknown>(bytes: Uint8Array): T {
  try {
    return packr.unpack(bytes) as T;
  } catch (e) {
    throw new KilnError('DECODE_FAILED', `undecodable msgpack (${bytes.length} bytes): ${(e as Error).message}`, { cause: e });
  }
}
