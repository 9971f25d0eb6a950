/**
 * Heat's no-cloud functional scenarios (heat_integrationtests/functional), ported to a real
 * nats-server and a real engine node, using the inline templates extracted from those tests.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NatsServer, waitFor } from '@kiln/natsd';
import { parseTemplateText } from '@kiln/template';
import { Engine, RETRY_BASE_MS, type ResourceType } from '../src/index.js';
import { settled } from './helpers.js';

const conformance = fileURLToPath(new URL('../../../../../shared/conformance/hot/inline/heat_integrationtests/', import.meta.url));
const load = (rel: string) => readFileSync(conformance + rel, 'utf8');

const calls = new Map<string, number>();
/** A task-backed type that fails transiently twice per idempotency key, then succeeds. */
const flaky: ResourceType = {
  kind: 'task',
  name: 'Test::Flaky',
  properties: {},
  attributes: [],
  async create(req) {
    const n = (calls.get(req.idempotencyKey) ?? 0) + 1;
    calls.set(req.idempotencyKey, n);
    if (n <= 2) throw Object.assign(new Error('service unavailable'), { transient: true });
    return { physicalId: `flaky-${req.idempotencyKey}`, attrs: {} };
  },
  update: async (req) => ({ physicalId: req.physicalId ?? null, attrs: {} }),
  delete: async () => undefined,
  classify: (e) => ({ code: 'UNAVAILABLE', message: (e as Error).message, transient: !!(e as { transient?: boolean }).transient }),
};

const test = suite<{ nats?: NatsServer; engine?: Engine }>('heat functional (no cloud)');
test.before(async (ctx) => {
  RETRY_BASE_MS.value = 50;
  ctx.nats = await NatsServer.start();
  ctx.engine = await Engine.start({ servers: ctx.nats.url, partitions: 8, nodeId: 'heat-functional', types: [flaky] });
});
test.after(async (ctx) => {
  await ctx.engine?.stop();
  await ctx.nats?.stop();
});

const names = async (e: Engine, id: string) => (await e.listResources(id)).map((r) => r.name).sort();

test('test_conditions: HOT conditions add/remove resources and switch outputs on parameter changes', async ({ engine }) => {
  const e = engine!;
  const template = load('test_conditions/hot_template.yaml');
  const ref = await e.createStack({ name: 'cond', template });
  let s = await settled(e, ref.id, 1);
  assert.is(s.status, 'READY', s.reason);
  assert.equal(await names(e, ref.id), ['not_shannxi_res', 'test_res', 'test_res1']);
  assert.equal(s.outputs, { res_value: null, test_res_value: 'env_is_test', prod_resource: 'no_prod_res', test_res1_value: 'just in test env', beijing_prod_res: 'no_prod_res' });
  await e.patchStack(ref.id, { parameters: { env_type: 'prod' } });
  s = await settled(e, ref.id, 2);
  assert.equal(await names(e, ref.id), ['beijing_prod_res', 'not_shannxi_res', 'prod_res', 'test_res']);
  assert.is(s.outputs.res_value, 'prod_res');
  assert.is(s.outputs.test_res_value, 'env_is_prod');
  assert.is(s.outputs.test_res1_value, 'no_test_res1');
  assert.is.not(s.outputs.prod_resource, 'no_prod_res');
  await e.patchStack(ref.id, { parameters: { env_type: 'test', zone: 'fuzhou' } });
  await settled(e, ref.id, 3);
  assert.equal(await names(e, ref.id), ['fujian_res', 'not_shannxi_res', 'test_res', 'test_res1']);
  await e.patchStack(ref.id, { parameters: { zone: 'xianyang' } });
  await settled(e, ref.id, 4);
  assert.equal(await names(e, ref.id), ['shannxi_res', 'test_res', 'test_res1']);
});

test('test_simultaneous_update: retrigger during CREATE succeeds, and a failing retrigger fails', async ({ engine }) => {
  const e = engine!;
  const t = parseTemplateText(load('test_simultaneous_update/_test_template.yaml')) as { resources: Record<string, { properties: Record<string, unknown> }> };
  const ref = await e.createStack({ name: 'simul', template: t });
  await waitFor('test2 creating', async () => (await e.listResources(ref.id)).find((r) => r.name === 'test2')?.status === 'CREATE_IN_PROGRESS', 60_000, 100);
  const t2 = structuredClone(t);
  t2.resources.test2!.properties.value = 'Test2';
  t2.resources.test2!.properties.action_wait_secs = { update: 0 };
  await e.updateStack(ref.id, { template: t2 });
  const s = await settled(e, ref.id, 2, 20_000); // far less than test2's 30 s create wait
  assert.is(s.stackStatus, 'UPDATE_COMPLETE', s.reason);

  const ref2 = await e.createStack({ name: 'simul-fail', template: t });
  await waitFor('test2 creating', async () => (await e.listResources(ref2.id)).find((r) => r.name === 'test2')?.status === 'CREATE_IN_PROGRESS', 60_000, 100);
  const t3 = structuredClone(t2);
  t3.resources.test2!.properties.fail = true;
  await e.updateStack(ref2.id, { template: t3 });
  const s2 = await settled(e, ref2.id, 2, 20_000);
  assert.is(s2.stackStatus, 'UPDATE_FAILED');
  assert.match(s2.reason, 'Test Resource failed test2');
});

test('test_delete: deleting a group mid-create ends DELETE_COMPLETE with nothing left', async ({ engine }) => {
  const e = engine!;
  const ref = await e.createStack({
    name: 'del',
    template: {
      heat_template_version: '2016-10-14',
      resources: { g: { type: 'OS::Heat::ResourceGroup', properties: { count: 125, resource_def: { type: 'OS::Heat::TestResource', properties: { action_wait_secs: { create: 1 } } } } } },
    },
  });
  await waitFor('group started', async () => (await e.listResources(ref.id)).some((r) => r.nestedStackId), 60_000, 100);
  const child = (await e.listResources(ref.id))[0]!.nestedStackId!;
  await waitFor('members creating', async () => (await e.listResources(child)).length > 10, 60_000, 100);
  await e.deleteStack(ref.id);
  const s = await settled(e, ref.id, 2);
  assert.is(s.stackStatus, 'DELETE_COMPLETE', s.reason);
  assert.equal(await e.listResources(child), []);
});

test('a resource failing transiently is retried with backoff and converges (events show the retries)', async ({ engine }) => {
  const e = engine!;
  const ref = await e.createStack({ name: 'flaky', template: { heat_template_version: '2016-10-14', resources: { f: { type: 'Test::Flaky' } } } });
  const s = await settled(e, ref.id, 1);
  assert.is(s.status, 'READY', s.reason);
  const evs = (await e.events(ref.id)).map((x) => x.event).filter((x) => x.resource === 'f');
  assert.is(evs.filter((x) => x.reason.startsWith('Retrying')).length, 2);
  assert.is(evs.at(-1)!.status, 'COMPLETE');
});

test('update-replace order: the replacement is made before the old one is deleted', async ({ engine }) => {
  const e = engine!;
  const t = (v: string) => ({
    heat_template_version: '2016-10-14',
    resources: {
      r: { type: 'OS::Heat::TestResource', properties: { value: v, update_replace: true } },
      user: { type: 'OS::Heat::TestResource', properties: { value: { get_attr: ['r', 'output'] } } },
    },
  });
  const ref = await e.createStack({ name: 'order', template: t('a') });
  await settled(e, ref.id, 1);
  const before = (await e.listResources(ref.id)).find((r) => r.name === 'r')!.physicalId;
  const { seq } = (await e.events(ref.id)).at(-1)!;
  await e.updateStack(ref.id, { template: t('b') });
  await settled(e, ref.id, 2);
  const after = (await e.listResources(ref.id)).find((r) => r.name === 'r')!.physicalId;
  assert.is.not(after, before);
  const evs = (await e.events(ref.id, seq + 1)).map((x) => x.event).filter((x) => x.resource);
  const made = evs.findIndex((x) => x.resource === 'r' && x.physicalId === after);
  const userMoved = evs.findIndex((x) => x.resource === 'user' && x.status === 'COMPLETE');
  const oldDeleted = evs.findIndex((x) => x.resource === 'r' && x.physicalId === before && x.action === 'DELETE');
  assert.ok(made >= 0 && made < userMoved, JSON.stringify(evs));
  assert.ok(oldDeleted === -1 || oldDeleted > userMoved, JSON.stringify(evs));
});

test('test_stack_update_provider: a template resource from resource_registry is updated in place', async ({ engine }) => {
  const e = engine!;
  const provider = (extra: boolean) =>
    JSON.stringify({
      heat_template_version: '2016-10-14',
      parameters: { foo: { type: 'string' } },
      resources: {
        test1: { type: 'OS::Heat::TestResource', properties: { value: { get_param: 'foo' } } },
        ...(extra ? { test2: { type: 'OS::Heat::TestResource', properties: { value: { get_param: 'foo' } } } } : {}),
      },
      outputs: { value: { value: { get_attr: ['test1', 'output'] } } },
    });
  const template = { heat_template_version: '2016-10-14', resources: { test1: { type: 'My::TestResource', properties: { foo: 'bar' } } }, outputs: { v: { value: { get_attr: ['test1', 'value'] } } } };
  const environment = { resource_registry: { 'My::TestResource': 'provider.template' } };
  const ref = await e.createStack({ name: 'prov', template, environment, files: { 'provider.template': provider(false) } });
  let s = await settled(e, ref.id, 1);
  assert.is(s.status, 'READY', s.reason);
  assert.equal(s.outputs, { v: 'bar' });
  const nested = (await e.listResources(ref.id))[0]!.nestedStackId!;
  assert.equal(await names(e, nested), ['test1']);
  await e.updateStack(ref.id, { template, environment, files: { 'provider.template': provider(true) } });
  s = await settled(e, ref.id, 2);
  assert.is(s.status, 'READY', s.reason);
  assert.is((await e.listResources(ref.id))[0]!.nestedStackId, nested, 'same nested stack');
  assert.equal(await names(e, nested), ['test1', 'test2']);
});

test.run();
