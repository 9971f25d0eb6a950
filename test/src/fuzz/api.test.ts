import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { encode } from '@kiln/core';
import { OPERATIONS } from '@kiln/api';
import { call, checkProperty, startApiBed, untypedError, writeMark, type ApiBed } from './harness.js';
import { waitFor } from '@kiln/natsd';

/**
 * Random and mutated request bodies on every API operation, through a real nats-server, the API
 * service and a real engine: every reply is an envelope, every error is typed (code, status,
 * message, never INTERNAL), a refused request writes nothing, and the service keeps answering.
 */
const bed = {} as { b: ApiBed };
const test = suite('fuzz: API request bodies');

const TEMPLATE = {
  heat_template_version: '2016-10-14',
  resources: { a: { type: 'OS::Heat::RandomString', properties: { length: 8 } } },
  outputs: { v: { value: { get_attr: ['a', 'value'] } } },
};

/** A valid body for each operation (against the stack `base`), the starting point of mutations. */
const VALID: Record<string, Record<string, unknown>> = {
  'stack.create': { name: 'fuzzed', template: TEMPLATE },
  'stack.update': { stack: 'base', template: TEMPLATE },
  'stack.patch': { stack: 'base', parameters: {} },
  'stack.delete': { stack: 'base' },
  'stack.show': { stack: 'base' },
  'stack.list': { limit: 10 },
  'stack.validate': { template: TEMPLATE },
  'stack.preview': { template: TEMPLATE },
  'stack.abandon': { stack: 'base' },
  'stack.adopt': { name: 'adopted', template: TEMPLATE, adopt_data: {} },
  'stack.outputs': { stack: 'base' },
  'stack.cancel': { stack: 'base' },
  'resource.list': { stack: 'base' },
  'resource.show': { stack: 'base', resource: 'a' },
  'resource.mark-unhealthy': { stack: 'base', resource: 'a' },
  'resource.signal': { stack: 'base', resource: 'a', data: {} },
  'events.list': { stack: 'base', limit: 5 },
  'events.subscribe': { deliver_subject: '_INBOX_tenant-a.fuzz' },
  'group.capacity.set': { stack: 'base', group: 'g', capacity: 1 },
  'engine.status': {},
};

const deep = (depth: number, leaf: unknown): unknown => {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { n: v };
  return v;
};

/** Values of the wrong type, out of range, huge or deeply nested. */
const nasty = fc.oneof(
  fc.anything({ maxDepth: 3 }),
  fc.constantFrom(null, true, -1, 0, 1e308, -1e308, Number.MAX_SAFE_INTEGER, 2 ** 64, '', ' ', '\u0000', '../..', '*', '>', 'a.b', '$stack', '\ud800'),
  fc.integer({ min: 65, max: 200 }).map((d) => deep(d, 'x')),
  fc.integer({ min: 100_000, max: 400_000 }).map((n) => 'x'.repeat(n)),
  fc.array(fc.string(), { minLength: 2000, maxLength: 3000 }),
);

type Case =
  | { op: string; kind: 'mutate-field'; field: string; value: unknown; msgpack: boolean }
  | { op: string; kind: 'unknown-field'; field: string; value: unknown; msgpack: boolean }
  | { op: string; kind: 'drop-field'; field: string; msgpack: boolean }
  | { op: string; kind: 'random-body'; body: unknown; msgpack: boolean }
  | { op: string; kind: 'raw'; bytes: Uint8Array; contentType: string | null };

const opName = fc.constantFrom(...OPERATIONS.map((o) => o.name));

function raw(op: string): fc.Arbitrary<Case> {
  const valid = encode(VALID[op] ?? {});
  const json = new TextEncoder().encode(JSON.stringify(VALID[op] ?? {}));
  return fc
    .oneof(
      // Invalid UTF-8 inside a JSON string.
      fc.constant(new Uint8Array([...new TextEncoder().encode('{"stack":"'), 0xff, 0xfe, 0xc3, 0x28, ...new TextEncoder().encode('"}')])).map((bytes) => ({ bytes, contentType: 'application/json' as string | null })),
      // Truncated msgpack of a valid body.
      fc.integer({ min: 0, max: Math.max(0, valid.length - 1) }).map((n) => ({ bytes: valid.subarray(0, n), contentType: 'application/msgpack' as string | null })),
      // Truncated JSON.
      fc.integer({ min: 1, max: Math.max(1, json.length - 1) }).map((n) => ({ bytes: json.subarray(0, n), contentType: 'application/json' as string | null })),
      // Random bytes under either encoding.
      fc.tuple(fc.uint8Array({ maxLength: 300 }), fc.constantFrom('application/json', 'application/msgpack')).map(([bytes, contentType]) => ({ bytes, contentType: contentType as string | null })),
      // A valid body under a wrong or missing content type.
      fc.constantFrom<string | null>('text/plain', 'application/xml', 'application/msgpack; charset=x', '', null).map((contentType) => ({ bytes: contentType === null ? valid : json, contentType })),
    )
    .map((r) => ({ op, kind: 'raw' as const, ...r }));
}

const aCase: fc.Arbitrary<Case> = opName.chain((op) => {
  const fields = Object.keys(VALID[op] ?? {});
  const msgpack = fc.boolean();
  const cases: fc.Arbitrary<Case>[] = [
    fc.record({ field: fc.string({ minLength: 1, maxLength: 20 }).filter((f) => !fields.includes(f) && f !== '__proto__'), value: nasty, msgpack }).map((c) => ({ op, kind: 'unknown-field' as const, ...c })),
    fc.record({ body: fc.oneof(nasty, fc.dictionary(fc.string({ maxLength: 12 }), nasty, { maxKeys: 4 })), msgpack }).map((c) => ({ op, kind: 'random-body' as const, ...c })),
    raw(op),
  ];
  if (fields.length > 0) {
    cases.push(fc.record({ field: fc.constantFrom(...fields), value: nasty, msgpack }).map((c) => ({ op, kind: 'mutate-field' as const, ...c })));
    cases.push(fc.record({ field: fc.constantFrom(...fields), msgpack }).map((c) => ({ op, kind: 'drop-field' as const, ...c })));
  }
  return fc.oneof(...cases);
});

function send(c: Case) {
  const valid = VALID[c.op] ?? {};
  switch (c.kind) {
    case 'raw':
      return call(bed.b.client, c.op, undefined, { raw: c.bytes, contentType: c.contentType });
    case 'random-body':
      return call(bed.b.client, c.op, c.body, { msgpack: c.msgpack });
    case 'drop-field': {
      const { [c.field]: _dropped, ...rest } = valid;
      return call(bed.b.client, c.op, rest, { msgpack: c.msgpack });
    }
    default:
      return call(bed.b.client, c.op, { ...valid, [c.field]: c.value }, { msgpack: c.msgpack });
  }
}

const describe = (c: Case) => JSON.stringify(c, (_k, v) => (typeof v === 'string' && v.length > 80 ? `${v.slice(0, 40)}…(${v.length})` : v instanceof Uint8Array ? `bytes(${v.length})` : v));

test.before(async () => {
  bed.b = await startApiBed();
  const r = await call(bed.b.client, 'stack.create', { name: 'base', template: TEMPLATE });
  assert.ok(r.ok, JSON.stringify(r));
  await waitFor('base stack ready', async () => {
    const s = await call(bed.b.client, 'stack.show', { stack: 'base' });
    return s.ok && (s.result as { status: string }).status === 'CREATE_COMPLETE';
  });
});

test.after(async () => {
  await bed.b?.stop();
});

test('every operation: typed errors, no write when refused, the service keeps answering', async () => {
  const seen = new Map<string, number>();
  await checkProperty(
    'api',
    aCase,
    async (c) => {
      const before = await writeMark(bed.b.jsm);
      const r = await send(c);
      assert.type(r.ok, 'boolean', `not an envelope for ${describe(c)}`);
      const why = untypedError(r);
      assert.not.ok(why, `${why} for ${describe(c)}: ${JSON.stringify(r).slice(0, 400)}`);
      if (!r.ok) {
        seen.set(r.error.code, (seen.get(r.error.code) ?? 0) + 1);
        assert.is(await writeMark(bed.b.jsm), before, `refused request wrote state: ${describe(c)} → ${r.error.code}`);
      }
      const list = await call(bed.b.client, 'stack.list', {});
      assert.ok(list.ok, `service stopped answering after ${describe(c)}`);
    },
    300,
  );
  // The generator reaches the decoder's, the schema's and the backend's refusals.
  assert.ok((seen.get('REQUEST_INVALID') ?? 0) > 0, JSON.stringify([...seen]));
  const show = await call(bed.b.client, 'stack.show', { stack: 'base' });
  assert.ok(show.ok || show.error.code === 'STACK_NOT_FOUND', JSON.stringify(show));
});

test.run();
