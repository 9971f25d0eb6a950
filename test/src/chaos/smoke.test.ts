import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runScenario } from './scenario.js';

/**
 * The chaos suite's smoke run (the full one is `npm run chaos`, docs/chaos.md): one scenario
 * with a fixed seed on the real test bed (3 nats-servers with R3 buckets and streams, 3
 * `kiln engine` processes, the sim cloud as a process): two small stacks (a network, servers,
 * an OS::Heat::None, a scaling group of servers) created, updated and resized while an engine
 * is SIGKILLed (and replaced), the cloud API answers 5xx in a burst (some creates answered 500
 * after they happened), the sim cloud is SIGKILLed and restarted on its state and a nats-server
 * node is SIGKILLed and restarted on its store, with overlapping writes allowed. Every invariant
 * must hold: converged within the bound, generations exactly as acknowledged, events never
 * backwards, the cloud inventory equal to the stacks' resources.
 */
test('chaos smoke: engine SIGKILL, cloud API error burst, sim cloud restart, nats-server SIGKILL', async () => {
  const r = await runScenario({
    seed: 20261128,
    stacks: 2,
    faults: ['engine-kill', 'api-burst', 'sim-restart', 'nats-kill'],
    // Generous: a step usually converges in 3-15 s, but partition takeovers have taken up to 56 s (docs/chaos.md).
    settleMs: 90_000,
    log: (line) => process.stdout.write(`[chaos] ${line}\n`),
  });
  const replay = `replay: npm run chaos -- --seed ${r.seed} --scenarios 1 --stacks 2 --faults engine-kill,api-burst,sim-restart,nats-kill`;
  assert.is(r.faults.filter((f) => f.converged).length, 4, `every step converged (${replay}):\n${r.violations.join('\n')}`);
  assert.equal(r.violations, [], `${replay}\n${r.violations.join('\n')}`);
});

test.run();
