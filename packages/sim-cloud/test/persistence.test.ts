import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SimCloud, SimCloudClient } from '../src/index.js';
import { FAST } from './helpers.js';
import { waitFor } from '@kiln/natsd';

const fixture = fileURLToPath(new URL('./fixture/sim-process.js', import.meta.url));

/** Starts the sim as a child process (as `kiln sim-cloud` would) and reads its URL from stdout. */
async function spawnSim(stateDir: string, extra: string[] = []): Promise<{ child: ChildProcess; client: SimCloudClient }> {
  const child = spawn(process.execPath, [fixture, '--port', '0', '--state-dir', stateDir, '--seed', '5', ...extra], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve((JSON.parse(out.slice(0, nl)) as { url: string }).url);
    });
    child.once('exit', (code) => reject(new Error(`sim-cloud process exited with ${code} before listening`)));
  });
  return { child, client: new SimCloudClient(url) };
}

function kill9(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

test('objects, keys, settings and in-flight transitions survive kill -9 of the sim process', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-sim-persist-'));
  let proc = await spawnSim(dir, ['--latency', 'default=5..20,server=4000,volume=4000,loadbalancer=4000']);
  try {
    let c = proc.client;
    const net = await c.create('network', { name: 'n' }, { key: 'net' });
    const seqBefore = (await c.stats()).seq;
    const subnet = await c.create('subnet', { network_id: net.id, cidr: '10.4.0.0/24' });
    const srv = await c.create('server', { name: 's', flavorRef: '1', imageRef: 'fedora-39', networks: [{ uuid: net.id }] }, { key: 'srv' });
    const vol = await c.create('volume', { size: 2 }, { key: 'vol' });
    const lb = await c.create('loadbalancer', { vip_subnet_id: subnet.id });
    await c.setFaults({ serverBootError: 0.5 });
    await waitFor('network ACTIVE', async () => (await c.get('network', net.id))?.status === 'ACTIVE');
    const before = await c.inventory();
    assert.is((await c.get('server', srv.id))!.status, 'BUILD', 'the server is still building when the sim dies');

    await kill9(proc.child);
    // A crash mid-write leaves a torn last line; the sim must shrug it off.
    appendFileSync(join(dir, 'wal.jsonl'), '{"seq":999999,"op":"put","obj":{"ki');
    proc = await spawnSim(dir);
    c = proc.client;

    const after = await c.inventory();
    assert.equal(after.map((o) => [o.kind, o.id, o.key, o.status]), before.map((o) => [o.kind, o.id, o.key, o.status]));
    assert.is((await c.faults()).serverBootError, 0.5, 'fault settings persist');
    assert.is((await c.create('server', { name: 'dup', flavorRef: '1', imageRef: 'fedora-39' }, { key: 'srv' })).id, srv.id, 'keys persist');
    const seen: string[] = [];
    const ac = new AbortController();
    const following = c.follow({ since: seqBefore, signal: ac.signal, onEvent: (e) => seen.push(`${e.kind}:${e.status}`), onGap: () => seen.push('gap') });
    // The transitions that were in flight finish after the restart, on their original schedule.
    await waitFor('server built', async () => ['ACTIVE', 'ERROR'].includes((await c.get('server', srv.id))!.status), 15_000);
    await waitFor('volume available', async () => (await c.get('volume', vol.id))?.status === 'available', 15_000);
    await waitFor('lb ACTIVE', async () => (await c.get('loadbalancer', lb.id))?.provisioning_status === 'ACTIVE', 15_000);
    await waitFor('change events after restart', () => seen.some((s) => s === 'volume:available'));
    assert.is(seen[0], 'gap', 'the event buffer does not survive a restart: a client behind it is told to relist');
    assert.ok((await c.stats()).seq > seqBefore, 'sequence numbers keep growing across restarts');
    ac.abort();
    await following;

    // A second sim on the same state directory is refused while the first lives.
    const second = await SimCloud.start({ stateDir: dir }).catch((e: Error) => e);
    assert.instance(second, Error);
    assert.match((second as Error).message, /in use by sim-cloud process/);
    // SIGTERM stops it cleanly.
    const code = await new Promise<number | null>((resolve) => {
      proc.child.once('exit', (c) => resolve(c));
      proc.child.kill('SIGTERM');
    });
    assert.is(code, 0);
    assert.not.ok(existsSync(join(dir, 'LOCK')), 'the lock is released');
  } finally {
    await kill9(proc.child);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the log is compacted into a snapshot and a restart reads snapshot plus log', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-sim-compact-'));
  try {
    let sim = await SimCloud.start({ stateDir: dir, seed: 1, latency: FAST });
    let c = new SimCloudClient(sim.url);
    const ids: string[] = [];
    for (let batch = 0; batch < 30; batch++) {
      const made = await Promise.all(Array.from({ length: 100 }, (_, i) => c.create('network', { name: `n${batch * 100 + i}` })));
      ids.push(...made.map((n) => n.id));
    }
    await waitFor('all networks ACTIVE', async () => (await c.inventory({ kind: 'network' })).every((n) => n.status === 'ACTIVE'));
    assert.ok(existsSync(join(dir, 'snapshot.json')), '6000 records exceed the compaction threshold');
    await c.delete('network', ids[0]!);
    const lan = await c.create('network', { name: 'lan' });
    await c.create('subnet', { network_id: lan.id, cidr: '10.6.0.0/24' });
    const before = await Promise.all([1, 2].map(() => c.create('port', { network_id: lan.id })));
    await sim.stop();
    sim = await SimCloud.start({ stateDir: dir });
    c = new SimCloudClient(sim.url);
    const inv = await c.inventory({ kind: 'network' });
    assert.is(inv.length, 3000);
    const after = await c.create('port', { network_id: lan.id });
    const used = before.map((p) => p.fixed_ips[0]!.ip_address);
    assert.not.ok(used.includes(after.fixed_ips[0]!.ip_address), 'address allocation resumes past the addresses in use');
    assert.ok(inv.every((n) => n.status === 'ACTIVE' || n.name === 'lan'));
    assert.is(await c.get('network', ids[0]!), undefined);
    assert.ok(await c.get('network', ids[2999]!));
    // Ids are never reused after a restart.
    const fresh = await c.create('network', { name: 'fresh' });
    assert.not.ok(ids.includes(fresh.id));
    await sim.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
