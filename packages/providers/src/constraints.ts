/**
 * Heat's custom constraints (`custom_constraint: nova.flavor`, ...) checked against the cloud.
 * The template package's validators are synchronous, so the cloud's catalogue (flavors, images,
 * networks, subnets, ports, volumes, ...) is read into a snapshot by `refresh()`; call it before
 * validating a stack (or on an interval). A value is accepted when it is an id or a unique name in
 * the snapshot, as Heat's client plugins resolve them.
 */
import type { CustomConstraintRegistry } from '@kiln/template';
import type { CloudClient, Kind } from '@kiln/sim-cloud';

interface Named {
  id: string;
  name?: string | null;
}

/** Constraint name -> what it checks and how Heat words the error. */
const CLOUD_KINDS: Record<string, { kind: Kind; message: (v: string) => string }> = {
  'neutron.network': { kind: 'network', message: (v) => `Unable to find network with name or id '${v}'` },
  'neutron.subnet': { kind: 'subnet', message: (v) => `Unable to find subnet with name or id '${v}'` },
  'neutron.port': { kind: 'port', message: (v) => `Unable to find port with name or id '${v}'` },
  'neutron.router': { kind: 'router', message: (v) => `Unable to find router with name or id '${v}'` },
  'neutron.security_group': { kind: 'security_group', message: (v) => `Unable to find security_group with name or id '${v}'` },
  'cinder.volume': { kind: 'volume', message: (v) => `The Volume (${v}) could not be found.` },
  'nova.server': { kind: 'server', message: (v) => `The server (${v}) could not be found.` },
  'octavia.loadbalancer': { kind: 'loadbalancer', message: (v) => `Unable to find loadbalancer with name or id '${v}'` },
  'octavia.listener': { kind: 'listener', message: (v) => `Unable to find listener with name or id '${v}'` },
  'octavia.pool': { kind: 'pool', message: (v) => `Unable to find pool with name or id '${v}'` },
};

export class CloudConstraints {
  private readonly sets = new Map<string, Named[]>();
  /** When the snapshot was last read (ms since epoch); 0 = never. */
  refreshedAt = 0;

  constructor(private readonly client: CloudClient) {}

  /** Names of the constraints this registers. */
  static readonly names: readonly string[] = ['nova.flavor', 'glance.image', ...Object.keys(CLOUD_KINDS)];

  /** Reads the cloud's catalogue into the snapshot the validators check against. */
  async refresh(signal?: AbortSignal): Promise<void> {
    const opts = signal ? { signal } : {};
    const [flavors, images, ...lists] = await Promise.all([
      this.client.listFlavors(opts),
      this.client.listImages(opts),
      ...Object.values(CLOUD_KINDS).map((c) => this.client.list(c.kind, {}, opts)),
    ]);
    this.sets.set('nova.flavor', flavors);
    this.sets.set('glance.image', images);
    Object.keys(CLOUD_KINDS).forEach((name, i) => this.sets.set(name, lists[i] as Named[]));
    this.refreshedAt = Date.now();
  }

  /** The error message for `value` under constraint `name`, or undefined when it is fine. */
  check(name: string, value: unknown): string | undefined {
    if (Array.isArray(value)) {
      for (const v of value) {
        const err = this.check(name, v);
        if (err) return err;
      }
      return undefined;
    }
    const set = this.sets.get(name);
    if (!set) return undefined;
    const v = String(value);
    if (set.some((x) => x.id === v) || set.filter((x) => x.name === v).length === 1) return undefined;
    if (set.filter((x) => x.name === v).length > 1) return `Error validating value '${v}': Multiple ${name.split('.')[1]} matches found for name '${v}', use an ID to be more specific.`;
    if (name === 'nova.flavor') return `Error validating value '${v}': The Flavor ID (${v}) could not be found.`;
    if (name === 'glance.image') return `Error validating value '${v}': The Image (${v}) could not be found.`;
    return `Error validating value '${v}': ${CLOUD_KINDS[name]!.message(v)}`;
  }

  /** Registers every cloud-backed constraint (nova.keypair is not: the cloud has no keypairs, so any value passes). */
  register(registry: CustomConstraintRegistry): this {
    for (const name of CloudConstraints.names) registry.register(name, (v) => this.check(name, v));
    return this;
  }
}

/** Reads the cloud's catalogue once and registers the validators; refresh() the result to see new objects. */
export async function registerCloudConstraints(registry: CustomConstraintRegistry, client: CloudClient, signal?: AbortSignal): Promise<CloudConstraints> {
  const c = new CloudConstraints(client);
  await c.refresh(signal);
  return c.register(registry);
}
