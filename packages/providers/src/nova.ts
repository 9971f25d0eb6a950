/** OS::Nova::Server. */
import { KilnError } from '@kiln/core';
import type { ActionRequest, ResourceType } from '@kiln/engine';
import { createHash } from 'node:crypto';
import type { Port, Server } from '@kiln/sim-cloud';
import type { CloudGateway } from './gateway.js';
import { S, U, cloudType, compact, differing, driftHealth, nameOf, resolveId, stringMap, userMetadata, type Io } from './define.js';

/** One entry of the `networks` property. */
interface NetworkItem {
  network?: string;
  uuid?: string;
  port?: string;
  fixed_ip?: string;
  subnet?: string;
  allocate_network?: string;
  floating_ip?: string;
  tag?: string;
}

function networksOf(req: ActionRequest): NetworkItem[] {
  return Array.isArray(req.properties.networks) ? (req.properties.networks as NetworkItem[]) : [];
}

/** Entries for which the server makes its own port (Heat's internal ports): a fixed IP or a subnet was asked for. */
function needsInternalPort(n: NetworkItem): boolean {
  return !n.port && (n.fixed_ip !== undefined || n.subnet !== undefined);
}

/**
 * Idempotency keys of the internal ports, one per entry that needs one: derived from the entry's
 * content (and its occurrence), so reordering or inserting entries does not orphan a port.
 */
function internalPortKeys(key: string, nets: readonly NetworkItem[]): (string | undefined)[] {
  const seen = new Map<string, number>();
  return nets.map((n) => {
    if (!needsInternalPort(n)) return undefined;
    const h = createHash('sha256').update(JSON.stringify(n)).digest('hex').slice(0, 12);
    const k = seen.get(h) ?? 0;
    seen.set(h, k + 1);
    return `${key}:port:${h}:${k}`;
  });
}

/** Entries that plug nothing in (Nova's auto-allocated or no network). */
function plugsNothing(n: NetworkItem): boolean {
  return n.allocate_network === 'none' || n.allocate_network === 'auto';
}

async function networkOfItem(io: Io, n: NetworkItem, i: number): Promise<string> {
  const net = n.network ?? n.uuid;
  if (!net) throw new KilnError('PROPERTY_INVALID', 'One of the properties "network", "port", "allocate_network" or "subnet" should be set for the specified network of server', { path: `properties.networks[${i}]` });
  return resolveId(io, 'network', net, `networks[${i}].network`);
}

async function networksBody(req: ActionRequest, io: Io): Promise<Record<string, string>[]> {
  const out: Record<string, string>[] = [];
  const nets = networksOf(req);
  const keys = internalPortKeys(io.key, nets);
  for (const [i, n] of nets.entries()) {
    if (plugsNothing(n)) continue;
    if (n.port) out.push({ port: await resolveId(io, 'port', n.port, `networks[${i}].port`) });
    else if (keys[i]) out.push({ port: (await internalPort(req, io, n, i, keys[i])).id });
    else out.push({ uuid: await networkOfItem(io, n, i) });
  }
  return out;
}

/** Finds (by key) or makes the port of a network entry that names a fixed IP or a subnet. */
async function internalPort(req: ActionRequest, io: Io, n: NetworkItem, i: number, key: string): Promise<Port> {
  const found = io.gw.idempotentCreates ? undefined : await io.gw.call('port.findByKey', io.signal, (o) => io.gw.client.findByKey('port', key, o));
  if (found) return found;
  const subnetId = n.subnet ? await resolveId(io, 'subnet', n.subnet, `networks[${i}].subnet`) : undefined;
  let networkId = (n.network ?? n.uuid) ? await networkOfItem(io, n, i) : undefined;
  if (!networkId && subnetId) networkId = (await io.gw.get('subnet', subnetId, io.signal))?.network_id;
  if (!networkId) throw new KilnError('RESOURCE_NOT_FOUND', `Unable to find the network of networks[${i}]`, { path: `properties.networks[${i}]` });
  const body = { network_id: networkId, name: `${nameOf(req)}-port-${i}`, fixed_ips: [compact({ subnet_id: subnetId, ip_address: n.fixed_ip })] };
  return io.gw.call('port.create', io.signal, (o) => io.gw.client.create('port', body, { ...o, key }));
}

/** Resolved ids of the user's own ports in a networks list. */
async function userPorts(io: Io, nets: readonly NetworkItem[]): Promise<Set<string>> {
  const ids = new Set<string>();
  for (const [i, n] of nets.entries()) if (n.port && !plugsNothing(n)) ids.add(await resolveId(io, 'port', n.port, `networks[${i}].port`));
  return ids;
}

/**
 * Heat updates `networks` in place: interfaces are plugged and unplugged (Nova os-interface) until
 * the server's ports match the list. Reconciling against the live ports (not only old vs new) makes
 * a replayed update safe and also repairs an interface unplugged by hand.
 */
async function reconcileNetworks(req: ActionRequest, server: Server, io: Io): Promise<void> {
  const want = networksOf(req);
  const had = Array.isArray(req.oldProperties?.networks) ? (req.oldProperties.networks as NetworkItem[]) : want;
  const keys = internalPortKeys(io.key, want);
  const wantKeys = new Set(keys.filter((k): k is string => k !== undefined));
  const wantUser = await userPorts(io, want);
  const allUser = new Set([...(await userPorts(io, had)), ...wantUser]);
  const internalTag = `kiln:key=${io.key}:port:`;
  const ports = await io.gw.call('port.list', io.signal, (o) => io.gw.client.list('port', { device_id: server.id }, o));
  const detach = (portId: string) => io.gw.call('server.detachInterface', io.signal, (o) => io.gw.client.detachInterface(server.id, portId, o));
  const attach = (target: { port_id: string } | { net_id: string }) => io.gw.call('server.attachInterface', io.signal, (o) => io.gw.client.attachInterface(server.id, target, o));

  // Unplug what is no longer listed: the user's ports, internal ports (then deleted), surplus cloud-made ports per network.
  const wantPerNet = new Map<string, number>();
  for (const [i, n] of want.entries()) if (!plugsNothing(n) && !n.port && !keys[i]) {
    const net = await networkOfItem(io, n, i);
    wantPerNet.set(net, (wantPerNet.get(net) ?? 0) + 1);
  }
  const plainPerNet = new Map<string, number>();
  for (const p of ports) {
    const tag = p.tags.find((t) => t.startsWith(internalTag));
    if (tag) {
      if (!wantKeys.has(tag.slice('kiln:key='.length))) {
        await detach(p.id);
        await io.gw.call('port.delete', io.signal, (o) => io.gw.client.delete('port', p.id, o));
      }
    } else if (allUser.has(p.id)) {
      if (!wantUser.has(p.id)) await detach(p.id);
    } else {
      const n = (plainPerNet.get(p.network_id) ?? 0) + 1;
      plainPerNet.set(p.network_id, n);
      if (n > (wantPerNet.get(p.network_id) ?? 0)) await detach(p.id);
    }
  }
  // Plug what is missing.
  const attached = new Set(ports.map((p) => p.id));
  for (const id of wantUser) if (!attached.has(id)) await attach({ port_id: id });
  for (const [i, n] of want.entries()) {
    const key = keys[i];
    if (!key) continue;
    const port = await internalPort(req, io, n, i, key);
    if (port.device_id !== server.id) await attach({ port_id: port.id });
  }
  for (const [net, count] of wantPerNet) for (let k = plainPerNet.get(net) ?? 0; k < count; k++) await attach({ net_id: net });
}

export function novaTypes(gw: CloudGateway): ResourceType[] {
  const server = cloudType(
    {
      name: 'OS::Nova::Server',
      kind: 'server',
      properties: {
        name: S.str(U),
        image: S.str(U),
        block_device_mapping: S.list(),
        block_device_mapping_v2: S.list(),
        flavor: S.str({ required: true, ...U }),
        flavor_update_policy: S.str({ default: 'RESIZE', ...U }),
        image_update_policy: S.str({ default: 'REBUILD', ...U }),
        key_name: S.str(),
        admin_user: S.str(),
        availability_zone: S.str(),
        security_groups: S.list({ default: [], ...U }),
        networks: S.list({ default: [], ...U }),
        scheduler_hints: S.map(),
        metadata: S.map(U),
        user_data_format: S.str({ default: 'HEAT_CFNTOOLS', ...U }),
        software_config_transport: S.str({ default: 'POLL_SERVER_CFN', ...U }),
        user_data_update_policy: S.str({ default: 'REPLACE', ...U }),
        user_data: S.str({ default: '', ...U }),
        reservation_id: S.str(),
        config_drive: S.bool(),
        diskConfig: S.str(),
        personality: S.map({ default: {} }),
        admin_pass: S.str(U),
        deployment_swift_data: S.map({ default: {}, ...U }),
        tags: S.list(U),
      },
      attributes: ['accessIPv4', 'accessIPv6', 'addresses', 'console_urls', 'instance_name', 'name', 'networks', 'os_collect_config', 'first_address', 'tags'],
      // The cloud has no resize or rebuild, and Kiln does not rewrite port security groups: those changes replace.
      needsReplace(oldP, newP) {
        const changed = (k: string) => JSON.stringify(oldP[k] ?? null) !== JSON.stringify(newP[k] ?? null);
        if (changed('flavor') || changed('image') || changed('security_groups')) return true;
        return changed('user_data') && (newP.user_data_update_policy ?? 'REPLACE') === 'REPLACE';
      },
      async body(req, io) {
        const p = req.properties;
        const sgs = Array.isArray(p.security_groups) && p.security_groups.length > 0 ? (p.security_groups as unknown[]).map((g) => ({ name: String(g) })) : undefined;
        return compact({
          name: nameOf(req),
          flavorRef: p.flavor,
          imageRef: p.image,
          key_name: p.key_name,
          availability_zone: p.availability_zone,
          metadata: stringMap(p.metadata),
          // Nova takes user data base64-encoded; the cloud stores it as given.
          user_data: typeof p.user_data === 'string' && p.user_data !== '' ? Buffer.from(p.user_data, 'utf8').toString('base64') : undefined,
          security_groups: sgs,
          networks: await networksBody(req, io),
          block_device_mapping_v2: p.block_device_mapping_v2,
          config_drive: p.config_drive,
        });
      },
      settle: (o) => (o.status === 'ACTIVE' || o.status === 'SHUTOFF' ? 'done' : o.status === 'ERROR' ? { failed: `went to ERROR: ${o.fault?.message ?? 'unknown fault'}` } : 'pending'),
      async update(req, obj, io) {
        const name = nameOf(req);
        if (obj.name !== name) await io.gw.call('server.update', io.signal, (o) => io.gw.client.update('server', obj.id, { name }, o));
        const want = stringMap(req.properties.metadata);
        if (JSON.stringify(userMetadata(obj.metadata)) !== JSON.stringify(want)) {
          await io.gw.call('server.setMetadata', io.signal, (o) => io.gw.client.setMetadata('server', obj.id, want, o));
        }
        await reconcileNetworks(req, obj, io);
      },
      // The server's ports: Heat adds each address's port id to `addresses`, and an unreachable port breaks the server.
      related: (o, io) => io.gw.call('port.list', io.signal, (c) => io.gw.client.list('port', { device_id: o.id }, c)),
      attrs: (o, _req, related) => {
        const ports = (related as Port[] | undefined) ?? [];
        const portByMac = new Map(ports.map((p) => [p.mac_address, p.id]));
        const addresses: Record<string, unknown[]> = {};
        const networks: Record<string, string[]> = {};
        let first = '';
        for (const [net, list] of Object.entries(o.addresses ?? {})) {
          addresses[net] = list.map((a) => ({ ...a, port: portByMac.get(a['OS-EXT-IPS-MAC:mac_addr']) ?? null }));
          networks[net] = list.map((a) => a.addr);
          if (!first) first = list.find((a) => a.version === 4)?.addr ?? '';
        }
        return {
          accessIPv4: (o.accessIPv4 as string | undefined) || first,
          accessIPv6: (o.accessIPv6 as string | undefined) ?? '',
          addresses,
          console_urls: {},
          instance_name: (o['OS-EXT-SRV-ATTR:instance_name'] as string | undefined) ?? o.name,
          name: o.name,
          networks,
          os_collect_config: {},
          first_address: first,
          tags: o.tags.filter((t) => !t.startsWith('kiln:')),
          status: o.status,
          show: o,
        };
      },
      health(o, req, related) {
        const bad = ((related as Port[] | undefined) ?? []).find((p) => p['binding:vif_type'] === 'binding_failed');
        if (bad) return { state: 'error', reason: `Port ${bad.id} of server ${o.id} is unreachable`, repair: 'replace' };
        return driftHealth(differing({ name: [nameOf(req), o.name], metadata: [stringMap(req.properties.metadata), userMetadata(o.metadata)] }));
      },
      async cleanup(req, io) {
        // Internal ports outlive the server in Neutron; they are Kiln's to delete (also when the server never booted).
        for (const key of internalPortKeys(io.key, networksOf(req))) {
          if (!key) continue;
          const port = await io.gw.call('port.findByKey', io.signal, (o) => io.gw.client.findByKey('port', key, o));
          if (port) await io.gw.call('port.delete', io.signal, (o) => io.gw.client.delete('port', port.id, o));
        }
      },
    },
    gw,
  );
  return [server];
}
