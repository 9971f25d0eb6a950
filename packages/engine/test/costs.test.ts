/**
 * What one group member costs the engine: the cloud bench's fleet member (a nested stack of a
 * port, a server on it, a volume and its attachment) driven through create and delete with stub
 * providers. Counted per member: actor steps (messages delivered), steps that wrote state (the
 * state changed), messages sent, events, and the bytes encoded for state writes and messages.
 * The bounds sit a little above what the engine reaches, so a regression fails.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encode } from '@kiln/core';
import { taskType } from './helpers.js';
import { Sim } from './sim.js';

const MEMBER = `heat_template_version: 2018-08-31
parameters:
  name: {type: string}
  network: {type: string}
  subnet: {type: string}
resources:
  port:
    type: OS::Neutron::Port
    properties:
      network: {get_param: network}
      fixed_ips: [{subnet: {get_param: subnet}}]
  server:
    type: OS::Nova::Server
    properties:
      name: {get_param: name}
      flavor: m1.tiny
      image: cirros-0.6.2-x86_64-disk
      networks: [{port: {get_resource: port}}]
  volume:
    type: OS::Cinder::Volume
    properties:
      size: 1
  attachment:
    type: OS::Cinder::VolumeAttachment
    properties:
      instance_uuid: {get_resource: server}
      volume_id: {get_resource: volume}
`;

const fleet = (n: number) => ({
  heat_template_version: '2018-08-31',
  resources: {
    net: { type: 'OS::Neutron::Net', properties: { name: 'f-net' } },
    subnet: { type: 'OS::Neutron::Subnet', properties: { network: { get_resource: 'net' }, cidr: '10.0.0.0/16' } },
    servers: {
      type: 'OS::Heat::ResourceGroup',
      properties: { count: n, resource_def: { type: 'member.yaml', properties: { name: 'f-%index%', network: { get_resource: 'net' }, subnet: { get_resource: 'subnet' } } } },
    },
  },
});

const CLOUD_TYPES = ['OS::Neutron::Net', 'OS::Neutron::Subnet', 'OS::Neutron::Port', 'OS::Nova::Server', 'OS::Cinder::Volume', 'OS::Cinder::VolumeAttachment'];

/** Attributes shaped like the providers' (a server's `show` is the whole cloud object again). */
function cloudAttrs(type: string, id: string): Record<string, unknown> {
  if (type !== 'OS::Nova::Server') return { id, name: id, status: 'ACTIVE', show: { id, status: 'ACTIVE', created: '2026-11-28T00:00:00Z' } };
  const addresses = { 'f-net': [{ addr: '10.0.0.7', version: 4, 'OS-EXT-IPS:type': 'fixed', 'OS-EXT-IPS-MAC:mac_addr': 'fa:16:3e:00:00:07' }] };
  const show = { id, name: id, status: 'ACTIVE', addresses, flavor: { id: 'm1.tiny' }, image: { id: 'cirros-0.6.2-x86_64-disk' }, created: '2026-11-28T00:00:00Z', updated: '2026-11-28T00:00:01Z', key_name: null, metadata: {}, 'OS-EXT-STS:power_state': 1, 'OS-EXT-STS:task_state': null, 'OS-EXT-STS:vm_state': 'active', security_groups: [{ name: 'default' }], accessIPv4: '', accessIPv6: '', hostId: 'a'.repeat(56), tenant_id: 'b'.repeat(32), user_id: 'c'.repeat(32), volumes_attached: [] };
  return { id, name: id, first_address: '10.0.0.7', addresses, networks: { 'f-net': ['10.0.0.7'] }, accessIPv4: '', accessIPv6: '', console_urls: {}, instance_name: `instance-${id}`, show };
}

interface Counts {
  steps: number;
  writes: number;
  sends: number;
  events: number;
  stateBytes: number;
  msgBytes: number;
  byKind: Map<string, { steps: number; writes: number }>;
}

/** Runs a fleet of `n` members through create and delete, counting per actor step. */
function run(n: number): Counts {
  let ids = 0;
  const sim = new Sim({
    extraTypes: CLOUD_TYPES.map((t) => taskType(t)),
    task: (input) => {
      const i = input as { type: string; action: string };
      if (i.action === 'delete') return null;
      const id = `${i.type.split('::')[2]!.toLowerCase()}-${++ids}`;
      return { physicalId: id, attrs: cloudAttrs(i.type, id) };
    },
  });
  const c: Counts = { steps: 0, writes: 0, sends: 0, events: 0, stateBytes: 0, msgBytes: 0, byKind: new Map() };
  for (const [type, b] of sim.behaviors) {
    sim.behaviors.set(type, {
      ...b,
      reduce: (state, msg, ctx) => {
        const r = b.reduce(state, msg, ctx);
        const m = msg as { kind?: string; name?: string };
        const key = `${type} ${m.kind === '$timer' || m.kind === '$task' ? `${m.kind}` : m.kind}`;
        const k = c.byKind.get(key) ?? { steps: 0, writes: 0 };
        c.byKind.set(key, k);
        c.steps++;
        k.steps++;
        c.msgBytes += encode(msg).length;
        if (r.state !== state) {
          c.writes++;
          k.writes++;
          if (r.state !== null) c.stateBytes += encode(r.state).length;
        }
        for (const e of r.effects) {
          if (e.type === 'send') c.sends++;
          else if (e.type === 'emit') c.events++;
        }
        return r;
      },
    });
  }
  sim.setDesired('f', { op: 'create', name: 'f', spec: { template: fleet(n), files: { 'member.yaml': MEMBER } } });
  sim.run();
  assert.is(sim.stack('f').status, 'READY', sim.stack('f').reason);
  sim.setDesired('f', { op: 'delete', name: 'f' });
  sim.run();
  assert.is(sim.stack('f').status, 'DELETED', sim.stack('f').reason);
  assert.is(sim.physicalCount(), 0);
  return c;
}

test('a fleet member through create and delete: steps, writes, messages and bytes per member', () => {
  // The difference between two fleet sizes is what one more member costs (the stack's own
  // resources and the group's supervisor cancel out).
  const a = run(4);
  const b = run(8);
  const per = (f: (x: Counts) => number) => (f(b) - f(a)) / 4;
  const member = {
    steps: per((x) => x.steps),
    writes: per((x) => x.writes),
    sends: per((x) => x.sends),
    events: per((x) => x.events),
    stateBytesPerWrite: Math.round(per((x) => x.stateBytes) / per((x) => x.writes)),
    msgBytesPerStep: Math.round(per((x) => x.msgBytes) / per((x) => x.steps)),
  };
  const byKind: Record<string, string> = {};
  for (const [k, v] of b.byKind) {
    const w = a.byKind.get(k) ?? { steps: 0, writes: 0 };
    byKind[k] = `${(v.steps - w.steps) / 4} steps, ${(v.writes - w.writes) / 4} writes`;
  }
  process.stdout.write(`per fleet member (create + delete): ${JSON.stringify(member)}\n${JSON.stringify(byKind, null, 1)}\n`);
  // Measured: 45 steps and writes, 37 sends, 24 events, 725 bytes per write, 228 per message
  // (before the scope, nested-template and ready cuts: 1,214 and 385 bytes).
  assert.ok(member.steps <= 47, `steps per member ${member.steps}`);
  assert.ok(member.writes <= 47, `writes per member ${member.writes}`);
  assert.ok(member.sends <= 39, `sends per member ${member.sends}`);
  assert.ok(member.events <= 24, `events per member ${member.events}`);
  assert.ok(member.stateBytesPerWrite <= 820, `bytes per state write ${member.stateBytesPerWrite}`);
  assert.ok(member.msgBytesPerStep <= 260, `bytes per message ${member.msgBytesPerStep}`);
});

test.run();
