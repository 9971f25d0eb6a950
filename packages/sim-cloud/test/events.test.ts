import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ChangeEvent } from '../src/index.js';
import { raw, startSim } from './helpers.js';
import { waitFor } from '@kiln/natsd';

const server = { name: 'vm', flavorRef: '1', imageRef: 'cirros-0.6.2-x86_64-disk' };

test('the SSE stream replays from a sequence number and then follows live changes in order', async () => {
  const { sim, client } = await startSim();
  try {
    const net = await client.create('network', { name: 'n' });
    await waitFor('network ACTIVE', async () => (await client.get('network', net.id))?.status === 'ACTIVE');
    const seen: ChangeEvent[] = [];
    const ac = new AbortController();
    let open = false;
    const following = client.follow({ since: 0, signal: ac.signal, onEvent: (e) => seen.push(e), onOpen: () => (open = true) });
    await waitFor('backlog replayed', () => seen.length >= 2);
    assert.ok(open);
    assert.equal(seen.slice(0, 2).map((e) => [e.type, e.kind, e.status]), [['created', 'network', 'BUILD'], ['updated', 'network', 'ACTIVE']]);
    assert.is(seen[1]!.previous_status, 'BUILD');
    const s = await client.create('server', server, { key: 'ev' });
    await waitFor('server ACTIVE event', () => seen.some((e) => e.id === s.id && e.status === 'ACTIVE'));
    await client.delete('server', s.id);
    await waitFor('server deleted event', () => seen.some((e) => e.id === s.id && e.type === 'deleted'));
    const mine = seen.filter((e) => e.id === s.id);
    assert.equal(mine.map((e) => e.type).filter((t, i, a) => t !== a[i - 1]), ['created', 'updated', 'deleted']);
    assert.ok(mine.every((e) => e.key === 'ev' && e.tenant === 'demo'));
    assert.is(mine[0]!.object!.name, 'vm', 'events carry the object as the API shows it');
    const seqs = seen.map((e) => e.seq);
    assert.equal(seqs, [...seqs].sort((a, b) => a - b), 'in sequence order');
    assert.is(new Set(seqs).size, seqs.length, 'no duplicates');
    ac.abort();
    await following;

    // Resuming from the middle gives exactly the later events.
    const mid = seen[2]!.seq;
    const rest: ChangeEvent[] = [];
    const ac2 = new AbortController();
    const f2 = client.follow({ since: mid, signal: ac2.signal, onEvent: (e) => rest.push(e), kinds: ['server'] });
    await waitFor('resumed', () => rest.some((e) => e.type === 'deleted'));
    assert.equal(rest.map((e) => e.seq), seen.filter((e) => e.seq > mid && e.kind === 'server').map((e) => e.seq));
    ac2.abort();
    await f2;
  } finally {
    await sim.stop();
  }
});

test('long poll answers at once with a backlog, else waits for the next change; a trimmed buffer reports a gap', async () => {
  const { sim, client } = await startSim({ eventBuffer: 10 });
  try {
    const empty = await client.poll(0, { waitMs: 0 });
    assert.equal([empty.events, empty.gap], [[], false]);
    const waiting = client.poll(0, { waitMs: 10_000 });
    const net = await client.create('network', { name: 'n' });
    const got = await waiting;
    assert.is(got.events[0]!.id, net.id);
    assert.is(got.events[0]!.type, 'created');
    for (let i = 0; i < 25; i++) await client.create('security_group', { name: `sg${i}` });
    const gap = await client.poll(0, { waitMs: 0 });
    assert.ok(gap.gap, 'the first events were dropped from a buffer of 10');
    const tail = await client.poll(gap.seq - 3, { waitMs: 0 });
    assert.not.ok(tail.gap);
    assert.is(tail.events.length, 3);
    const bad = await raw(sim.url, 'GET', '/events?since=-1&format=json');
    assert.is(bad.status, 400);
  } finally {
    await sim.stop();
  }
});

test('inventory lists every live object with kind, tenant, status, key, tags and implicit ports', async () => {
  const { sim, client } = await startSim();
  try {
    const net = await client.create('network', { name: 'n', tags: ['x'] }, { key: 'k-net' });
    await client.create('subnet', { network_id: net.id, cidr: '10.5.0.0/24' });
    const s = await client.forTenant('t2').create('server', server, { key: 'k-srv' });
    const other = await client.forTenant('t2').create('network', { name: 'n2' });
    const s2 = await client.forTenant('t2').create('server', { ...server, networks: [{ uuid: other.id }] });
    const inv = await client.inventory();
    assert.is(inv.length, 6);
    const byId = new Map(inv.map((o) => [o.id, o]));
    const n = byId.get(net.id)!;
    assert.equal([n.kind, n.tenant, n.name, n.key, n.tags], ['network', 'demo', 'n', 'k-net', ['x', 'kiln:key=k-net']]);
    assert.ok(['BUILD', 'ACTIVE'].includes(n.status));
    assert.is(byId.get(s.id)!.tenant, 't2');
    const implicit = inv.filter((o) => o.implicit);
    assert.is(implicit.length, 1);
    assert.is(implicit[0]!.kind, 'port');
    assert.is((await client.inventory({ tenant: 't2', kind: 'server' })).length, 2);
    assert.is((await raw(sim.url, 'GET', '/inventory?kind=server')).json.count, 2);
    void s2;
  } finally {
    await sim.stop();
  }
});

test('control: objects vanish or are forced to a status out of band; stats count calls per kind and op; reset empties the cloud', async () => {
  const { sim, client } = await startSim();
  try {
    const seen: ChangeEvent[] = [];
    const ac = new AbortController();
    const following = client.follow({ signal: ac.signal, onEvent: (e) => seen.push(e), onOpen: () => undefined });
    const a = await client.create('server', server);
    const b = await client.create('server', server);
    await waitFor('both ACTIVE', async () => (await client.list('server', { status: 'ACTIVE' })).length === 2);
    assert.ok(await client.vanish(a.id));
    assert.is(await client.get('server', a.id), undefined);
    assert.not.ok(await client.vanish(a.id));
    await waitFor('vanish published', () => seen.some((e) => e.id === a.id && e.type === 'deleted'));

    const forced = await client.forceStatus(b.id, { status: 'ERROR' });
    assert.is(forced.status, 'ERROR');
    const got = (await client.get('server', b.id))!;
    assert.is(got.status, 'ERROR');
    assert.ok(got.fault?.message);
    const bad = await raw(sim.url, 'PUT', `/control/objects/${b.id}`, {});
    assert.is(bad.status, 400);
    assert.is((await raw(sim.url, 'PUT', '/control/objects/nope', { status: 'ERROR' })).status, 404);

    // A build in flight is cancelled by a forced status.
    const c = await client.create('server', server);
    await client.forceStatus(c.id, { status: 'ERROR' });
    assert.is((await client.inventory({ kind: 'server' })).find((o) => o.id === c.id)!.transition, undefined);

    const stats = await client.stats();
    assert.is(stats.calls['server.create'], 3);
    assert.ok(stats.calls['server.list']! >= 1);
    assert.is(stats.objects.server, 2);
    assert.ok(stats.responses['202']! >= 3);

    await client.reset();
    assert.is((await client.inventory()).length, 0);
    await waitFor('reset published', () => seen.some((e) => e.type === 'reset'));
    assert.is((await client.stats()).calls['server.create'], undefined);
    ac.abort();
    await following;
  } finally {
    await sim.stop();
  }
});

test('unknown paths are 404 in the service shape; unknown control endpoints name themselves', async () => {
  const { sim } = await startSim();
  try {
    const r = await raw(sim.url, 'GET', '/compute/v2.1/nothing');
    assert.is(r.status, 404);
    const c = await raw(sim.url, 'GET', '/control/nothing');
    assert.is(c.status, 404);
    assert.is(c.json.error.code, 'RESOURCE_NOT_FOUND');
    assert.is((await raw(sim.url, 'GET', '/healthz')).json.ok, true);
  } finally {
    await sim.stop();
  }
});

test('the SSE stream opens before any event and sends keep-alives', async () => {
  const { sim, client } = await startSim({ keepAliveMs: 50 });
  try {
    const ac = new AbortController();
    let open = false;
    let pings = 0;
    const following = client.follow({ signal: ac.signal, onEvent: () => undefined, onOpen: () => (open = true), onPing: () => pings++ });
    await waitFor('open without an event', () => open);
    await waitFor('keep-alives', () => pings >= 2);
    ac.abort();
    await following;
  } finally {
    client.close();
    await sim.stop();
  }
});

test.run();
