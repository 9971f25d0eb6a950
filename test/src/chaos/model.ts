/**
 * The harness's own record of what it asked for: the desired state of each stack after every
 * acknowledged write, replayed in generation order, and the cloud objects that state implies.
 */

/** What a stack's parameters and shape ask for. */
export interface StackShape {
  /** Lone OS::Nova::Server resources. */
  servers: number;
  /** In every server's name, so the inventory shows which generation made it (update in place). */
  label: string;
  /** m1.tiny or m1.small: a change replaces the servers (no resize). */
  flavor: string;
  /** The AutoScalingGroup's desired_capacity parameter. */
  size: number;
}

export type Write =
  | { kind: 'create'; shape: StackShape }
  | { kind: 'update'; shape: StackShape }
  | { kind: 'capacity'; capacity: number }
  | { kind: 'delete' };

export interface AckedWrite {
  write: Write;
  gen: number;
  /** When the API acknowledged it (ms since the epoch). */
  at: number;
}

export const IMAGE = 'cirros-0.6.2-x86_64-disk';
export const GROUP = 'asg';

/** A server's name property: the stack, the resource, the label and the flavor. */
const nameOf = (stack: string, what: string) => ({ list_join: ['-', [stack, what, { get_param: 'label' }, { get_param: 'flavor' }]] });

/** A small HOT stack: a network and subnet, an OS::Heat::None, lone servers and a scaling group of servers. */
export function template(stack: string, shape: StackShape): Record<string, unknown> {
  const server = (what: string) => ({
    type: 'OS::Nova::Server',
    properties: { name: nameOf(stack, what), flavor: { get_param: 'flavor' }, image: IMAGE, networks: [{ network: { get_resource: 'net' } }] },
  });
  const resources: Record<string, unknown> = {
    net: { type: 'OS::Neutron::Net', properties: { name: `${stack}-net` } },
    subnet: { type: 'OS::Neutron::Subnet', properties: { network: { get_resource: 'net' }, cidr: '10.0.0.0/24' } },
    marker: { type: 'OS::Heat::None', properties: { label: { get_param: 'label' } } },
    [GROUP]: {
      type: 'OS::Heat::AutoScalingGroup',
      properties: { min_size: 0, max_size: 8, desired_capacity: { get_param: 'size' }, resource: server('asg') },
    },
  };
  for (let i = 0; i < shape.servers; i++) resources[`s${i}`] = server(`s${i}`);
  return {
    heat_template_version: '2021-04-16',
    parameters: { label: { type: 'string' }, flavor: { type: 'string' }, size: { type: 'number' } },
    resources,
  };
}

export function parameters(shape: StackShape): Record<string, unknown> {
  return { label: shape.label, flavor: shape.flavor, size: shape.size };
}

/** The desired state the acknowledged writes of one stack leave, replayed in generation order. */
export interface Desired {
  gen: number;
  deleted: boolean;
  shape: StackShape;
  /** group.capacity.set override and the template count it was set against (the engine's rule). */
  override?: { count: number; base: number };
}

export function desiredOf(writes: readonly AckedWrite[]): Desired | undefined {
  let d: Desired | undefined;
  for (const w of [...writes].sort((a, b) => a.gen - b.gen)) {
    const x = w.write;
    if (x.kind === 'create') d = { gen: w.gen, deleted: false, shape: x.shape };
    else if (!d) continue;
    else if (x.kind === 'update') {
      // An override lasts while the template's own count stays what it was set against.
      const keep = d.override && d.override.base === x.shape.size;
      d = { gen: w.gen, deleted: false, shape: x.shape, ...(keep ? { override: d.override } : {}) };
    } else if (x.kind === 'capacity') d = { ...d, gen: w.gen, override: { count: x.capacity, base: d.shape.size } };
    else d = { ...d, gen: w.gen, deleted: true };
  }
  return d;
}

export function groupSize(d: Desired): number {
  return d.override ? d.override.count : d.shape.size;
}

/** The server names (with multiplicity) the desired state implies in the cloud. */
export function expectedServerNames(stack: string, d: Desired): string[] {
  if (d.deleted) return [];
  const out: string[] = [];
  for (let i = 0; i < d.shape.servers; i++) out.push(`${stack}-s${i}-${d.shape.label}-${d.shape.flavor}`);
  for (let i = 0; i < groupSize(d); i++) out.push(`${stack}-asg-${d.shape.label}-${d.shape.flavor}`);
  return out.sort();
}
