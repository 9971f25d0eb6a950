import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { NatsServer, waitFor } from '@kiln/natsd';
import { Engine } from '../src/index.js';
import { settled } from './helpers.js';

// A hold far longer than the test: a held generation goes out only when the fanned one finishes.
const test = suite<{ nats?: NatsServer; engine?: Engine }>('overlapping updates (one in-process node)');
test.before(async (ctx) => {
  ctx.nats = await NatsServer.start();
  ctx.engine = await Engine.start({ servers: ctx.nats.url, partitions: 8, nodeId: 'overlap-test', fanoutHold: { perResourceMs: 600_000, maxMs: 600_000 } });
});
test.after(async (ctx) => {
  await ctx.engine?.stop();
  await ctx.nats?.stop();
});

const N = 200;

/** Generation g: values change every generation, a tenth of the names absent in turn; from g 2 on, a wait condition. */
function template(g: number): Record<string, unknown> {
  const resources: Record<string, unknown> = {};
  for (let i = 0; i < N; i++) {
    if (i % 10 === g % 10) continue;
    resources[`r${i}`] = i % 2 === 0 ? { type: 'OS::Heat::None', properties: { g, i } } : { type: 'OS::Heat::Value', properties: { value: `v${g}-${i}` } };
  }
  if (g >= 2) {
    resources.h = { type: 'OS::Heat::WaitConditionHandle' };
    resources.w = { type: 'OS::Heat::WaitCondition', properties: { handle: { get_resource: 'h' }, timeout: 600 } };
  }
  return { heat_template_version: '2016-10-14', resources };
}

test('updates queued while the shards work on a generation are collapsed into the newest (real nats)', async ({ engine }) => {
  const e = engine!;
  const ref = await e.createStack({ name: 'overlap', template: template(1) });
  assert.is((await settled(e, ref.id, 1)).status, 'READY');
  // Generation 2 goes out and cannot finish before the handle is signalled; 3..10 queue behind it.
  for (let g = 2; g <= 10; g++) await e.updateStack(ref.id, { template: template(g) });
  await waitFor('handle created', async () => (await e.listResources(ref.id)).some((r) => r.name === 'h' && r.physicalId), 60_000, 100);
  await e.signal(ref.id, 'h', { id: 'x', status: 'SUCCESS', data: 'go' });
  const s = await settled(e, ref.id, 10);
  assert.is(s.status, 'READY', s.reason);
  assert.is(s.generation, 10);

  const resourceGens = new Set((await e.events(ref.id)).filter((x) => x.event.resource).map((x) => x.event.gen));
  assert.equal([...resourceGens].sort((a, b) => a - b), [1, 2, 10], 'generations 3..9 reached no resource');
  const listed = await e.listResources(ref.id);
  const expected = Object.keys(template(10).resources as object).sort();
  assert.equal(listed.map((r) => r.name).sort(), expected, 'exactly the resources of generation 10');
  for (const r of listed) {
    assert.match(r.status, /_COMPLETE$/, `${r.name}: ${r.reason}`);
    if (r.type === 'OS::Heat::Value') assert.is(r.attributes.value, `v10-${r.name.slice(1)}`);
  }
});

test('concurrent writers: each lost race reuses its stored spec; only the current and previous specs are left', async ({ engine, nats }) => {
  const e = engine!;
  const t = (v: string) => ({ heat_template_version: '2016-10-14', resources: { v: { type: 'OS::Heat::Value', properties: { value: v } } } });
  const ref = await e.createStack({ name: 'racy', template: t('0') });
  const gens = (await Promise.all(Array.from({ length: 8 }, (_, i) => e.updateStack(ref.id, { template: t(`w${i}`) })))).map((g) => g.generation);
  assert.equal([...gens].sort((a, b) => a - b), [2, 3, 4, 5, 6, 7, 8, 9], 'a generation each');
  const last = gens.indexOf(9);
  const d = await e.desiredSpec(ref.id);
  assert.equal(d.spec.template, t(`w${last}`));
  const s = await settled(e, ref.id, 9);
  assert.is(s.status, 'READY', s.reason);
  const nc = await connect({ servers: nats!.url });
  try {
    const specs = await new Kvm(nc).open('kiln_specs');
    const heads: string[] = [];
    // `<id>.<key>` is a spec's head, `<id>.<key>.<i>` one of its chunks.
    for await (const k of await specs.keys(`${ref.id}.>`)) if (!k.slice(ref.id.length + 1).includes('.')) heads.push(k);
    assert.is(heads.length, 2, `current and previous only: ${heads.join(' ')}`);
  } finally {
    await nc.close();
  }
});

test.run();
