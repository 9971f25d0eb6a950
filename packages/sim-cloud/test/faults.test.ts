import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KilnError } from '@kiln/core';
import { SimCloudClient, parseFaultsArg, parseLatencyArg, parseArgs } from '../src/index.js';
import { raw, startSim } from './helpers.js';
import { waitFor } from '@kiln/natsd';

const server = { name: 'vm', flavorRef: '1', imageRef: 'cirros-0.6.2-x86_64-disk' };

/** Boots n keyed servers concurrently and returns key -> final status once no build is in flight. */
async function bootOutcomes(seed: number, n: number): Promise<Map<string, string>> {
  const { sim, client } = await startSim({ seed, faults: { serverBuildStuck: 0.2, serverBootError: 0.2 } });
  try {
    await Promise.all(Array.from({ length: n }, (_, i) => client.create('server', server, { key: `s-${n - i}` })));
    const inv = await waitFor('every build settled or stuck', async () => {
      const items = await client.inventory({ kind: 'server' });
      return items.every((o) => o.transition === undefined) ? items : undefined;
    });
    const struck = (await client.stats()).injected.struck;
    // Every fault decided at creation is counted, and only those.
    assert.is(struck['boot-error'] ?? 0, inv.filter((o) => o.status === 'ERROR').length);
    assert.is(struck.stuck ?? 0, inv.filter((o) => o.status === 'BUILD').length);
    return new Map(inv.map((o) => [o.key!, o.status]));
  } finally {
    await sim.stop();
  }
}

test('boot faults honour their shares, and the same seed gives the same outcome per key whatever the call order', async () => {
  const a = await bootOutcomes(7, 200);
  const b = await bootOutcomes(7, 200);
  const c = await bootOutcomes(8, 200);
  const count = (m: Map<string, string>, s: string) => [...m.values()].filter((v) => v === s).length;
  assert.is(a.size, 200);
  for (const s of ['BUILD', 'ERROR']) {
    const n = count(a, s);
    assert.ok(n >= 20 && n <= 60, `${s}: ${n} of 200 for a share of 0.2`);
  }
  assert.equal([...a.entries()].sort(), [...b.entries()].sort(), 'same seed, same outcomes');
  assert.not.equal([...a.entries()].sort(), [...c.entries()].sort(), 'another seed, other outcomes');
});

test('API error and throttle shares, with Retry-After, are injected deterministically and counted', async () => {
  const statuses: number[][] = [];
  for (let run = 0; run < 2; run++) {
    const { sim } = await startSim({ seed: 3, faults: { apiErrorShare: 0.3, apiThrottleShare: 0.1, retryAfterSeconds: 2 } });
    try {
      const seen: number[] = [];
      for (let i = 0; i < 200; i++) {
        const r = await raw(sim.url, 'GET', '/compute/v2.1/flavors');
        seen.push(r.status);
        if (r.status === 429) assert.is(r.headers.get('retry-after'), '2');
      }
      statuses.push(seen);
      const errors = seen.filter((s) => s >= 500).length;
      const throttled = seen.filter((s) => s === 429).length;
      assert.ok(errors >= 35 && errors <= 85, `5xx: ${errors} of 200 for 0.3`);
      assert.ok(throttled >= 8 && throttled <= 35, `429: ${throttled} of 200 for 0.1`);
      const stats = await new SimCloudClient(sim.url).stats();
      assert.is(stats.injected.errors, errors);
      assert.is(stats.injected.throttled, throttled);
      assert.is(stats.calls['flavor.list'], 200);
      // Control endpoints are never faulted.
      for (let i = 0; i < 20; i++) assert.is((await raw(sim.url, 'GET', '/control/faults')).status, 200);
    } finally {
      await sim.stop();
    }
  }
  assert.equal(statuses[0], statuses[1]);
});

test('the client turns 429 into RATE_LIMITED with retryAfterMs, and 5xx into UNAVAILABLE', async () => {
  const { sim, client } = await startSim({ faults: { apiThrottleShare: 1, retryAfterSeconds: 3 } });
  try {
    try {
      await client.listFlavors();
      assert.unreachable();
    } catch (e) {
      assert.instance(e, KilnError);
      assert.is((e as KilnError).code, 'RATE_LIMITED');
      assert.is(((e as KilnError).detail as { retryAfterMs: number }).retryAfterMs, 3000);
    }
    await client.setFaults({ apiThrottleShare: 0, apiErrorShare: 1 });
    const err = await client.listFlavors().catch((e: KilnError) => e);
    assert.is((err as KilnError).code, 'UNAVAILABLE');
    await client.setFaults({ apiErrorShare: 0 });
    assert.ok((await client.listFlavors()).length > 0);
  } finally {
    await sim.stop();
  }
});

test('per-tenant rate limits answer 429 with Retry-After once the burst is spent, other tenants unaffected', async () => {
  const { sim, client } = await startSim({ rateLimits: { tenants: { busy: { perSecond: 0.5, burst: 5 } } } });
  try {
    const codes: number[] = [];
    for (let i = 0; i < 8; i++) codes.push((await raw(sim.url, 'GET', '/network/v2.0/networks', undefined, { 'x-project-id': 'busy' })).status);
    assert.equal(codes.slice(0, 5), [200, 200, 200, 200, 200]);
    assert.ok(codes.slice(5).includes(429), codes.join(','));
    const limited = await raw(sim.url, 'GET', '/network/v2.0/networks', undefined, { 'x-project-id': 'busy' });
    assert.is(limited.status, 429);
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    assert.is(limited.json.NeutronError.type, 'OverLimit');
    for (let i = 0; i < 10; i++) assert.is((await raw(sim.url, 'GET', '/network/v2.0/networks')).status, 200);
    assert.ok((await client.stats()).rateLimited >= 1);
    // The bucket refills: waiting for Retry-After lets calls through again.
    await waitFor('bucket refilled', async () => (await raw(sim.url, 'GET', '/network/v2.0/networks', undefined, { 'x-project-id': 'busy' })).status === 200);
  } finally {
    await sim.stop();
  }
});

test('a create that happened but answered 5xx is found again by its key, never duplicated', async () => {
  const { sim, client } = await startSim({ faults: { apiErrorAfterCreateShare: 1 } });
  try {
    const err = await client.create('server', server, { key: 'ambiguous' }).catch((e: KilnError) => e);
    assert.is((err as KilnError).code, 'UNAVAILABLE');
    const found = await client.findByKey('server', 'ambiguous');
    assert.ok(found);
    // A retry with the same key is a replay (no second injected failure, no second server).
    assert.is((await client.create('server', server, { key: 'ambiguous' })).id, found!.id);
    assert.is((await client.inventory({ kind: 'server' })).length, 1);
  } finally {
    await sim.stop();
  }
});

test('an attach, detach or router interface change that happened may still be answered 5xx (apiErrorAfterActionShare)', async () => {
  const { sim, client } = await startSim();
  try {
    const net = await client.create('network', { name: 'n' });
    const subnet = await client.create('subnet', { network_id: net.id, cidr: '10.3.0.0/24' });
    const router = await client.create('router', { name: 'r' });
    const vm = await client.create('server', { ...server, networks: [{ uuid: net.id }] });
    const vol = await client.create('volume', { size: 1 });
    await waitFor('up', async () => (await client.get('server', vm.id))?.status === 'ACTIVE' && (await client.get('volume', vol.id))?.status === 'available');
    await client.setFaults({ apiErrorAfterActionShare: 1 });
    const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: KilnError) => e.code);
    assert.is(await code(client.attachVolume(vm.id, vol.id)), 'UNAVAILABLE');
    assert.equal((await client.get('volume', vol.id))!.attachments.map((a) => a.server_id), [vm.id]);
    await waitFor('in use', async () => (await client.get('volume', vol.id))?.status === 'in-use');
    assert.is(await code(client.detachVolume(vm.id, vol.id)), 'UNAVAILABLE');
    assert.is((await client.get('volume', vol.id))!.status, 'detaching');
    assert.is(await code(client.addRouterInterface(router.id, { subnet_id: subnet.id })), 'UNAVAILABLE');
    assert.is((await client.list('port', { device_id: router.id })).length, 1);
    // Creates are not affected by this knob.
    assert.ok(await client.create('network', { name: 'n2' }));
  } finally {
    await sim.stop();
  }
});

test('later faults, switched on while running: servers go to ERROR or vanish, volumes go offline, members stop forwarding, ports become unreachable', async () => {
  const { sim, client } = await startSim();
  try {
    const net = await client.create('network', { name: 'n' });
    const subnet = await client.create('subnet', { network_id: net.id, cidr: '10.2.0.0/24' });
    const servers = await Promise.all([1, 2, 3].map(() => client.create('server', { ...server, networks: [{ uuid: net.id }] })));
    const vol = await client.create('volume', { size: 1 });
    const lb = await client.create('loadbalancer', { vip_subnet_id: subnet.id });
    const pool = await client.create('pool', { loadbalancer_id: lb.id, protocol: 'TCP', lb_algorithm: 'ROUND_ROBIN' });
    const member = await client.create('member', { pool_id: pool.id, address: '10.2.0.9', protocol_port: 22 });
    await waitFor('all up', async () => {
      const inv = await client.inventory();
      return inv.every((o) => ['ACTIVE', 'available'].includes(o.status) || o.kind === 'port' || o.kind === 'subnet');
    });
    // About one event per 50 ms per object.
    const often = 72_000;
    await client.setFaults({ serverErrorRate: often, volumeOfflineRate: often, memberDownRate: often, portUnreachableRate: often });
    assert.is((await client.faults()).serverErrorRate, often);
    await waitFor('servers in ERROR', async () => (await client.list('server')).every((s) => s.status === 'ERROR' && s.fault?.message));
    await waitFor('volume offline', async () => (await client.get('volume', vol.id))?.status === 'error');
    await waitFor('member down', async () => (await client.get('member', member.id, { pool: pool.id }))?.operating_status === 'ERROR');
    await waitFor('ports unreachable', async () => (await client.list('port', { network_id: net.id })).every((p) => p.status === 'DOWN' && p['binding:vif_type'] === 'binding_failed'));
    await client.setFaults({ serverErrorRate: 0, volumeOfflineRate: 0, memberDownRate: 0, portUnreachableRate: 0, serverVanishRate: often });
    const fresh = await client.create('server', server);
    await waitFor('active server vanished', async () => (await client.get('server', fresh.id)) === undefined);
    assert.is((await client.list('server')).length, servers.length, 'ERROR servers do not vanish');
    const struck = (await client.stats()).injected.struck;
    assert.ok(struck.vanish! >= 1 && struck.error! >= servers.length && struck.offline! >= 1 && struck['member-down']! >= 1 && struck.unreachable! >= 1, JSON.stringify(struck));
  } finally {
    await sim.stop();
  }
});

test('ports can be unreachable from creation: bound to an ACTIVE server they stay DOWN', async () => {
  const { sim, client } = await startSim({ faults: { portUnreachable: 1 } });
  try {
    const net = await client.create('network', { name: 'n' });
    await client.create('subnet', { network_id: net.id, cidr: '10.3.0.0/24' });
    const port = await client.create('port', { network_id: net.id });
    const s = await client.create('server', { ...server, networks: [{ port: port.id }] });
    await waitFor('ACTIVE', async () => (await client.get('server', s.id))?.status === 'ACTIVE');
    const p = (await client.get('port', port.id))!;
    assert.is(p.device_id, s.id);
    assert.is(p.status, 'DOWN');
    assert.is(p['binding:vif_type'], 'binding_failed');
  } finally {
    await sim.stop();
  }
});

test('slow calls are injected and counted; bad fault knobs are refused with a path', async () => {
  const { sim, client } = await startSim({ faults: { slowCallShare: 1, slowCallMs: 50 } });
  try {
    await client.listFlavors();
    await client.listImages();
    assert.is((await client.stats()).injected.slow, 2);
    const bad = await raw(sim.url, 'PUT', '/control/faults', { serverBootError: 2 });
    assert.is(bad.status, 400);
    assert.is(bad.json.error.path, 'faults.serverBootError');
    const unknown = await raw(sim.url, 'PUT', '/control/faults', { bootFailures: 0.1 });
    assert.is(unknown.status, 400);
    assert.match(unknown.json.error.message, /unknown fault knob/);
  } finally {
    await sim.stop();
  }
});

test('CLI values: faults and latency as key=value lists or JSON', () => {
  assert.equal(parseFaultsArg('serverBootError=0.2,apiErrorShare=0.02'), { serverBootError: 0.2, apiErrorShare: 0.02 });
  assert.equal(parseFaultsArg('{"serverVanishRate": 5}'), { serverVanishRate: 5 });
  assert.throws(() => parseFaultsArg('serverBootError'), (e: KilnError) => e.code === 'REQUEST_INVALID');
  assert.equal(parseLatencyArg('server=5000..30000,volume=ln:800:0.5:5000,delete=10'), {
    server: { dist: 'uniform', min: 5000, max: 30000 },
    volume: { dist: 'lognormal', median: 800, sigma: 0.5, max: 5000 },
    delete: { dist: 'fixed', ms: 10 },
  });
  const opts = parseArgs(['--port', '0', '--state-dir=/tmp/x', '--seed', 's', '--faults', 'serverBuildStuck=0.1']);
  assert.is(opts.port, 0);
  assert.is(opts.stateDir, '/tmp/x');
  assert.equal(opts.faults, { serverBuildStuck: 0.1 });
  assert.throws(() => parseArgs(['--bogus']), (e: KilnError) => e.code === 'REQUEST_INVALID');
});

test('a call queued behind the client\'s other calls is not timed out for the queueing', async () => {
  const { sim } = await startSim({ faults: { slowCallShare: 1, slowCallMs: 300 } });
  // One connection: the second call waits ~300 ms for it, then takes ~300 ms itself (600 > 450).
  const client = new SimCloudClient(sim.url, { maxSockets: 1, timeoutMs: 450 });
  try {
    const [a, b] = await Promise.all([client.list('network'), client.list('network')]);
    assert.equal([a.length, b.length], [0, 0]);
    // The cloud itself being slow still times out.
    const slow = new SimCloudClient(sim.url, { timeoutMs: 100 });
    try {
      const failed = await slow.list('network').then(
        () => undefined,
        (e: unknown) => e as KilnError,
      );
      assert.is(failed?.code, 'TIMEOUT');
    } finally {
      slow.close();
    }
  } finally {
    client.close();
    await sim.stop();
  }
});

test.run();
