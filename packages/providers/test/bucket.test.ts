import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { onAbort } from '@kiln/sim-cloud';
import { TaskAbortedError, TokenBucket, sleep } from '../src/index.js';

const test = suite('token bucket and shared abort listeners');

test('a token at hand is taken at once; the others queue and are served in arrival order', async () => {
  const bucket = new TokenBucket(50, 2);
  assert.ok(bucket.tryTake());
  assert.ok(bucket.tryTake());
  assert.not.ok(bucket.tryTake(), 'the burst is spent');
  const order: number[] = [];
  const takers = [1, 2, 3].map((n) => bucket.take().then(() => order.push(n)));
  assert.not.ok(bucket.tryTake(), 'a newcomer does not jump the queue');
  await Promise.all(takers);
  assert.equal(order, [1, 2, 3]);
});

test('an aborted taker leaves the queue with TaskAbortedError; the others still get their tokens', async () => {
  const bucket = new TokenBucket(20, 1);
  assert.ok(bucket.tryTake());
  const ac = new AbortController();
  const results: string[] = [];
  const first = bucket.take(ac.signal).then(
    () => results.push('first'),
    (e) => results.push(e instanceof TaskAbortedError ? 'first aborted' : 'first failed'),
  );
  const second = bucket.take().then(() => results.push('second'));
  ac.abort();
  await Promise.all([first, second]);
  assert.equal(results, ['first aborted', 'second']);
  let rejected: unknown;
  await bucket.take(ac.signal).catch((e) => (rejected = e));
  assert.instance(rejected, TaskAbortedError, 'an already aborted signal is refused at once');
});

test('a pause holds every taker until it is over', async () => {
  const bucket = new TokenBucket(1000, 10);
  bucket.pause(150);
  assert.not.ok(bucket.tryTake());
  const started = Date.now();
  await bucket.take();
  assert.ok(Date.now() - started >= 100, 'served only after the pause');
});

test('onAbort: one registration per call, removable, all called once on abort', async () => {
  const ac = new AbortController();
  const calls: string[] = [];
  const dropA = onAbort(ac.signal, () => calls.push('a'));
  onAbort(ac.signal, () => calls.push('b'));
  const f = () => calls.push('c');
  onAbort(ac.signal, f);
  const dropC2 = onAbort(ac.signal, f);
  dropA();
  dropC2();
  ac.abort();
  assert.equal(calls.sort(), ['b', 'c']);
  ac.abort();
  assert.is(calls.length, 2, 'never called twice');
  assert.not.throws(() => onAbort(undefined, () => calls.push('x'))());
});

test('sleep ends with TaskAbortedError when its signal aborts', async () => {
  const ac = new AbortController();
  let outcome = 'pending';
  const s = sleep(60_000, ac.signal).then(
    () => (outcome = 'slept'),
    (e) => (outcome = e instanceof TaskAbortedError ? 'aborted' : 'failed'),
  );
  ac.abort();
  await s;
  assert.is(outcome, 'aborted');
});

test.run();
