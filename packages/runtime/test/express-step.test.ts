import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { effectId } from '../src/address.js';
import { stepActor, stateOf, type ActorRecord, type Incoming } from '../src/step.js';
import { counter, type CounterMsg, type CounterState } from './fixtures/counter.js';

// Express delivery at the level of the pure step: a message handed over early is applied without
// moving the record's position, its later stream delivery is skipped, and older mail still applies.

const self = 'counter/a';
const behavior = counter as never;
const msg = (seq: number, m: CounterMsg = { op: 'inc' }, idx?: number): Incoming => ({ seq, idx, env: { i: `m${seq}.${idx ?? 0}`, m } });
const early = (seq: number, m: CounterMsg = { op: 'inc' }, idx?: number): Incoming => ({ ...msg(seq, m, idx), early: true });
const n = (rec: ActorRecord | undefined) => (stateOf(rec) as CounterState).n;
const at5: ActorRecord = { q: 5, s: { n: 1, last: {}, disorder: 0, fired: [], results: [] } };

test('an early message is applied without moving q; its stream delivery is skipped; older mail still applies', () => {
  const e = stepActor(behavior, self, at5, [early(10)], 0);
  assert.is(e.appliedEarly, 1);
  assert.is(n(e.record), 2);
  assert.is(e.record!.q, 5, 'the position stays: older mail of the actor is still in the stream');
  assert.equal(e.record!.e, [[10, 0]]);
  // The stream delivers mail published before the early message, then the early message itself.
  const s = stepActor(behavior, self, e.record, [msg(7), msg(10), msg(11)], 0);
  assert.is(n(s.record), 4, 'seq 7 and 11 applied, 10 not again');
  assert.is(s.passedEarly, 1);
  assert.is(s.duplicates, 0, 'not a redelivery');
  assert.is(s.record!.q, 11);
  assert.is(s.record!.e, undefined, 'passed positions are pruned');
});

test('a stream delivery of only early-applied mail writes nothing', () => {
  const e = stepActor(behavior, self, at5, [early(10)], 0);
  const s = stepActor(behavior, self, e.record, [msg(10)], 0);
  assert.is(s.record, undefined);
  assert.is(s.passedEarly, 1);
  // A redelivery of it is still skipped (the record kept its early position).
  assert.is(stepActor(behavior, self, e.record, [msg(10)], 0).record, undefined);
});

test('an early message handed over twice, or already delivered by the stream, is skipped silently', () => {
  const e = stepActor(behavior, self, at5, [early(10)], 0);
  const twice = stepActor(behavior, self, e.record, [early(10)], 0);
  assert.is(twice.record, undefined);
  assert.is(twice.appliedEarly, 0);
  const late = stepActor(behavior, self, at5, [early(4), early(5)], 0);
  assert.is(late.record, undefined, 'positions at or before q were applied by the stream');
  assert.is(late.duplicates, 0, 'no redelivery either');
});

test('early positions are pack positions; q passing them prunes them', () => {
  const e1 = stepActor(behavior, self, at5, [early(20, { op: 'inc' }, 3)], 0);
  const e2 = stepActor(behavior, self, e1.record, [early(30)], 0);
  assert.equal(e2.record!.e, [
    [20, 3],
    [30, 0],
  ]);
  // The pack at 20 comes: entry 2 applies, 3 is skipped, 4 applies; 30 stays early.
  const s = stepActor(behavior, self, e2.record, [msg(20, { op: 'inc' }, 2), msg(20, { op: 'inc' }, 3), msg(20, { op: 'inc' }, 4)], 0);
  assert.is(n(s.record), n(e2.record) + 2);
  assert.is(s.passedEarly, 1);
  assert.equal(s.record!.e, [[30, 0]]);
  assert.is(s.record!.x, 4);
  // A later stream message passing 30 without delivering it (not expected, but stream order makes 30 done) prunes it too.
  const past = stepActor(behavior, self, s.record, [msg(31)], 0);
  assert.is(past.record!.e, undefined);
});

test('an early task result is delivered once: removed from pending, its stream copy and a rerun answer skipped', () => {
  const started = stepActor(behavior, self, undefined, [msg(1, { op: 'task', name: 'x', input: 7 })], 0);
  const idem = effectId(self, 'm1.0', 0);
  const result = { kind: '$task', name: 'x', ok: true, value: 7, idempotencyKey: idem };
  const r = (seq: number, i = `${idem}/r`): Incoming => ({ seq, env: { i, k: idem, m: result } });
  const done = stepActor(behavior, self, started.record, [{ ...r(9), early: true }], 0);
  assert.equal((stateOf(done.record) as CounterState).results, [7]);
  assert.equal(done.tasksDone, [idem]);
  assert.is(done.record!.k, undefined);
  assert.is(done.record!.q, 1);
  const stream = stepActor(behavior, self, done.record, [msg(2), r(9), r(12, 'rerun')], 0);
  assert.equal((stateOf(stream.record) as CounterState).results, [7]);
  assert.is(n(stream.record), 3, 'only seq 2 applied');
});

test('a reducer throwing on an early message leaves it to its stream delivery (dead-lettered there, task kept pending)', () => {
  const e = stepActor(behavior, self, at5, [early(10, { op: 'boom' })], 0);
  assert.is(e.record, undefined);
  assert.equal(e.deadLetters, []);
  const s = stepActor(behavior, self, at5, [msg(10, { op: 'boom' })], 0);
  assert.is(s.deadLetters.length, 1);
});

test('an early step over a pack-publication record marks it published (p) until q moves; a tombstone keeps e', () => {
  const tail: ActorRecord = { ...at5, x: 2, g: true, o: [{ id: 'a', to: 'counter/b', m: 1 }] };
  const e = stepActor(behavior, self, tail, [early(10, { op: 'send', to: 'counter/c', msg: 2, express: true })], 0);
  assert.is(e.record!.p, true);
  assert.is(e.record!.g, undefined);
  assert.equal(e.record!.o, [{ id: effectId(self, 'm10.0', 0), to: 'counter/c', m: 2, xp: true }], 'an express send is marked in the outbox');
  const again = stepActor(behavior, self, e.record, [early(11)], 0);
  assert.is(again.record!.p, true, 'still at the same position');
  const moved = stepActor(behavior, self, again.record, [msg(8)], 0);
  assert.is(moved.record!.p, undefined);
  assert.equal(moved.record!.e, [
    [10, 0],
    [11, 0],
  ]);
  const plain = stepActor(behavior, self, at5, [early(10)], 0);
  assert.is(plain.record!.p, undefined, 'only over a record marked g');
  const fin = stepActor(behavior, self, plain.record, [msg(6, { op: 'finish' })], 0);
  assert.equal(fin.record, { q: 6, d: true, e: [[10, 0]] });
});

test.run();
