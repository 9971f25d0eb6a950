import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { KilnEvent } from '@kiln/sdk';
import { checkEvents } from './invariants.js';
import { desiredOf, expectedServerNames, type AckedWrite, type StackShape } from './model.js';
import { rng } from './scenario.js';

/** The chaos harness's own judgement, without a test bed: the model replay and the event check. */
const shape = (size: number, label = 'a'): StackShape => ({ servers: 1, label, flavor: 'm1.tiny', size });
const at = (gen: number, write: AckedWrite['write']): AckedWrite => ({ gen, write, at: 0 });

test('the desired state replays acknowledged writes in generation order, with the capacity-override rule', () => {
  // Acknowledged out of order: generation order decides.
  const writes = [at(3, { kind: 'update', shape: shape(2, 'c') }), at(1, { kind: 'create', shape: shape(2) }), at(2, { kind: 'capacity', capacity: 4 })];
  const kept = desiredOf(writes)!;
  assert.is(kept.gen, 3);
  // The update left the template's size at 2, the size the override was set against: it stays.
  assert.equal(expectedServerNames('st', kept), ['st-asg-c-m1.tiny', 'st-asg-c-m1.tiny', 'st-asg-c-m1.tiny', 'st-asg-c-m1.tiny', 'st-s0-c-m1.tiny']);
  // An update that changes the size wins over the override.
  const changed = desiredOf([...writes, at(4, { kind: 'update', shape: shape(1, 'd') })])!;
  assert.equal(expectedServerNames('st', changed), ['st-asg-d-m1.tiny', 'st-s0-d-m1.tiny']);
  const deleted = desiredOf([...writes, at(4, { kind: 'delete' })])!;
  assert.ok(deleted.deleted);
  assert.equal(expectedServerNames('st', deleted), []);
});

const ev = (seq: number, status: string, generation: number, resource?: string): KilnEvent => ({
  seq,
  time: '2026-11-28T09:00:00.000Z',
  tenant: 'default',
  stack: 'id',
  ...(resource ? { resource } : {}),
  generation,
  status,
});

test('events: a normal history passes; going back a generation, redoing a completed action or acting after a delete does not', () => {
  const normal = [
    ev(1, 'CREATE_IN_PROGRESS', 1),
    ev(2, 'CREATE_IN_PROGRESS', 1, 's0'),
    ev(3, 'CREATE_COMPLETE', 1, 's0'),
    ev(4, 'CREATE_COMPLETE', 1),
    ev(5, 'UPDATE_IN_PROGRESS', 2),
    ev(6, 'UPDATE_IN_PROGRESS', 2, 's0'),
    ev(7, 'UPDATE_COMPLETE', 2, 's0'),
    // Heal: a check found drift, then a repair at the same generation.
    ev(8, 'CHECK_FAILED', 2, 's0'),
    ev(9, 'UPDATE_IN_PROGRESS', 2, 's0'),
    ev(10, 'UPDATE_COMPLETE', 2, 's0'),
    ev(11, 'UPDATE_COMPLETE', 2),
  ];
  assert.equal(checkEvents('st', normal, { generation: 2, status: 'UPDATE_COMPLETE' }), []);
  assert.is(checkEvents('st', [...normal.slice(0, 7), ev(8, 'UPDATE_IN_PROGRESS', 1, 's0'), ...normal.slice(10)], { generation: 2, status: 'UPDATE_COMPLETE' }).length, 1);
  assert.match(checkEvents('st', [...normal.slice(0, 7), ev(8, 'UPDATE_IN_PROGRESS', 2, 's0'), ...normal.slice(9)], { generation: 2, status: 'UPDATE_COMPLETE' })[0]!, /after seq 7/);
  assert.match(checkEvents('st', [...normal, ev(12, 'DELETE_COMPLETE', 3, 's0'), ev(13, 'UPDATE_IN_PROGRESS', 3, 's0')], { generation: 2, status: 'UPDATE_COMPLETE' })[0]!, /after its DELETE_COMPLETE/);
  // The stack's last event must be its final state.
  assert.match(checkEvents('st', normal, { generation: 3, status: 'DELETE_COMPLETE' })[0]!, /last stack event/);
});

test('a seed replays the same draws', () => {
  const a = rng(42);
  const b = rng(42);
  const xs = Array.from({ length: 5 }, () => a());
  assert.equal(Array.from({ length: 5 }, () => b()), xs);
  assert.not.equal(Array.from({ length: 5 }, rng(43)), xs);
});

test.run();
