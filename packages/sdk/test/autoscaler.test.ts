import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { PolicyRunner, groupCapacity, parameterCapacity, type Decision, type KilnClient } from '../src/index.js';
import { metricSource } from '../examples/autoscaler.js';
import { Installation, TENANT_PASSWORD, group, repoRoot, serverMember } from './fixture.js';
import { waitFor } from '@kiln/natsd';

/**
 * The policy runner and the example autoscaler driving a real group through the real API and
 * engine, whose servers live in the simulated cloud.
 */
const ctx = {} as { k: Installation; a: KilnClient; dir: string };
const test = suite('autoscaler');

test.before(async () => {
  ctx.k = await Installation.start({ cloud: true });
  ctx.a = await ctx.k.client('tenant-a');
  ctx.dir = mkdtempSync(join(tmpdir(), 'kiln-sdk-'));
});

test.after(async () => {
  await ctx.a?.close();
  await ctx.k?.stop();
  rmSync(ctx.dir, { recursive: true, force: true });
});

const members = async (stack: string) => (await ctx.a.groupHealth(stack, 'workers')).counts;

test('the runner drives group.capacity.set', async () => {
  await ctx.a.createStack('direct', { template: group(2) });
  await waitFor('direct to converge', async () => (await members('direct')).healthy === 2 || undefined);
  const decisions: Decision[] = [];
  const runner = new PolicyRunner({
    policy: { kind: 'target_tracking', target: 50, min: 1, max: 6, scaleOutCooldownMs: 0, scaleInCooldownMs: 0 },
    metric: async () => 100,
    target: groupCapacity(ctx.a.group('direct', 'workers')),
    onDecision: (d) => decisions.push(d),
  });
  const first = await runner.tick();
  assert.equal([first?.action, first?.capacity], ['set', 4], JSON.stringify(decisions));
  await waitFor('4 healthy members', async () => {
    const c = await members('direct');
    return (c.total === 4 && c.healthy === 4) || undefined;
  }, 60_000);
});

test('a failing metric makes no decision; a bad policy is refused up front', async () => {
  const runner = new PolicyRunner({
    policy: { kind: 'step', adjustmentType: 'change_in_capacity', steps: [{ adjustment: 1 }], cooldownMs: 0, min: 0, max: 3 },
    metric: async () => {
      throw new Error('metrics backend down');
    },
    target: { describe: 'nothing', set: async () => assert.unreachable('set without a metric'), current: async () => 1 },
  });
  assert.is(await runner.tick(), undefined);
  assert.throws(
    () => new PolicyRunner({ policy: { kind: 'target_tracking', target: -1, min: 0, max: 1, scaleOutCooldownMs: 0, scaleInCooldownMs: 0 }, metric: async () => 1, target: groupCapacity(ctx.a.group('x', 'y')) }),
    (e: Error & { path?: string }) => e.path === 'policy.target',
  );
});

test('the runner scales a parameter-sized group out and in, step by step, without waiting for convergence', async () => {
  await ctx.a.createStack('stepped', { template: group(1) });
  let load = 95;
  const runner = new PolicyRunner({
    policy: { kind: 'step', adjustmentType: 'change_in_capacity', steps: [{ upper: 20, adjustment: -2 }, { lower: 80, adjustment: 2 }], cooldownMs: 0, min: 1, max: 5 },
    metric: async () => load,
    target: parameterCapacity(ctx.a, 'stepped', 'size', 'workers'),
    initialCapacity: 1,
  });
  // Three decisions back to back: each is a new desired generation; the newest wins.
  for (let i = 0; i < 3; i++) await runner.tick();
  assert.is(runner.state?.capacity, 5);
  await waitFor('5 healthy members', async () => {
    const c = await members('stepped');
    return (c.total === 5 && c.healthy === 5) || undefined;
  }, 60_000);
  load = 5;
  await runner.tick();
  await runner.tick();
  assert.is(runner.state?.capacity, 1);
  await waitFor('1 member', async () => {
    const c = await members('stepped');
    return (c.total === 1 && c.healthy === 1) || undefined;
  }, 60_000);
});

test('metricSource reads a number from a file or a URL (text or {"value": n})', async () => {
  const file = join(ctx.dir, 'm.txt');
  writeFileSync(file, ' 42.5\n');
  assert.is(await metricSource({ file })(), 42.5);
  let body = '17';
  const server = createServer((_req, res) => res.end(body));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/load`;
    assert.is(await metricSource({ url })(), 17);
    body = '{"value": 3}';
    assert.is(await metricSource({ url })(), 3);
  } finally {
    server.close();
  }
});

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((r) => (child.exitCode !== null ? r(child.exitCode) : child.once('exit', (code) => r(code))));
}

/** Servers of the sim cloud, by status. */
async function cloudServers(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const s of await ctx.k.cloud!.client.list('server')) out[s.status] = (out[s.status] ?? 0) + 1;
  return out;
}

test('the example autoscaler (a separate process) scales a group of cloud servers up to max and back down to min', async () => {
  const before = (await cloudServers()).ACTIVE ?? 0;
  await ctx.a.createStack('scaled', { template: group(1, serverMember) });
  await waitFor('1 member', async () => ((await members('scaled')).healthy === 1) || undefined);
  const metricFile = join(ctx.dir, 'load');
  writeFileSync(metricFile, '100');
  const script = join(repoRoot, 'packages', 'sdk', 'dist', 'examples', 'autoscaler.js');
  const args = ['--nats', ctx.k.server.url, '--tenant', 'tenant-a', '--user', 'tenant-a', '--password', TENANT_PASSWORD['tenant-a']!];
  args.push('--stack', 'scaled', '--group', 'workers', '--target', '50', '--min', '1', '--max', '4');
  args.push('--scale-out-cooldown', '0', '--scale-in-cooldown', '0', '--interval', '0.2', '--metric-file', metricFile);
  let output = '';
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KILN_LOG_LEVEL: 'info' } });
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  try {
    // Metric 100 against target 50: 1 -> 2 -> 4 (max).
    await waitFor('scaled out to 4 healthy members', async () => {
      const c = await members('scaled');
      return (c.total === 4 && c.healthy === 4) || undefined;
    }, 60_000);
    assert.equal(await cloudServers(), { ACTIVE: before + 4 }, '4 servers running in the cloud');
    writeFileSync(metricFile, '10');
    // 4 × 10/50 = 0.8 -> 1 (min).
    await waitFor('scaled in to 1 member', async () => {
      const c = await members('scaled');
      return (c.total === 1 && c.healthy === 1) || undefined;
    }, 60_000);
    await waitFor('the removed servers deleted in the cloud', async () => {
      const servers = await cloudServers();
      return (servers.ACTIVE === before + 1 && Object.keys(servers).length === 1) || undefined;
    });
    child.kill('SIGTERM');
    assert.is(await exited(child), 0, output);
    const sets = output.split('\n').filter((l) => l.includes('"capacity set"')).map((l) => (JSON.parse(l) as { capacity: number }).capacity);
    assert.equal(sets, [2, 4, 1], output);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test.run();
