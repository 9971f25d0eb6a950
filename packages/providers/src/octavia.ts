/** OS::Octavia::LoadBalancer, Listener, Pool, PoolMember, HealthMonitor. */
import { KilnError } from '@kiln/core';
import type { ActionRequest, ResourceType } from '@kiln/engine';
import type { ObjectOf } from '@kiln/sim-cloud';
import type { CloudGateway, Settle } from './gateway.js';
import { S, U, cloudType, compact, differing, driftHealth, nameOf, resolveId, type Io } from './define.js';

type LbKind = 'loadbalancer' | 'listener' | 'pool' | 'member' | 'healthmonitor';

/** Octavia objects are usable once provisioning_status is ACTIVE. */
const provisioned = (o: { provisioning_status: string }): Settle =>
  o.provisioning_status === 'ACTIVE' ? 'done' : o.provisioning_status === 'ERROR' ? { failed: 'provisioning_status ERROR' } : 'pending';

async function put<K extends LbKind>(io: Io, kind: K, id: string, patch: Record<string, unknown>, pool?: string): Promise<void> {
  await io.gw.call(`${kind}.update`, io.signal, (o) => io.gw.client.update(kind, id, patch, { ...o, ...(pool ? { pool } : {}) }));
}

function required(req: ActionRequest, prop: string): unknown {
  const v = req.properties[prop];
  if (v === undefined || v === null || v === '') throw new KilnError('PROPERTY_INVALID', `Property ${prop} not assigned`, { path: `properties.${prop}` });
  return v;
}

const ADMIN = S.bool({ default: true, ...U });

export function octaviaTypes(gw: CloudGateway): ResourceType[] {
  const common = <K extends LbKind>(kind: K) => ({
    kind,
    settle: (o: ObjectOf[K]) => provisioned(o),
  });

  const loadBalancer = cloudType(
    {
      ...common('loadbalancer'),
      name: 'OS::Octavia::LoadBalancer',
      properties: {
        description: S.str({ default: '', ...U }),
        flavor: S.str(),
        name: S.str(U),
        provider: S.str(),
        tenant_id: S.str(),
        vip_address: S.str(),
        vip_subnet: S.str(),
        vip_network: S.str(),
        vip_qos_policy: S.str(),
        admin_state_up: ADMIN,
        availability_zone: S.str(),
      },
      attributes: ['vip_address', 'vip_port_id', 'vip_subnet_id', 'pools', 'listeners', 'flavor_id', 'availability_zone'],
      async body(req, io) {
        const p = req.properties;
        if (!p.vip_subnet && !p.vip_network) throw new KilnError('PROPERTY_INVALID', 'At least one of the following properties must be specified: vip_subnet, vip_network.', { path: 'properties.vip_subnet' });
        return compact({
          name: nameOf(req),
          description: p.description,
          vip_subnet_id: p.vip_subnet ? await resolveId(io, 'subnet', p.vip_subnet, 'vip_subnet') : undefined,
          vip_network_id: p.vip_network ? await resolveId(io, 'network', p.vip_network, 'vip_network') : undefined,
          vip_address: p.vip_address,
          admin_state_up: p.admin_state_up,
          provider: p.provider,
          flavor_id: p.flavor,
          availability_zone: p.availability_zone,
        });
      },
      update: (req, obj, io) => put(io, 'loadbalancer', obj.id, compact({ name: nameOf(req), description: req.properties.description, admin_state_up: req.properties.admin_state_up })),
      attrs: (o) => ({
        vip_address: o.vip_address,
        vip_port_id: o.vip_port_id ?? null,
        vip_subnet_id: o.vip_subnet_id ?? null,
        pools: o.pools,
        listeners: o.listeners,
        flavor_id: o.flavor_id ?? null,
        availability_zone: o.availability_zone ?? null,
        show: o,
      }),
      health: (o, req) => driftHealth(differing({ name: [nameOf(req), o.name], admin_state_up: [req.properties.admin_state_up, o.admin_state_up] })),
    },
    gw,
  );

  const listener = cloudType(
    {
      ...common('listener'),
      name: 'OS::Octavia::Listener',
      properties: {
        protocol_port: S.int({ required: true }),
        protocol: S.str({ required: true }),
        loadbalancer: S.str({ required: true }),
        default_pool: S.str(U),
        name: S.str(U),
        admin_state_up: ADMIN,
        description: S.str(U),
        connection_limit: S.int(U),
        default_tls_container_ref: S.str(U),
        sni_container_refs: S.list(U),
        tenant_id: S.str(),
        allowed_cidrs: S.list(U),
      },
      attributes: ['loadbalancers', 'default_pool_id'],
      async body(req, io) {
        const p = req.properties;
        return compact({
          loadbalancer_id: await resolveId(io, 'loadbalancer', required(req, 'loadbalancer'), 'loadbalancer'),
          protocol: p.protocol,
          protocol_port: p.protocol_port,
          name: nameOf(req),
          default_pool_id: p.default_pool ? await resolveId(io, 'pool', p.default_pool, 'default_pool') : undefined,
          admin_state_up: p.admin_state_up,
          description: p.description,
          connection_limit: p.connection_limit,
          allowed_cidrs: p.allowed_cidrs,
        });
      },
      async update(req, obj, io) {
        const p = req.properties;
        await put(io, 'listener', obj.id, compact({ name: nameOf(req), admin_state_up: p.admin_state_up, description: p.description, connection_limit: p.connection_limit, default_pool_id: p.default_pool ? await resolveId(io, 'pool', p.default_pool, 'default_pool') : undefined }));
      },
      attrs: (o) => ({ loadbalancers: o.loadbalancers ?? [{ id: o.loadbalancer_id }], default_pool_id: o.default_pool_id, show: o }),
      health: (o, req) => driftHealth(differing({ name: [nameOf(req), o.name], admin_state_up: [req.properties.admin_state_up, o.admin_state_up] })),
    },
    gw,
  );

  const pool = cloudType(
    {
      ...common('pool'),
      name: 'OS::Octavia::Pool',
      properties: {
        admin_state_up: ADMIN,
        description: S.str(U),
        session_persistence: S.map(U),
        name: S.str(U),
        lb_algorithm: S.str({ required: true, ...U }),
        listener: S.str(),
        loadbalancer: S.str(),
        protocol: S.str({ required: true }),
        tls_enabled: S.bool({ default: false, ...U }),
      },
      attributes: ['admin_state_up', 'name', 'lb_algorithm', 'listeners', 'session_persistence', 'members', 'healthmonitor_id', 'description', 'loadbalancers'],
      async body(req, io) {
        const p = req.properties;
        if (!p.listener && !p.loadbalancer) throw new KilnError('PROPERTY_INVALID', 'At least one of the following properties must be specified: listener, loadbalancer.', { path: 'properties.listener' });
        return compact({
          name: nameOf(req),
          lb_algorithm: p.lb_algorithm,
          protocol: p.protocol,
          listener_id: p.listener ? await resolveId(io, 'listener', p.listener, 'listener') : undefined,
          loadbalancer_id: p.loadbalancer ? await resolveId(io, 'loadbalancer', p.loadbalancer, 'loadbalancer') : undefined,
          admin_state_up: p.admin_state_up,
          description: p.description,
          session_persistence: p.session_persistence,
        });
      },
      update: (req, obj, io) => {
        const p = req.properties;
        return put(io, 'pool', obj.id, compact({ name: nameOf(req), lb_algorithm: p.lb_algorithm, admin_state_up: p.admin_state_up, description: p.description, session_persistence: p.session_persistence }));
      },
      attrs: (o) => ({
        admin_state_up: o.admin_state_up,
        name: o.name,
        lb_algorithm: o.lb_algorithm,
        listeners: o.listeners ?? [],
        session_persistence: o.session_persistence ?? null,
        members: o.members,
        healthmonitor_id: o.healthmonitor_id,
        description: o.description ?? '',
        loadbalancers: o.loadbalancers ?? [{ id: o.loadbalancer_id }],
        show: o,
      }),
      health: (o, req) => driftHealth(differing({ name: [nameOf(req), o.name], lb_algorithm: [req.properties.lb_algorithm, o.lb_algorithm] })),
    },
    gw,
  );

  // A member lives under its pool: every call needs the pool id (from the stored attributes, or the property).
  const memberPool = (req: ActionRequest): string => String((req.attrs?.pool_id as string | undefined) ?? req.properties.pool ?? '');
  const member = cloudType(
    {
      ...common('member'),
      name: 'OS::Octavia::PoolMember',
      properties: {
        pool: S.str({ required: true }),
        address: S.str({ required: true }),
        protocol_port: S.int({ required: true }),
        monitor_address: S.str(),
        monitor_port: S.int(),
        weight: S.int({ default: 1, ...U }),
        admin_state_up: ADMIN,
        subnet: S.str(),
        tags: S.list(U),
      },
      attributes: ['address', 'pool_id'],
      callOpts: (req) => ({ pool: memberPool(req) }),
      async body(req, io) {
        const p = req.properties;
        return compact({
          pool_id: await resolveId(io, 'pool', required(req, 'pool'), 'pool'),
          address: p.address,
          protocol_port: p.protocol_port,
          monitor_address: p.monitor_address,
          monitor_port: p.monitor_port,
          weight: p.weight,
          admin_state_up: p.admin_state_up,
          subnet_id: p.subnet ? await resolveId(io, 'subnet', p.subnet, 'subnet') : undefined,
        });
      },
      update: (req, obj, io) => put(io, 'member', obj.id, compact({ weight: req.properties.weight, admin_state_up: req.properties.admin_state_up }), obj.pool_id),
      attrs: (o) => ({ address: o.address, pool_id: o.pool_id, operating_status: o.operating_status, show: o }),
      health: (o, req) => {
        // ERROR: the member stopped forwarding (its backend is down); replacing the member re-registers it.
        if (o.operating_status === 'ERROR') return { state: 'error', reason: `Member ${o.id} of pool ${o.pool_id} is not forwarding (operating_status ERROR)`, repair: 'replace' };
        return driftHealth(differing({ weight: [req.properties.weight, o.weight], admin_state_up: [req.properties.admin_state_up, o.admin_state_up] }));
      },
    },
    gw,
  );

  const healthMonitor = cloudType(
    {
      ...common('healthmonitor'),
      name: 'OS::Octavia::HealthMonitor',
      properties: {
        admin_state_up: ADMIN,
        delay: S.int({ required: true, ...U }),
        expected_codes: S.str(U),
        http_method: S.str(U),
        max_retries: S.int({ required: true, ...U }),
        max_retries_down: S.int(U),
        pool: S.str({ required: true }),
        timeout: S.int({ required: true, ...U }),
        type: S.str({ required: true }),
        url_path: S.str(U),
        tenant_id: S.str(),
      },
      attributes: ['pools'],
      async body(req, io) {
        const p = req.properties;
        return compact({
          pool_id: await resolveId(io, 'pool', required(req, 'pool'), 'pool'),
          type: p.type,
          delay: p.delay,
          timeout: p.timeout,
          max_retries: p.max_retries,
          max_retries_down: p.max_retries_down,
          admin_state_up: p.admin_state_up,
          expected_codes: p.expected_codes,
          http_method: p.http_method,
          url_path: p.url_path,
        });
      },
      update: (req, obj, io) => {
        const p = req.properties;
        return put(io, 'healthmonitor', obj.id, compact({ delay: p.delay, timeout: p.timeout, max_retries: p.max_retries, max_retries_down: p.max_retries_down, admin_state_up: p.admin_state_up, expected_codes: p.expected_codes, http_method: p.http_method, url_path: p.url_path }));
      },
      attrs: (o) => ({ pools: o.pools ?? [{ id: o.pool_id }], show: o }),
      health: (o, req) => driftHealth(differing({ delay: [req.properties.delay, o.delay], timeout: [req.properties.timeout, o.timeout], max_retries: [req.properties.max_retries, o.max_retries] })),
    },
    gw,
  );

  return [loadBalancer, listener, pool, member, healthMonitor];
}

