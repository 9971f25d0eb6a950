/**
 * Heal through a real nats-server and an in-process engine node, against a fake cloud of task
 * types whose calls take real time and which publishes change notifications (the provider's
 * `changes` hook): a vanished object is repaired within seconds although the poll interval is a
 * minute, and the stack shows CONVERGING until the repair has finished.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { setTimeout as sleep } from 'node:timers/promises';
import { NatsServer, waitFor } from '@kiln/natsd';
import { Engine, type EngineEvent, type ObjectChange, type ResourceType } from '../src/index.js';
import { settled } from './helpers.js';

/** Objects by idempotency key; every call takes `callMs`; `vanish` deletes one by hand and says so. */
class FakeCloud {
  readonly objects = new Map<string, string>();
  readonly calls: Array<{ action: string; key: string; done: number }> = [];
  private readonly listeners = new Set<(c: ObjectChange) => void>();
  private seq = 0;

  constructor(private readonly callMs: number) {}

  readonly type: ResourceType = {
    kind: 'task',
    name: 'Test::Slow',
    properties: {},
    attributes: [],
    create: async (req) => {
      await sleep(this.callMs);
      const id = this.objects.get(req.idempotencyKey) ?? `obj-${++this.seq}`;
      this.objects.set(req.idempotencyKey, id);
      this.calls.push({ action: 'create', key: req.idempotencyKey, done: Date.now() });
      return { physicalId: id, attrs: {} };
    },
    update: async (req) => ({ physicalId: req.physicalId ?? null, attrs: {} }),
    delete: async (req) => {
      await sleep(this.callMs);
      this.objects.delete(req.idempotencyKey);
      this.calls.push({ action: 'delete', key: req.idempotencyKey, done: Date.now() });
    },
    observe: async (req) => {
      this.calls.push({ action: 'observe', key: req.idempotencyKey, done: Date.now() });
      const id = this.objects.get(req.idempotencyKey);
      return id ? { physicalId: id, attrs: {}, health: { state: 'ok', repair: 'none' } } : null;
    },
    classify: (e) => ({ code: 'INTERNAL', message: (e as Error).message, transient: false }),
    changes: (onChange) => {
      this.listeners.add(onChange);
      return () => this.listeners.delete(onChange);
    },
  };

  /** Deletes the object made with a key prefix (a resource's incarnation), as a person would. */
  vanish(keyPrefix: string): string {
    const key = [...this.objects.keys()].find((k) => k.startsWith(keyPrefix));
    if (!key) throw new Error(`no object for ${keyPrefix}`);
    this.objects.delete(key);
    for (const l of this.listeners) l({ key, change: 'deleted' });
    return key;
  }
}

const cloud = new FakeCloud(700);
const test = suite<{ nats?: NatsServer; engine?: Engine }>('heal against a slow cloud with change notifications');
test.before(async (ctx) => {
  ctx.nats = await NatsServer.start();
  // A minute between polls: anything repaired within seconds was woken by a notification.
  ctx.engine = await Engine.start({ servers: ctx.nats.url, partitions: 8, nodeId: 'heal-live', types: [cloud.type], heal: { observeIntervalMs: 60_000 } });
});
test.after(async (ctx) => {
  await ctx.engine?.stop();
  await ctx.nats?.stop();
});

const stackEvents = async (e: Engine, id: string): Promise<EngineEvent[]> => (await e.events(id)).map((x) => x.event).filter((x) => x.resource === undefined);

test('an object deleted by hand is recreated within seconds although the poll interval is a minute', async ({ engine }) => {
  const e = engine!;
  const ref = await e.createStack({ name: 'notified', template: { heat_template_version: '2016-10-14', resources: { a: { type: 'Test::Slow' }, b: { type: 'Test::Slow' } } } });
  assert.is((await settled(e, ref.id, 1)).status, 'READY');
  const before = (await e.listResources(ref.id)).find((r) => r.name === 'a')!;
  const gone = cloud.vanish(`res/${ref.id}/a#`);
  const after = await waitFor('a recreated', async () => {
    const a = (await e.listResources(ref.id)).find((r) => r.name === 'a')!;
    return a.physicalId !== before.physicalId && a.status.endsWith('_COMPLETE') ? a : null;
  }, 15_000);
  assert.is(cloud.objects.get(`res/${ref.id}/a#1`), after.physicalId, 'a new incarnation made the new object');
  assert.is(cloud.calls.filter((c) => c.action === 'observe' && c.key === gone).length, 1, 'one observation, woken by the notification');
  assert.is(cloud.calls.filter((c) => c.action === 'observe' && c.key.startsWith(`res/${ref.id}/b#`)).length, 0, 'the other resource was not disturbed');
  assert.is((await settled(e, ref.id, 1)).status, 'READY');
});

test('a repaired group member keeps the stack CONVERGING until its replacement is made and the old one deleted', async ({ engine }) => {
  const e = engine!;
  const ref = await e.createStack({
    name: 'grouped',
    template: { heat_template_version: '2016-10-14', resources: { g: { type: 'OS::Heat::ResourceGroup', properties: { count: 2, resource_def: { type: 'Test::Slow' } } } } },
  });
  assert.is((await settled(e, ref.id, 1)).status, 'READY');
  const child = (await e.listResources(ref.id)).find((r) => r.name === 'g')!.nestedStackId!;
  const gone = cloud.vanish(`res/${child}/0#`);
  // The repair ends with the stack's next COMPLETE after "Repairing drift".
  const done = await waitFor('the stack READY again after the repair', async () => {
    const evs = await stackEvents(e, ref.id);
    const start = evs.findIndex((x) => x.status === 'IN_PROGRESS' && x.reason === 'Repairing drift');
    return start >= 0 ? evs.slice(start + 1).find((x) => x.status === 'COMPLETE') : undefined;
  }, 15_000);
  const made = cloud.calls.find((c) => c.action === 'create' && c.key === `res/${child}/0#1`);
  const deleted = cloud.calls.find((c) => c.action === 'delete' && c.key === gone);
  assert.ok(made && deleted, 'the member was replaced and the gone one deleted');
  assert.ok(done.ts >= made!.done && done.ts >= deleted!.done, `READY (${done.ts}) only after the replacement (${made!.done}) and the cleanup (${deleted!.done})`);
  assert.is((await settled(e, ref.id, 1)).status, 'READY');
});

test.run();
