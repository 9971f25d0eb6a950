import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { encode } from '@kiln/core';
import { decodeToken, encodeToken, eventFilter, eventSubject, parseApiSubject, parseEventSubject } from '../src/subjects.js';
import { matchesFilter, pushedEvent, toEvent } from '../src/events.js';
import { Quotas } from '../src/quotas.js';
import { check, obj, required, str, mapOf, json } from '../src/schema.js';
import { decodeBody } from '../src/body.js';
import { fingerprint } from '../src/requests.js';

const subjects = suite('subjects');

subjects('any resource name is one valid, reversible subject token that never looks like $stack', () => {
  fc.assert(
    fc.property(fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' }), (name) => {
      const t = encodeToken(name);
      assert.ok(/^[A-Za-z0-9_%-]+$/.test(t), t);
      assert.is(decodeToken(t), name);
      const parsed = parseEventSubject(eventSubject('tenant-a', 'stk-1', name));
      assert.equal(parsed, { tenant: 'tenant-a', stackId: 'stk-1', resource: name });
    }),
  );
  assert.equal(parseEventSubject(eventSubject('t', 's')), { tenant: 't', stackId: 's' });
  assert.is(eventFilter('t'), 'kiln.events.t.>');
  assert.is(eventFilter('t', 's'), 'kiln.events.t.s.*');
  assert.is(eventFilter('t', 's', 'db.x'), 'kiln.events.t.s.db%2Ex');
  assert.is(parseEventSubject('kiln.events.stack.abc'), undefined);
  assert.equal(parseApiSubject('kiln.api.v1.t-1.resource.mark-unhealthy'), { tenant: 't-1', operation: 'resource.mark-unhealthy' });
  assert.is(parseApiSubject('kiln.api.v2.t.stack.show'), undefined);
});

subjects.run();

const events = suite('events');

events('the engine’s event shape (action/status pair, gen, ts) becomes a client event', () => {
  const ts = Date.UTC(2026, 0, 2, 3, 4, 5);
  const ev = toEvent(
    eventSubject('tenant-a', 'stk', 'web'),
    42,
    new Date(0),
    encode({ stackId: 'stk', stackName: 'demo', resource: 'web', physicalId: null, type: 'OS::Nova::Server', gen: 3, action: 'CREATE', status: 'IN_PROGRESS', reason: 'boot', ts }),
  )!;
  assert.equal(ev, {
    seq: 42,
    time: new Date(ts).toISOString(),
    tenant: 'tenant-a',
    stack: 'stk',
    stack_name: 'demo',
    resource: 'web',
    resource_type: 'OS::Nova::Server',
    generation: 3,
    status: 'CREATE_IN_PROGRESS',
    reason: 'boot',
  });
  const stackEv = toEvent(eventSubject('tenant-a', 'stk'), 1, new Date(ts), new TextEncoder().encode('{"status":"UPDATE_COMPLETE"}'))!;
  assert.is(stackEv.resource_type, 'OS::Heat::Stack');
  assert.is(stackEv.status, 'UPDATE_COMPLETE');
  assert.is(stackEv.time, new Date(ts).toISOString(), 'the stored time when the payload has none');
  assert.ok(matchesFilter(ev, { stack: 'stk', resource: 'web', type: 'OS::Nova::Server', status: ['CREATE_IN_PROGRESS'] }));
  assert.not.ok(matchesFilter(ev, { status: ['CREATE_COMPLETE'] }));
  assert.is(toEvent('kiln.events.bad', 1, new Date(), new Uint8Array()), undefined);
  // Garbage payloads still yield an event with the subject's facts.
  assert.is(toEvent(eventSubject('t', 's', 'r'), 2, new Date(), new Uint8Array([0xc1]))!.status, 'UNKNOWN');
});

events('pushed events: sequences and time from both JetStream ack subject formats; heartbeats are not events', () => {
  const subject = eventSubject('t', 's', 'r');
  const data = encode({ status: 'CREATE_COMPLETE' });
  const ns = '1767225600000000000';
  const v1 = pushedEvent({ subject, reply: `$JS.ACK.kiln_events.c1.1.42.7.${ns}.0`, data })!;
  assert.equal([v1.event.seq, v1.consumerSeq, v1.event.time], [42, 7, '2026-01-01T00:00:00.000Z']);
  const v2 = pushedEvent({ subject, reply: `$JS.ACK.hub.ACCHASH.kiln_events.c1.1.43.8.${ns}.0.tok`, data })!;
  assert.equal([v2.event.seq, v2.consumerSeq], [43, 8]);
  assert.is(pushedEvent({ subject: '_INBOX_t.x', data: new Uint8Array() }), undefined);
  assert.is(pushedEvent({ subject, reply: 'something.else', data }), undefined);
});

events.run();

const validation = suite('validation');

validation('paths name the offending field; unknown fields are refused', () => {
  const schema = obj({ name: required(str()), parameters: mapOf(str()), data: json });
  const path = (v: unknown) => {
    try {
      check(schema, v);
      return 'ok';
    } catch (e) {
      return (e as { path: string }).path;
    }
  };
  assert.is(path({ name: 'x', parameters: { flavor: 1 } }), 'body.parameters.flavor');
  assert.is(path({ name: 'x', parameters: { 'a b': 1 } }), 'body.parameters["a b"]');
  assert.is(path({ name: 'x', extra: 1 }), 'body.extra');
  assert.is(path({}), 'body.name');
  assert.is(path({ name: 'x', data: { a: [1, Number.NaN] } }), 'body.data.a[1]');
  assert.is(path({ name: 'x', data: new Date() }), 'body.data');
  assert.is(path({ name: 'x', data: { nested: [{ ok: true }] } }), 'ok');
});

validation('body decoding: empty is {}, strings with brackets do not count as depth', () => {
  const limits = { maxBytes: 1000, maxDepth: 3 };
  assert.equal(decodeBody(new Uint8Array(), 'json', limits), {});
  assert.equal(decodeBody(new TextEncoder().encode('{"a":"[[[[[[\\"{{{{"}'), 'json', limits), { a: '[[[[[["{{{{' });
  assert.throws(() => decodeBody(new TextEncoder().encode('{"a":[[[1]]]}'), 'json', limits), /nests deeper/);
  assert.equal(decodeBody(encode({ a: [[1]] }), 'msgpack', limits), { a: [[1]] });
  assert.throws(() => decodeBody(encode({ a: [[[1]]] }), 'msgpack', limits), /nests deeper/);
});

validation('request fingerprints ignore key order and encoding', () => {
  assert.is(fingerprint({ a: 1, b: { c: [1, 2], d: 'x' } }), fingerprint({ b: { d: 'x', c: [1, 2] }, a: 1 }));
  assert.is.not(fingerprint({ a: 1 }), fingerprint({ a: 2 }));
  assert.is(fingerprint({ a: 1, b: undefined }), fingerprint({ a: 1 }));
});

validation('rate limit: a token bucket per tenant refills over time', () => {
  const q = new Quotas({ defaults: { requestsPerSecond: 2, burst: 2 } });
  q.takeRequest('t', 0);
  q.takeRequest('t', 0);
  assert.throws(() => q.takeRequest('t', 0), /requests\/s/);
  q.takeRequest('u', 0);
  q.takeRequest('t', 500); // one token back after half a second
  assert.throws(() => q.takeRequest('t', 500), /requests\/s/);
});

validation.run();
