import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { completeCount, isFailed, isSettled, progressLine } from '../src/progress.js';
import { natsUrl } from '../src/nats-options.js';
import { formatTable } from '../src/output.js';
import { stackJson } from '../src/commands/stack.js';

test('settled and failed statuses', () => {
  assert.ok(isSettled('CREATE_COMPLETE') && isSettled('UPDATE_FAILED') && isSettled('DELETE_COMPLETE'));
  assert.not.ok(isSettled('CREATE_IN_PROGRESS'));
  assert.ok(isFailed('DELETE_FAILED'));
  assert.not.ok(isFailed('CREATE_COMPLETE'));
  assert.is(completeCount({ CREATE_COMPLETE: 3, UPDATE_COMPLETE: 1, CREATE_IN_PROGRESS: 2, CREATE_FAILED: 1 }), 4);
});

test('progress line: bar, counts by status, stack status, elapsed time', () => {
  const line = progressLine({ name: 'web', status: 'CREATE_IN_PROGRESS', resources: { total: 4, by_status: { CREATE_COMPLETE: 1, CREATE_IN_PROGRESS: 3 } } }, 75_000, 8);
  assert.is(line, '[##......] 1/4  CREATE_COMPLETE 1 · CREATE_IN_PROGRESS 3  web CREATE_IN_PROGRESS  01:15');
  // Counts ahead of the total (members reported before the group's total includes them).
  assert.match(progressLine({ name: 'g', status: 'CREATE_IN_PROGRESS', resources: { total: 1, by_status: { CREATE_COMPLETE: 3 } } }, 0, 4), /^\[####\] 3\/3 /);
  assert.match(progressLine({ name: 'e', status: 'CREATE_COMPLETE', resources: { total: 0, by_status: {} } }, 0, 4), /^\[####\] 0\/0  no resources yet/);
});

test('NATS URL: flag, then $KILN_NATS_URL, then .kiln/nats-url, then the default', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-cli-url-'));
  try {
    assert.is(natsUrl(undefined, {}, dir), 'nats://127.0.0.1:4222');
    mkdirSync(join(dir, '.kiln'));
    writeFileSync(join(dir, '.kiln', 'nats-url'), 'nats://127.0.0.1:5555\n');
    assert.is(natsUrl(undefined, {}, dir), 'nats://127.0.0.1:5555');
    assert.is(natsUrl(undefined, { KILN_NATS_URL: 'nats://a:1' }, dir), 'nats://a:1');
    assert.is(natsUrl('nats://b:2', { KILN_NATS_URL: 'nats://a:1' }, dir), 'nats://b:2');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('table and --json shapes', () => {
  assert.is(formatTable(['a', 'bb'], [['xyz', 1], [null, { k: 1 }]]), 'a    bb\n---  -------\nxyz  1\n     {"k":1}\n');
  const view = {
    id: 'i', name: 'n', status: 'CREATE_COMPLETE', generation: 2, created_at: 'c', updated_at: 'u',
    outputs: [{ key: 'ok', value: [1] }, { key: 'bad', error: 'boom' }],
    resources: { total: 1, by_status: { CREATE_COMPLETE: 1 } },
  };
  assert.equal(stackJson(view), {
    id: 'i', name: 'n', status: 'CREATE_COMPLETE', status_reason: '', generation: 2, created_at: 'c', updated_at: 'u', parameters: {},
    outputs: { ok: [1], bad: { error: 'boom' } },
    resources: { total: 1, by_status: { CREATE_COMPLETE: 1 } },
  });
});

test.run();
