/**
 * Heat's implicit dependencies (`add_dependencies` of Server, Port, Router, FloatingIP): edges the
 * template does not spell out but the cloud needs. A server or port on a network made in the stack
 * waits for that network's subnets (otherwise it boots without an address); a router with a
 * gateway on a stack network waits for its subnets; a floating IP waits for the router interfaces
 * on its port's network and the routers with a gateway on its floating network.
 *
 * A type may declare its own rule (`implicitDependencies`); the built-in rules below cover
 * Neutron/Nova by type name so the providers need not. Edges that would close a cycle are skipped.
 */
import type { PlannedResource } from './spec.js';
import type { TypeRegistry } from './provider.js';

/** A resource as an implicit-dependency rule sees it (properties still unresolved expressions). */
export interface PlannedView {
  readonly name: string;
  readonly type: string;
  readonly properties: unknown;
}

/** The resource name of a `{get_resource: x}` expression, else undefined. */
function resourceRef(expr: unknown): string | undefined {
  if (expr && typeof expr === 'object' && !Array.isArray(expr)) {
    const v = (expr as Record<string, unknown>)['get_resource'];
    if (typeof v === 'string') return v;
  }
  return undefined;
}

function prop(props: unknown, ...names: string[]): unknown {
  if (!props || typeof props !== 'object' || Array.isArray(props)) return undefined;
  for (const n of names) {
    const v = (props as Record<string, unknown>)[n];
    if (v !== undefined && v !== null) return v;
  }
  return undefined;
}

const networkOf = (props: unknown) => resourceRef(prop(props, 'network', 'network_id'));

/** What the built-in rules look up, indexed once per plan (a 10K-server stack stays linear). */
export class NetworkIndex {
  private readonly subnets = new Map<string, string[]>();
  readonly byName = new Map<string, PlannedView>();
  readonly routerInterfaces: PlannedView[] = [];
  readonly routers: PlannedView[] = [];

  constructor(all: readonly PlannedView[]) {
    for (const x of all) {
      this.byName.set(x.name, x);
      if (x.type === 'OS::Neutron::Subnet') {
        const net = networkOf(x.properties);
        if (net) this.subnets.set(net, [...(this.subnets.get(net) ?? []), x.name]);
      } else if (x.type === 'OS::Neutron::RouterInterface') this.routerInterfaces.push(x);
      else if (x.type === 'OS::Neutron::Router') this.routers.push(x);
    }
  }

  subnetsOf(net: string): string[] {
    return this.subnets.get(net) ?? [];
  }
}

/** Built-in rules by type name: the names of resources `r` must also wait for. */
export function builtinImplicitDependencies(r: PlannedView, index: NetworkIndex): string[] {
  const subnetsOf = (net: string) => index.subnetsOf(net);
  switch (r.type) {
    case 'OS::Nova::Server': {
      const nets = prop(r.properties, 'networks');
      if (!Array.isArray(nets)) return [];
      const out: string[] = [];
      for (const n of nets) {
        const net = resourceRef(prop(n, 'network', 'uuid'));
        if (net) out.push(...subnetsOf(net));
      }
      return out;
    }
    case 'OS::Neutron::Port': {
      const net = networkOf(r.properties);
      return net ? subnetsOf(net) : [];
    }
    case 'OS::Neutron::Router': {
      const net = resourceRef(prop(prop(r.properties, 'external_gateway_info'), 'network'));
      return net ? subnetsOf(net) : [];
    }
    case 'OS::Neutron::FloatingIP': {
      const out: string[] = [];
      const portName = resourceRef(prop(r.properties, 'port_id'));
      const port = portName ? index.byName.get(portName) : undefined;
      const portNet = port ? networkOf(port.properties) : undefined;
      if (portNet) {
        const subnets = new Set(subnetsOf(portNet));
        for (const x of index.routerInterfaces) {
          if (subnets.has(resourceRef(prop(x.properties, 'subnet', 'subnet_id')) ?? '')) out.push(x.name);
        }
      }
      const fnet = resourceRef(prop(r.properties, 'floating_network', 'floating_network_id'));
      if (fnet) {
        for (const x of index.routers) {
          if (resourceRef(prop(prop(x.properties, 'external_gateway_info'), 'network')) === fnet) out.push(x.name);
        }
      }
      return out;
    }
    default:
      return [];
  }
}

const BUILTIN_RULE_TYPES = new Set(['OS::Nova::Server', 'OS::Neutron::Port', 'OS::Neutron::Router', 'OS::Neutron::FloatingIP']);

/** Adds implicit dependencies to the plan's `requires` (no edge that would close a cycle). */
export function withImplicitDependencies<T extends PlannedResource>(planned: readonly T[], types: TypeRegistry): T[] {
  const requires = new Map(planned.map((r) => [r.name, new Set(r.requires)]));
  const reaches = (from: string, to: string): boolean => {
    const seen = new Set<string>();
    const stack = [from];
    while (stack.length > 0) {
      const x = stack.pop()!;
      if (x === to) return true;
      if (seen.has(x)) continue;
      seen.add(x);
      for (const q of requires.get(x) ?? []) stack.push(q);
    }
    return false;
  };
  let changed = false;
  let index: NetworkIndex | undefined;
  for (const r of planned) {
    const hook = types.get(r.type)?.implicitDependencies;
    const extra = hook ? hook(r, planned) : BUILTIN_RULE_TYPES.has(r.type) ? builtinImplicitDependencies(r, (index ??= new NetworkIndex(planned))) : [];
    const mine = requires.get(r.name)!;
    for (const q of extra) {
      if (q === r.name || mine.has(q) || !requires.has(q) || reaches(q, r.name)) continue;
      mine.add(q);
      changed = true;
    }
  }
  if (!changed) return [...planned];
  return planned.map((r) => (requires.get(r.name)!.size === r.requires.length ? r : { ...r, requires: [...requires.get(r.name)!] }));
}
