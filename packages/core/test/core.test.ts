import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KilnError, decode, encode, toKilnError } from '../src/index.js';

test('codec round-trips nested values', () => {
  const v = { a: 1, b: [1, 'x', null, { c: true }], big: 2 ** 40, f: 1.5 };
  assert.equal(decode(encode(v)), v);
});

test('decoding garbage is a typed DECODE_FAILED error', () => {
  try {
    decode(new Uint8Array([0xc1, 0xff, 0x00]));
    assert.unreachable('should throw');
  } catch (e) {
    assert.instance(e, KilnError);
    assert.is((e as KilnError).code, 'DECODE_FAILED');
  }
});

test('errors carry code, path and status and survive JSON', () => {
  const e = new KilnError('REFERENCE_UNKNOWN', "get_resource: unknown resource 'prt'", { path: 'resources.web.properties.port' });
  assert.is(e.message, "resources.web.properties.port: get_resource: unknown resource 'prt'");
  assert.is(e.status, 400);
  const back = KilnError.fromJSON(JSON.parse(JSON.stringify(e)));
  assert.is(back.code, 'REFERENCE_UNKNOWN');
  assert.is(back.path, 'resources.web.properties.port');
  assert.is(back.message, e.message);
  assert.is(toKilnError(new Error('x')).code, 'INTERNAL');
});

test.run();
