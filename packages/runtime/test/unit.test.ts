import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { actorKey, addressOfKey, decodeToken, effectId, encodeToken, fnv1a, parseAddress, partitionOf } from '../src/address.js';
import { TimerHeap } from '../src/heap.js';
import { fairShare, isClaimable, isPreferred, planLeases, validUntil } from '../src/lease.js';
import { stepActor, stateOf, type ActorRecord, type Incoming } from '../src/step.js';
import { counter, type CounterMsg } from './fixtures/counter.js';

const inc = (seq: number, i = `m${seq}`, m: CounterMsg = { op: 'inc' }): Incoming => ({ seq, env: { i, m } });
const self = 'counter/a';
const behavior = counter as never;

test('addresses round-trip through keys, odd ids included', () => {
  for (const a of ['counter/x', 'stack/my-stack_1', 'resource/stack.web/0', 'res/ünïcode id', 'a/=weird', 'b/a.b.c>*']) {
    const key = actorKey(a);
    assert.match(key, /^[-/_=.a-zA-Z0-9]+$/);
    assert.is(key.split('.').length, 2, key);
    assert.is(addressOfKey(key), a);
  }
  assert.is(encodeToken('plain-id_1'), 'plain-id_1');
  assert.is(decodeToken(encodeToken('x y')), 'x y');
  assert.is(addressOfKey('nodot'), undefined);
  assert.is(addressOfKey('a.b.c'), undefined);
  assert.throws(() => parseAddress('NoSlash'), /type/);
  assert.throws(() => parseAddress('Upper/x'), /type/);
  assert.throws(() => parseAddress('t/'), /type/);
});

test('partition hashing is stable FNV-1a and spreads addresses', () => {
  assert.is(fnv1a(''), 0x811c9dc5);
  assert.is(fnv1a('a'), 0xe40c292c);
  assert.is(partitionOf('counter/a', 32), fnv1a('counter/a') % 32);
  const counts = new Array(32).fill(0);
  for (let i = 0; i < 32_000; i++) counts[partitionOf(`counter/a${i}`, 32)]++;
  for (const c of counts) assert.ok(c > 800 && c < 1200, `uneven: ${c}`);
});

test('effect ids are deterministic per (address, message, index)', () => {
  assert.is(effectId('a/b', 'm1', 0), effectId('a/b', 'm1', 0));
  assert.is.not(effectId('a/b', 'm1', 0), effectId('a/b', 'm1', 1));
  assert.is.not(effectId('a/b', 'm1', 0), effectId('a/c', 'm1', 0));
});

test('a batch applies in order and is stored once with the last sequence', () => {
  const out = stepActor(behavior, self, undefined, [inc(3), inc(7), inc(9)], 1000);
  assert.is(out.record!.q, 9);
  assert.is((stateOf(out.record) as { n: number }).n, 3);
  assert.is(out.duplicates, 0);
});

test('redeliveries (sequence <= stored q) are skipped, the rest applied', () => {
  const stored: ActorRecord = { q: 7, s: { n: 2, last: {}, disorder: 0, fired: [], results: [] } };
  const out = stepActor(behavior, self, stored, [inc(3), inc(7), inc(8)], 1000);
  assert.is(out.duplicates, 2);
  assert.is((stateOf(out.record) as { n: number }).n, 3);
  const none = stepActor(behavior, self, stored, [inc(7)], 1000);
  assert.is(none.record, undefined);
  assert.is(none.duplicates, 1);
});

test('pack entries are positioned by (sequence, index): a half-applied pack applies each remaining entry once', () => {
  const entry = (seq: number, idx: number): Incoming => ({ seq, idx, env: { i: `p${seq}.${idx}`, m: { op: 'inc' } } });
  const first = stepActor(behavior, self, undefined, [entry(5, 0), entry(5, 2)], 0);
  assert.is(first.record!.q, 5);
  assert.is(first.record!.x, 2);
  // Redelivered: entries 0 and 2 are stored already, entry 3 and the next message are not.
  const again = stepActor(behavior, self, first.record, [entry(5, 0), entry(5, 2), entry(5, 3), inc(6)], 0);
  assert.is(again.duplicates, 2);
  assert.is((stateOf(again.record) as { n: number }).n, 4);
  assert.is(again.record!.q, 6);
  assert.is(again.record!.x, undefined, 'an unpacked message is at index 0');
  // A record written before packs existed (no x) deduplicates entry 0 of its own sequence only.
  const legacy = stepActor(behavior, self, { q: 7, s: { n: 1, last: {}, disorder: 0, fired: [], results: [] } }, [entry(7, 0), entry(7, 1)], 0);
  assert.is(legacy.duplicates, 1);
  assert.is(legacy.record!.x, 1);
  const fin = stepActor(behavior, self, undefined, [{ seq: 8, idx: 4, env: { i: 'f', m: { op: 'finish' } } }], 0);
  assert.equal(fin.record, { q: 8, x: 4, d: true }, 'a tombstone keeps the position');
});

test('sends get deterministic ids and go to the outbox', () => {
  const out = stepActor(behavior, self, undefined, [inc(1, 'x', { op: 'send', to: 'counter/b', msg: { op: 'inc' } })], 0);
  assert.equal(out.outbox, [{ id: effectId(self, 'x', 0), to: 'counter/b', m: { op: 'inc' } }]);
  assert.equal(out.record!.o, out.outbox);
  const next = stepActor(behavior, self, out.record, [inc(2)], 0);
  assert.is(next.record!.o, undefined, 'a later step clears the outbox');
});

test('timers: armed in the record, fire once when due, stale firings dropped', () => {
  const armed = stepActor(behavior, self, undefined, [inc(1, 'a', { op: 'timer', name: 't', delayMs: 100 })], 1000);
  assert.equal(armed.record!.t, { t: { at: 1100, m: { set: 1000 } } });
  assert.is(armed.timerIndex, 'put', 'the first timer writes the index entry');
  const second = stepActor(behavior, self, armed.record, [inc(2, 'b', { op: 'timer', name: 'u', delayMs: 200 })], 1000);
  assert.is(second.timerIndex, undefined, 'another timer of an actor with an entry writes none');
  const early = stepActor(behavior, self, armed.record, [{ seq: 2, env: { i: 'f1', c: { fire: 't' } } }], 1050);
  assert.is(early.record, undefined, 'an early firing changes nothing');
  assert.equal(early.timersToSchedule, [{ name: 't', at: 1100 }]);
  const fired = stepActor(behavior, self, armed.record, [{ seq: 2, env: { i: 'f1', c: { fire: 't' } } }], 1100);
  assert.equal((stateOf(fired.record) as { fired: string[] }).fired, ['t']);
  assert.is(fired.record!.t, undefined);
  assert.is(fired.timerIndex, 'delete', 'the last timer gone, its entry goes');
  const firedOne = stepActor(behavior, self, second.record, [{ seq: 3, env: { i: 'f1', c: { fire: 't' } } }], 1100);
  assert.is(firedOne.timerIndex, undefined, 'a timer left: the entry stays');
  const again = stepActor(behavior, self, fired.record, [{ seq: 3, env: { i: 'f2', c: { fire: 't' } } }], 1200);
  assert.is(again.record, undefined, 'a second firing is stale');
  assert.is(again.timerIndex, 'delete', 'a stale firing of an actor without timers drops an orphan entry');
  const cancelled = stepActor(behavior, self, armed.record, [inc(2, 'c', { op: 'cancel', name: 't' })], 1000);
  assert.is(cancelled.record!.t, undefined);
  assert.is(cancelled.timerIndex, 'delete');
});

test('tasks: recorded with an idempotency key, result delivered once, resumed after takeover', () => {
  const started = stepActor(behavior, self, undefined, [inc(1, 'm', { op: 'task', name: 'x', input: 5 })], 0);
  const idem = effectId(self, 'm', 0);
  assert.equal(started.tasksRecorded, [idem]);
  assert.equal(started.tasksToRun, [{ idem, task: { n: 'x', task: 'echo', in: 5 } }]);
  const resumed = stepActor(behavior, self, started.record, [{ seq: 2, env: { i: 'r', c: { resume: true } } }], 0);
  assert.equal(resumed.tasksToRun, [{ idem, task: { n: 'x', task: 'echo', in: 5 } }]);
  const result = { kind: '$task', name: 'x', ok: true, value: 5, idempotencyKey: idem };
  const done = stepActor(behavior, self, started.record, [{ seq: 3, env: { i: `${idem}/r`, k: idem, m: result } }], 0);
  assert.equal((stateOf(done.record) as { results: unknown[] }).results, [5]);
  assert.is(done.record!.k, undefined);
  assert.equal(done.tasksDone, [idem]);
  const twice = stepActor(behavior, self, done.record, [{ seq: 4, env: { i: `${idem}/r2`, k: idem, m: result } }], 0);
  assert.is(twice.record, undefined, 'a rerun task answering again is ignored');
  // A resume from the sweep says so (the runtime then drops the actor's task entry if no task is left).
  const swept = stepActor(behavior, self, done.record, [{ seq: 5, env: { i: 'r2', c: { resume: true, swept: true } } }], 0);
  assert.ok(swept.sweptResume);
  assert.equal(swept.tasksToRun, []);
  assert.not.ok(resumed.sweptResume);
});

test('a throwing reducer dead-letters that message only; finishing leaves a tombstone', () => {
  const out = stepActor(behavior, self, undefined, [inc(1), inc(2, 'b', { op: 'boom' }), inc(3)], 0);
  assert.equal(out.deadLetters.map((d) => d.inc.seq), [2]);
  assert.match(out.deadLetters[0]!.reason, /boom requested/);
  assert.is((stateOf(out.record) as { n: number }).n, 2);
  const fin = stepActor(behavior, self, out.record, [inc(4, 'f', { op: 'finish' })], 0);
  assert.equal(fin.record, { q: 4, d: true });
  assert.is(stateOf(fin.record), undefined);
  const dup = stepActor(behavior, self, fin.record, [inc(4, 'f', { op: 'finish' })], 0);
  assert.is(dup.duplicates, 1, 'the tombstone still deduplicates');
  const reborn = stepActor(behavior, self, fin.record, [inc(5)], 0);
  assert.is((stateOf(reborn.record) as { n: number }).n, 1);
});

test('lease decisions: claimable, fair share, claims and releases', () => {
  assert.ok(isClaimable(undefined, 0));
  assert.ok(isClaimable({ value: { node: '', exp: 0 }, revision: 1 }, 0));
  assert.ok(isClaimable({ value: { node: 'a', exp: 99 }, revision: 1 }, 100));
  assert.not.ok(isClaimable({ value: { node: 'a', exp: 101 }, revision: 1 }, 100));
  assert.is(fairShare(32, 3), 11);
  assert.is(fairShare(32, 0), 32);
  const all = Array.from({ length: 32 }, (_, i) => i);
  const first = planLeases({ partitions: 32, node: 'a', alive: ['a'], owned: new Set(), claimable: all });
  assert.is(first.claim.length, 32);
  const joined = planLeases({ partitions: 32, node: 'a', alive: ['a', 'b'], owned: new Set(all), claimable: [] });
  assert.is(joined.release.length, 16);
  const b = planLeases({ partitions: 32, node: 'b', alive: ['a', 'b'], owned: new Set(), claimable: joined.release });
  assert.equal(new Set(b.claim), new Set(joined.release));
  const balance = planLeases({ partitions: 16, node: 'a', alive: ['a', 'b', 'c'], owned: new Set([0, 1, 2, 3, 4, 5]), claimable: [], others: [6, 4] });
  assert.is(balance.release.length, 1, 'at the ceiling with a node below the floor: give one back');
  const settled = planLeases({ partitions: 16, node: 'a', alive: ['a', 'b', 'c'], owned: new Set([0, 1, 2, 3, 4]), claimable: [], others: [6, 5] });
  assert.equal(settled, { claim: [], release: [] });
  // Preferred partitions are claimed first and every partition has exactly one preferred node.
  for (const p of all) assert.is(['a', 'b', 'c'].filter((n) => isPreferred(p, n, ['a', 'b', 'c'])).length, 1);
  assert.is(validUntil(1000, 3000, 600), 3400);
});

test('timer heap pops in time order and retains by predicate', () => {
  const h = new TimerHeap<{ at: number; p: number }>();
  for (const at of [5, 1, 9, 3, 7, 2]) h.push({ at, p: at % 2 });
  assert.is(h.peek()!.at, 1);
  h.retain((x) => x.p === 1);
  const out: number[] = [];
  while (h.size) out.push(h.pop()!.at);
  assert.equal(out, [1, 3, 5, 7, 9]);
});

test.run();
