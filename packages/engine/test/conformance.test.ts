/**
 * Every no-cloud conformance template (MANIFEST.tsv needs_cloud=no) whose resource types the
 * engine has, created through the pure reducers: each must end READY, or FAILED with a reason
 * (a required parameter not given, a failing TestResource...), never stuck and never throwing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadStackRequest } from '@kiln/template';
import { builtinTypes } from '../src/index.js';
import { Sim } from './sim.js';

const root = fileURLToPath(new URL('../../../../../shared/conformance/hot/', import.meta.url));
const known = new Set(builtinTypes.map((t) => t.name));
const rows = readFileSync(root + 'MANIFEST.tsv', 'utf8')
  .split('\n')
  .slice(1)
  .map((l) => l.split('\t'))
  .filter((c) => c[6] === 'no' && (c[4] ?? '').split(',').every((t) => !t || known.has(t) || t.endsWith('.yaml')));

test('no-cloud conformance templates converge or fail with a reason', () => {
  const outcome: Record<string, number> = { READY: 0, FAILED: 0, SKIPPED: 0 };
  for (const [file] of rows) {
    let req;
    try {
      req = loadStackRequest(root + file!);
    } catch {
      outcome.SKIPPED!++; // a file the template layer rejects or whose nested files are absent
      continue;
    }
    const sim = new Sim({ seed: file! });
    sim.setDesired('s', { op: 'create', name: 'conf', spec: { template: req.template, environment: req.environment, files: req.files, timeoutMins: 1 } });
    sim.run(3 * 3600_000);
    const s = sim.stack('s');
    assert.ok(s.status === 'READY' || s.status === 'FAILED', `${file}: ${s.status}`);
    if (s.status === 'FAILED') assert.ok(s.reason.length > 0, file);
    outcome[s.status]!++;
    // And every one deletes cleanly.
    sim.setDesired('s', { op: 'delete', name: 'conf' });
    sim.run(3 * 3600_000);
    assert.is(sim.stack('s').status, 'DELETED', file);
    assert.is(sim.physicalCount(), 0, `${file}: leftovers after delete`);
  }
  process.stderr.write(`conformance: ${JSON.stringify(outcome)} of ${rows.length}\n`);
  assert.ok(outcome.READY! >= rows.length / 3, JSON.stringify(outcome));
});

test.run();
