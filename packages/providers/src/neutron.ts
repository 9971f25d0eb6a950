/** OS::Neutron::Net, Subnet, Port, Router, RouterInterface, FloatingIP, SecurityGroup. */
import { KilnError } from '@kiln/core';
import type { ActionRequest, ResourceType } from '@kiln/engine';
import type { Kind, Port, SecurityGroup, SecurityGroupRule } from '@kiln/sim-cloud';
import { ResourceGoneError, classifyCloudError } from './errors.js';
import type { CloudGateway } from './gateway.js';
import { OK, S, U, cloudType, compact, differing, driftHealth, nameOf, resolveId, type CloudTaskType, type Io, type ObservedResource, type TaskContext } from './define.js';

const KEY_TAG = 'kiln:key=';

/** User tags (the idempotency key tag is the cloud's bookkeeping, not the user's). */
function userTags(tags: readonly string[] | undefined): string[] {
  return (tags ?? []).filter((t) => !t.startsWith(KEY_TAG));
}

/** Sets the user's tags when they differ; true when it did. */
async function syncTags(io: Io, kind: Kind, obj: { id: string; tags: string[] }, desired: unknown): Promise<boolean> {
  if (!Array.isArray(desired)) return false;
  const want = desired.map(String);
  if (JSON.stringify(userTags(obj.tags)) === JSON.stringify(want)) return false;
  await io.gw.call(`${kind}.setTags`, io.signal, (o) => io.gw.client.setTags(kind, obj.id, want, o));
  return true;
}

function valueSpecs(req: ActionRequest): Record<string, unknown> {
  const v = req.properties.value_specs;
  return v && typeof v === 'object' ? (v as Record<string, unknown>) : {};
}

/** The network of a Net/Subnet/Port-style property pair (`network`, deprecated `network_id`). */
async function networkOf(io: Io, req: ActionRequest, prop = 'network'): Promise<string> {
  const v = req.properties[prop] ?? req.properties[`${prop}_id`];
  if (v === undefined || v === null || v === '') throw new KilnError('PROPERTY_INVALID', `Property ${prop} not assigned`, { path: `properties.${prop}` });
  return resolveId(io, 'network', v, prop);
}

export function neutronTypes(gw: CloudGateway): ResourceType[] {
  const net = cloudType(
    {
      name: 'OS::Neutron::Net',
      kind: 'network',
      properties: {
        name: S.str(U),
        value_specs: S.map({ default: {}, ...U }),
        tenant_id: S.str(),
        admin_state_up: S.bool({ default: true, ...U }),
        shared: S.bool({ default: false, ...U }),
        dhcp_agent_ids: S.list(U),
        port_security_enabled: S.bool(U),
        qos_policy: S.str(U),
        dns_domain: S.str(U),
        availability_zone_hints: S.list(),
        tags: S.list(U),
      },
      attributes: ['status', 'name', 'subnets', 'admin_state_up', 'tenant_id', 'port_security_enabled', 'mtu', 'qos_policy_id', 'l2_adjacency', 'segments'],
      async body(req) {
        const p = req.properties;
        return compact({ name: nameOf(req), admin_state_up: p.admin_state_up, shared: p.shared, port_security_enabled: p.port_security_enabled, dns_domain: p.dns_domain, ...valueSpecs(req) });
      },
      settle: (o) => (o.status === 'BUILD' ? 'pending' : 'done'),
      afterCreate: (req, obj, io) => syncTags(io, 'network', obj, req.properties.tags),
      async update(req, obj, io) {
        const p = req.properties;
        const patch = compact({ name: nameOf(req), admin_state_up: p.admin_state_up, shared: p.shared, port_security_enabled: p.port_security_enabled, dns_domain: p.dns_domain, ...valueSpecs(req) });
        await io.gw.call('network.update', io.signal, (o) => io.gw.client.update('network', obj.id, patch, o));
        await syncTags(io, 'network', obj, p.tags);
      },
      attrs: (o) => ({
        status: o.status,
        name: o.name,
        subnets: o.subnets,
        admin_state_up: o.admin_state_up,
        tenant_id: o.tenant_id,
        port_security_enabled: o.port_security_enabled ?? true,
        mtu: o.mtu,
        qos_policy_id: o.qos_policy_id ?? null,
        l2_adjacency: true,
        segments: [],
        show: o,
      }),
      health: (o, req) => driftHealth(differing({ name: [nameOf(req), o.name], admin_state_up: [req.properties.admin_state_up, o.admin_state_up] })),
    },
    gw,
  );

  const subnet = cloudType(
    {
      name: 'OS::Neutron::Subnet',
      kind: 'subnet',
      properties: {
        network_id: S.str(),
        network: S.str(),
        subnetpool: S.str(),
        prefixlen: S.int(),
        cidr: S.str(),
        value_specs: S.map({ default: {}, ...U }),
        name: S.str(U),
        ip_version: S.int({ default: 4 }),
        dns_nameservers: S.list({ default: [], ...U }),
        gateway_ip: S.str(U),
        enable_dhcp: S.bool({ default: true, ...U }),
        allocation_pools: S.list(U),
        tenant_id: S.str(),
        host_routes: S.list(U),
        ipv6_address_mode: S.str(),
        ipv6_ra_mode: S.str(),
        segment: S.str(U),
        tags: S.list(U),
      },
      attributes: ['name', 'network_id', 'tenant_id', 'allocation_pools', 'gateway_ip', 'host_routes', 'ip_version', 'cidr', 'dns_nameservers', 'enable_dhcp'],
      async body(req, io) {
        const p = req.properties;
        if (typeof p.cidr !== 'string') throw new KilnError('PROPERTY_INVALID', 'Property cidr not assigned (subnet pools are not supported)', { path: 'properties.cidr' });
        return compact({
          name: nameOf(req),
          network_id: await networkOf(io, req),
          cidr: p.cidr,
          ip_version: p.ip_version,
          gateway_ip: p.gateway_ip === '' ? null : p.gateway_ip,
          enable_dhcp: p.enable_dhcp,
          allocation_pools: p.allocation_pools,
          dns_nameservers: p.dns_nameservers,
          host_routes: p.host_routes,
          ...valueSpecs(req),
        });
      },
      async update(req, obj, io) {
        const p = req.properties;
        const patch = compact({ name: nameOf(req), gateway_ip: p.gateway_ip, enable_dhcp: p.enable_dhcp, allocation_pools: p.allocation_pools, dns_nameservers: p.dns_nameservers, host_routes: p.host_routes, ...valueSpecs(req) });
        await io.gw.call('subnet.update', io.signal, (o) => io.gw.client.update('subnet', obj.id, patch, o));
      },
      attrs: (o) => ({
        name: o.name,
        network_id: o.network_id,
        tenant_id: o.tenant_id,
        allocation_pools: o.allocation_pools,
        gateway_ip: o.gateway_ip,
        host_routes: o.host_routes ?? [],
        ip_version: o.ip_version,
        cidr: o.cidr,
        dns_nameservers: o.dns_nameservers ?? [],
        enable_dhcp: o.enable_dhcp,
        show: o,
      }),
      health: (o, req) => driftHealth(differing({ name: [nameOf(req), o.name], enable_dhcp: [req.properties.enable_dhcp, o.enable_dhcp] })),
    },
    gw,
  );

  const portBody = async (req: ActionRequest, io: Io, creating: boolean): Promise<Record<string, unknown>> => {
    const p = req.properties;
    const fixed = Array.isArray(p.fixed_ips)
      ? await Promise.all(
          (p.fixed_ips as Record<string, unknown>[]).map(async (f, i) => {
            const sub = f.subnet ?? f.subnet_id;
            return compact({ subnet_id: sub ? await resolveId(io, 'subnet', sub, `fixed_ips[${i}].subnet`) : undefined, ip_address: f.ip_address });
          }),
        )
      : undefined;
    const sgs = Array.isArray(p.security_groups) ? await Promise.all((p.security_groups as unknown[]).map((g, i) => resolveId(io, 'security_group', g, `security_groups[${i}]`))) : undefined;
    return compact({
      ...(creating ? { network_id: await networkOf(io, req), mac_address: p.mac_address } : {}),
      name: nameOf(req),
      admin_state_up: p.admin_state_up,
      fixed_ips: fixed,
      security_groups: sgs,
      device_id: p.device_id,
      device_owner: p.device_owner,
      allowed_address_pairs: p.allowed_address_pairs,
      port_security_enabled: p.port_security_enabled,
      dns_name: p.dns_name,
      'binding:vnic_type': p['binding:vnic_type'],
      ...valueSpecs(req),
    });
  };

  const port = cloudType(
    {
      name: 'OS::Neutron::Port',
      kind: 'port',
      properties: {
        network_id: S.str(),
        network: S.str(),
        name: S.str(U),
        value_specs: S.map({ default: {}, ...U }),
        admin_state_up: S.bool({ default: true, ...U }),
        fixed_ips: S.list(U),
        security_groups: S.list(U),
        mac_address: S.str(),
        device_id: S.str(U),
        device_owner: S.str(U),
        allowed_address_pairs: S.list(U),
        'binding:vnic_type': S.str({ default: 'normal', ...U }),
        port_security_enabled: S.bool(U),
        qos_policy: S.str(U),
        dns_name: S.str(U),
        replacement_policy: S.str({ default: 'AUTO', ...U }),
        tags: S.list(U),
      },
      attributes: ['admin_state_up', 'device_id', 'device_owner', 'fixed_ips', 'mac_address', 'name', 'network_id', 'security_groups', 'status', 'tenant_id', 'allowed_address_pairs', 'subnets', 'port_security_enabled', 'qos_policy_id', 'dns_assignment', 'network'],
      body: (req, io) => portBody(req, io, true),
      afterCreate: (req, obj, io) => syncTags(io, 'port', obj, req.properties.tags),
      async update(req, obj, io) {
        const patch = await portBody(req, io, false);
        // The device a server bound the port to is the server's business, not drift.
        if (req.properties.device_id === undefined) delete patch.device_id;
        await io.gw.call('port.update', io.signal, (o) => io.gw.client.update('port', obj.id, patch, o));
        await syncTags(io, 'port', obj, req.properties.tags);
      },
      attrs: portAttrs,
      health: (o, req) => {
        if (o['binding:vif_type'] === 'binding_failed') return { state: 'error', reason: `Port ${o.id} is unreachable (binding failed)`, repair: 'replace' };
        return driftHealth(differing({ name: [nameOf(req), o.name], admin_state_up: [req.properties.admin_state_up, o.admin_state_up] }));
      },
    },
    gw,
  );

  const router = cloudType(
    {
      name: 'OS::Neutron::Router',
      kind: 'router',
      properties: {
        name: S.str(U),
        external_gateway_info: S.map(U),
        value_specs: S.map({ default: {}, ...U }),
        admin_state_up: S.bool({ default: true, ...U }),
        l3_agent_ids: S.list(U),
        distributed: S.bool(),
        ha: S.bool(),
        tags: S.list(U),
      },
      attributes: ['status', 'external_gateway_info', 'name', 'admin_state_up', 'tenant_id'],
      body: (req, io) => routerBody(req, io),
      settle: (o) => (o.status === 'BUILD' ? 'pending' : 'done'),
      afterCreate: (req, obj, io) => syncTags(io, 'router', obj, req.properties.tags),
      async update(req, obj, io) {
        const patch = await routerBody(req, io);
        if (req.properties.external_gateway_info === undefined) patch.external_gateway_info = null;
        await io.gw.call('router.update', io.signal, (o) => io.gw.client.update('router', obj.id, patch, o));
        await syncTags(io, 'router', obj, req.properties.tags);
      },
      attrs: (o) => ({ status: o.status, external_gateway_info: o.external_gateway_info, name: o.name, admin_state_up: o.admin_state_up, tenant_id: o.tenant_id, show: o }),
      health: (o, req) => driftHealth(differing({ name: [nameOf(req), o.name], admin_state_up: [req.properties.admin_state_up, o.admin_state_up] })),
    },
    gw,
  );

  async function routerBody(req: ActionRequest, io: Io): Promise<Record<string, unknown>> {
    const p = req.properties;
    const gwInfo = p.external_gateway_info as Record<string, unknown> | undefined;
    const ext = gwInfo
      ? compact({ network_id: await resolveId(io, 'network', gwInfo.network ?? gwInfo.network_id, 'external_gateway_info.network'), enable_snat: gwInfo.enable_snat, external_fixed_ips: gwInfo.external_fixed_ips })
      : undefined;
    return compact({ name: nameOf(req), admin_state_up: p.admin_state_up, external_gateway_info: ext, distributed: p.distributed, ha: p.ha, ...valueSpecs(req) });
  }

  const floatingIp = cloudType(
    {
      name: 'OS::Neutron::FloatingIP',
      kind: 'floatingip',
      properties: {
        floating_network_id: S.str(),
        floating_network: S.str(),
        floating_subnet: S.str(),
        value_specs: S.map({ default: {} }),
        port_id: S.str(U),
        fixed_ip_address: S.str(U),
        floating_ip_address: S.str(),
        dns_name: S.str(),
        dns_domain: S.str(),
      },
      attributes: ['router_id', 'tenant_id', 'floating_network_id', 'fixed_ip_address', 'floating_ip_address', 'port_id'],
      async body(req, io) {
        const p = req.properties;
        return compact({
          floating_network_id: await networkOf(io, req, 'floating_network'),
          port_id: p.port_id ? await resolveId(io, 'port', p.port_id, 'port_id') : undefined,
          fixed_ip_address: p.fixed_ip_address,
          floating_ip_address: p.floating_ip_address,
          ...valueSpecs(req),
        });
      },
      async update(req, obj, io) {
        const p = req.properties;
        const patch = { port_id: p.port_id ? await resolveId(io, 'port', p.port_id, 'port_id') : null, ...(p.fixed_ip_address ? { fixed_ip_address: p.fixed_ip_address } : {}) };
        await io.gw.call('floatingip.update', io.signal, (o) => io.gw.client.update('floatingip', obj.id, patch, o));
      },
      attrs: (o) => ({
        router_id: o.router_id ?? null,
        tenant_id: o.tenant_id,
        floating_network_id: o.floating_network_id,
        fixed_ip_address: o.fixed_ip_address,
        floating_ip_address: o.floating_ip_address,
        port_id: o.port_id,
        show: o,
      }),
      health: (o, req) => driftHealth(differing({ port_id: [req.properties.port_id ?? null, o.port_id] })),
    },
    gw,
  );

  const securityGroup = cloudType(
    {
      name: 'OS::Neutron::SecurityGroup',
      kind: 'security_group',
      properties: { name: S.str(U), description: S.str(U), rules: S.list({ default: [], ...U }) },
      attributes: [],
      async body(req, io) {
        return compact({ name: nameOf(req), description: req.properties.description, security_group_rules: await desiredRules(req, io, undefined) });
      },
      async update(req, obj, io) {
        const p = req.properties;
        await io.gw.call('security_group.update', io.signal, (o) => io.gw.client.update('security_group', obj.id, compact({ name: nameOf(req), description: p.description }), o));
        const want = await desiredRules(req, io, obj.id);
        const wantKeys = new Set(want.map(ruleKey));
        const have = obj.security_group_rules;
        const haveKeys = new Set(have.map(ruleKey));
        for (const r of have) if (!wantKeys.has(ruleKey(r))) await io.gw.call('security_group_rule.delete', io.signal, (o) => io.gw.client.deleteSecurityGroupRule(r.id, o));
        for (const r of want) if (!haveKeys.has(ruleKey(r))) await io.gw.call('security_group_rule.create', io.signal, (o) => io.gw.client.addSecurityGroupRule({ ...r, security_group_id: obj.id }, o));
      },
      attrs: (o) => ({ show: o }),
      health: (o: SecurityGroup, req) => {
        const want = rulesOf(req, o.id);
        const same = JSON.stringify(want.map(ruleKey).sort()) === JSON.stringify(o.security_group_rules.map(ruleKey).sort());
        return same ? driftHealth(differing({ name: [nameOf(req), o.name] })) : driftHealth(['rules']);
      },
    },
    gw,
  );

  return [net, subnet, port, router, routerInterface(gw), floatingIp, securityGroup];
}

export function portAttrs(o: Port): Record<string, unknown> {
  return {
    admin_state_up: o.admin_state_up,
    device_id: o.device_id,
    device_owner: o.device_owner,
    fixed_ips: o.fixed_ips,
    mac_address: o.mac_address,
    name: o.name,
    network_id: o.network_id,
    security_groups: o.security_groups,
    status: o.status,
    tenant_id: o.tenant_id,
    allowed_address_pairs: o.allowed_address_pairs ?? [],
    subnets: [...new Set(o.fixed_ips.map((f) => f.subnet_id))],
    port_security_enabled: o.port_security_enabled ?? true,
    qos_policy_id: o.qos_policy_id ?? null,
    dns_assignment: o.dns_assignment ?? null,
    network: { id: o.network_id },
    show: o,
  };
}

type Rule = Omit<SecurityGroupRule, 'id' | 'security_group_id'>;

const DEFAULT_EGRESS: Rule[] = ['IPv4', 'IPv6'].map((ethertype) => ({ direction: 'egress', ethertype, protocol: null, port_range_min: null, port_range_max: null, remote_ip_prefix: null, remote_group_id: null }));

/** Heat's rule normalisation; without any egress rule the cloud's default egress rules stay. */
function rulesOf(req: ActionRequest, selfId: string | undefined): Rule[] {
  const given = Array.isArray(req.properties.rules) ? (req.properties.rules as Record<string, unknown>[]) : [];
  const rules: Rule[] = given.map((r) => {
    const remoteGroup = r.remote_mode === 'remote_group_id' ? ((r.remote_group_id as string | undefined) ?? selfId ?? null) : null;
    return {
      direction: r.direction === 'egress' ? 'egress' : 'ingress',
      ethertype: typeof r.ethertype === 'string' ? r.ethertype : 'IPv4',
      protocol: r.protocol === undefined || r.protocol === null ? null : String(r.protocol),
      port_range_min: typeof r.port_range_min === 'number' ? r.port_range_min : r.port_range_min ? Number(r.port_range_min) : null,
      port_range_max: typeof r.port_range_max === 'number' ? r.port_range_max : r.port_range_max ? Number(r.port_range_max) : null,
      remote_ip_prefix: remoteGroup ? null : ((r.remote_ip_prefix as string | undefined) ?? null),
      remote_group_id: remoteGroup,
    };
  });
  return rules.some((r) => r.direction === 'egress') ? rules : [...rules, ...DEFAULT_EGRESS];
}

async function desiredRules(req: ActionRequest, io: Io, selfId: string | undefined): Promise<Rule[]> {
  const rules = rulesOf(req, selfId);
  return Promise.all(rules.map(async (r, i) => (r.remote_group_id && r.remote_group_id !== selfId ? { ...r, remote_group_id: await resolveId(io, 'security_group', r.remote_group_id, `rules[${i}].remote_group_id`) } : r)));
}

function ruleKey(r: Rule): string {
  return JSON.stringify([r.direction, r.ethertype, r.protocol ?? null, r.port_range_min ?? null, r.port_range_max ?? null, r.remote_ip_prefix ?? null, r.remote_group_id ?? null]);
}

/**
 * OS::Neutron::RouterInterface: not an object of its own but a router port. Physical id as in
 * Heat: `<router>:subnet_id=<subnet>` or `<router>:port_id=<port>`. Adding is made idempotent by
 * looking for the router's port on the subnet (or the port's binding) first.
 */
function routerInterface(gw: CloudGateway): CloudTaskType {
  type Target = { subnet_id: string } | { port_id: string };
  const parse = (id: string): { router: string; target: Target } => {
    const [router, spec] = id.split(':', 2) as [string, string | undefined];
    const [field, value] = (spec ?? '').split('=', 2) as [string, string | undefined];
    return { router, target: field === 'port_id' ? { port_id: value ?? '' } : { subnet_id: value ?? '' } };
  };
  const idOf = (router: string, t: Target) => ('port_id' in t ? `${router}:port_id=${t.port_id}` : `${router}:subnet_id=${t.subnet_id}`);
  const find = async (router: string, t: Target, signal: AbortSignal): Promise<Port | undefined> => {
    const ports = await gw.call('port.list', signal, (o) => gw.client.list('port', { device_id: router }, o));
    return ports.find((p) => ('port_id' in t ? p.id === t.port_id : p.fixed_ips.some((f) => f.subnet_id === t.subnet_id)));
  };
  return {
    kind: 'task',
    name: 'OS::Neutron::RouterInterface',
    properties: { router: S.str(), router_id: S.str(), subnet: S.str(), subnet_id: S.str(), port: S.str(), port_id: S.str() },
    attributes: ['show'],
    classify: classifyCloudError,
    async create(req, ctx) {
      const io: Io = { gw, signal: ctx.signal, key: req.idempotencyKey };
      const p = req.properties;
      const r = p.router ?? p.router_id;
      if (!r) throw new KilnError('PROPERTY_INVALID', 'Property router not assigned', { path: 'properties.router' });
      const router = await resolveId(io, 'router', r, 'router');
      const sub = p.subnet ?? p.subnet_id;
      const prt = p.port ?? p.port_id;
      if ((sub ? 1 : 0) + (prt ? 1 : 0) !== 1) throw new KilnError('PROPERTY_INVALID', 'Exactly one of subnet or port must be specified', { path: 'properties.subnet' });
      const target: Target = sub ? { subnet_id: await resolveId(io, 'subnet', sub, 'subnet') } : { port_id: await resolveId(io, 'port', prt, 'port') };
      let port = await find(router, target, ctx.signal);
      if (!port) {
        // A refused add (400 "already has a port on subnet", 409 port in use) may be the add of a
        // retried call or of a concurrent replay that did happen: it stands when the interface is there.
        await gw.call('router.add_interface', ctx.signal, async (o) => {
          try {
            await gw.client.addRouterInterface(router, target, o);
          } catch (e) {
            if (!(e instanceof KilnError) || (e.code !== 'REQUEST_INVALID' && e.code !== 'CONFLICT') || !(await find(router, target, ctx.signal))) throw e;
          }
        });
        port = await find(router, target, ctx.signal);
      }
      return { physicalId: idOf(router, target), attrs: { show: port ?? null } };
    },
    async update(req) {
      // Every property replaces (none is update_allowed); an update only re-reads.
      if (!req.physicalId) throw new ResourceGoneError(`RouterInterface ${req.name} has no physical id`);
      return { physicalId: req.physicalId, attrs: req.attrs ?? {} };
    },
    async delete(req, ctx: TaskContext) {
      if (!req.physicalId) return;
      const { router, target } = parse(req.physicalId);
      await gw.call('router.remove_interface', ctx.signal, (o) => gw.client.removeRouterInterface(router, target, o));
    },
    async observe(req, ctx): Promise<ObservedResource | null> {
      if (!req.physicalId) return null;
      const { router, target } = parse(req.physicalId);
      const port = await find(router, target, ctx.signal);
      return port ? { physicalId: req.physicalId, attrs: { show: port }, health: OK } : null;
    },
  };
}
