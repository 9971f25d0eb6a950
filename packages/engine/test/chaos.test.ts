import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ChildProcess } from 'node:child_process';
import { NatsServer } from '@kiln/natsd';
import { Engine } from '../src/index.js';
import { derivedUuid, shortId } from '../src/hash.js';
import { kill, settled, spawnWorker } from './helpers.js';

/**
 * Engine death: three engine processes work a 1,000-resource stack; one of them is SIGKILLed at
 * a random point of each create, update and delete (and restarted), repeatedly. Every run must
 * end READY (or DELETED) with exactly the right resources, each created once, none stuck.
 */
const test = suite<{ nats?: NatsServer; client?: Engine; workers: ChildProcess[] }>('engine death', { workers: [] });
const PARTITIONS = 16;
const N = 1000;

test.before(async (ctx) => {
  ctx.nats = await NatsServer.start({ maxPayload: 8 * 1024 * 1024 });
  for (let i = 0; i < 3; i++) ctx.workers.push(await spawnWorker(ctx.nats.url, `w${i}`, PARTITIONS, { KILN_LEASE_MS: '2000' }));
  ctx.client = await Engine.start({ servers: ctx.nats.url, partitions: PARTITIONS, worker: false });
});

test.after(async (ctx) => {
  await ctx.client?.stop();
  for (const w of ctx.workers) await kill(w);
  await ctx.nats?.stop();
});

const template = (v: number, n = N) => ({
  heat_template_version: '2016-10-14',
  resources: Object.fromEntries(
    Array.from({ length: n }, (_, i) => [
      `r${i}`,
      // Every tenth resource depends on the previous one, so order matters across engines.
      { type: i % 3 === 0 ? 'OS::Heat::RandomString' : 'OS::Heat::None', properties: i % 3 === 0 ? { length: 4 + (v % 2) } : { v }, ...(i % 10 === 9 ? { depends_on: [`r${i - 1}`] } : {}) },
    ]),
  ),
});

let seed = 7;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

/** Kills a random worker after a random delay within the operation, then starts a replacement. */
async function killSomewhere(ctx: { nats?: NatsServer; workers: ChildProcess[] }, maxDelayMs: number, label: string): Promise<void> {
  await new Promise((r) => setTimeout(r, 50 + rnd() * maxDelayMs));
  const i = Math.floor(rnd() * ctx.workers.length);
  await kill(ctx.workers[i]!);
  ctx.workers[i] = await spawnWorker(ctx.nats!.url, `w${i}-${label}`, PARTITIONS, { KILN_LEASE_MS: '2000' });
}

async function checkResources(client: Engine, id: string, v: number): Promise<void> {
  const rs = await client.listResources(id);
  assert.is(rs.length, N, 'every resource present once');
  const phys = new Set(rs.map((r) => r.physicalId));
  assert.is(phys.size, N, 'no physical id shared');
  for (const r of rs) {
    assert.ok(r.physicalId, `${r.name} has a physical resource`);
    assert.ok(r.status.endsWith('_COMPLETE'), `${r.name}: ${r.status} ${r.reason}`);
    assert.is(r.generation >= v, true);
  }
}

test('kill -9 during create, update and delete, repeatedly', async (ctx) => {
  const client = ctx.client!;
  for (let round = 0; round < 2; round++) {
    const ref = await client.createStack({ name: `chaos${round}`, template: template(1) });
    await killSomewhere(ctx, 1500, `c${round}`);
    let s = await settled(client, ref.id, 1, 120_000);
    assert.is(s.status, 'READY', s.reason);
    await checkResources(client, ref.id, 1);
    const created = new Map((await client.listResources(ref.id)).map((r) => [r.name, r.physicalId]));
    // Created exactly once: the physical ids are those of the first incarnation (a replayed or
    // repeated create after a takeover would have made incarnation 1).
    for (const [name, phys] of created) {
      const self = `res/${ref.id}/${name}`;
      const expected = Number(name.slice(1)) % 3 === 0 ? `chaos${round}-${name}-${shortId(`${self}#0`)}` : derivedUuid(`${self}#0`);
      assert.is(phys, expected, `${name} created once`);
    }

    await client.updateStack(ref.id, { template: template(2) });
    await killSomewhere(ctx, 1500, `u${round}`);
    s = await settled(client, ref.id, 2, 120_000);
    assert.is(s.status, 'READY', s.reason);
    await checkResources(client, ref.id, 2);
    const updated = await client.listResources(ref.id);
    for (const r of updated) {
      // None is updated in place; RandomString (length changed) is replaced exactly once.
      if (r.type === 'OS::Heat::None') assert.is(r.physicalId, created.get(r.name), `${r.name} kept`);
      else assert.is(r.physicalId, `chaos${round}-${r.name}-${shortId(`res/${ref.id}/${r.name}#1`)}`, `${r.name} replaced exactly once`);
    }

    await client.deleteStack(ref.id);
    await killSomewhere(ctx, 1000, `d${round}`);
    s = await settled(client, ref.id, 3, 120_000);
    assert.is(s.status, 'DELETED', s.reason);
    assert.equal(await client.listResources(ref.id), []);
  }
});

test.run();
