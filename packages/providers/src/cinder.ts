/** OS::Cinder::Volume and OS::Cinder::VolumeAttachment. */
import { KilnError } from '@kiln/core';
import type { ActionRequest, ResourceType } from '@kiln/engine';
import type { Volume } from '@kiln/sim-cloud';
import { CloudResourceError, DependencyGoneError, ResourceGoneError, classifyCloudError } from './errors.js';
import type { CloudGateway, Settle } from './gateway.js';
import { OK, S, U, cloudType, compact, differing, driftHealth, resolveId, stringMap, userMetadata, type CloudTaskType, type Io, type ObservedResource } from './define.js';

const volumeSettle = (o: Volume): Settle =>
  o.status === 'available' || o.status === 'in-use' ? 'done' : o.status === 'error' ? { failed: `went to error` } : 'pending';

async function waitVolume(io: Io, id: string, done: (v: Volume) => boolean, what: string): Promise<Volume> {
  const v = await io.gw.waitFor('volume', id, io.signal, (o) => (o === undefined ? { failed: 'it disappeared' } : o.status === 'error' ? { failed: 'went to error' } : done(o) ? 'done' : 'pending'), {
    onFail: (reason) => new CloudResourceError(`Volume ${id} ${what}: ${reason}`, 'volume', id),
  });
  return v!;
}

export function cinderTypes(gw: CloudGateway): ResourceType[] {
  const volume = cloudType(
    {
      name: 'OS::Cinder::Volume',
      kind: 'volume',
      properties: {
        availability_zone: S.str(),
        size: S.int(U),
        snapshot_id: S.str(),
        backup_id: S.str(U),
        name: S.str(U),
        description: S.str(U),
        volume_type: S.str(U),
        metadata: S.map(U),
        imageRef: S.str(),
        image: S.str(),
        source_volid: S.str(),
        consistencygroup_id: S.str(),
        scheduler_hints: S.map(),
        read_only: S.bool(U),
        multiattach: S.bool(U),
      },
      attributes: ['availability_zone', 'size', 'snapshot_id', 'display_name', 'display_description', 'volume_type', 'metadata', 'source_volid', 'status', 'created_at', 'bootable', 'metadata_values', 'encrypted', 'attachments', 'attachments_list', 'multiattach'],
      // No retype in the cloud: a new volume type means a new volume.
      needsReplace: (oldP, newP) => (oldP.volume_type ?? null) !== (newP.volume_type ?? null),
      async body(req) {
        const p = req.properties;
        if (p.size === undefined || p.size === null) throw new KilnError('PROPERTY_INVALID', 'Property size not assigned (volumes from snapshots or backups are not supported)', { path: 'properties.size' });
        if (Number(p.size) < 1) throw new KilnError('PROPERTY_INVALID', `The value (${String(p.size)}) must be at least 1`, { path: 'properties.size' });
        return compact({
          size: p.size,
          name: p.name ?? req.physicalName,
          description: p.description,
          volume_type: p.volume_type,
          metadata: stringMap(p.metadata),
          imageRef: p.image ?? p.imageRef,
          availability_zone: p.availability_zone,
          source_volid: p.source_volid,
        });
      },
      settle: volumeSettle,
      async update(req, obj, io) {
        const p = req.properties;
        const patch = compact({ name: p.name ?? req.physicalName, description: p.description, metadata: stringMap(p.metadata) });
        await io.gw.call('volume.update', io.signal, (o) => io.gw.client.update('volume', obj.id, patch, o));
        const size = Number(p.size);
        if (size < obj.size) throw new KilnError('PROPERTY_INVALID', `Shrinking volume is not supported (size ${obj.size} -> ${size})`, { path: 'properties.size' });
        if (size > obj.size) await extend(io, obj, size);
      },
      attrs: (o) => ({
        availability_zone: o.availability_zone,
        size: o.size,
        snapshot_id: o.snapshot_id ?? null,
        display_name: o.name,
        display_description: o.description ?? null,
        volume_type: o.volume_type,
        metadata: userMetadata(o.metadata),
        source_volid: o.source_volid ?? null,
        status: o.status,
        created_at: o.created_at,
        bootable: o.bootable,
        metadata_values: userMetadata(o.metadata),
        encrypted: false,
        // Heat gives `attachments` as a JSON string and `attachments_list` as the list.
        attachments: JSON.stringify(o.attachments),
        attachments_list: o.attachments,
        multiattach: o.multiattach ?? false,
        show: o,
      }),
      health: (o, req) => driftHealth(differing({ size: [req.properties.size, o.size], metadata: [stringMap(req.properties.metadata), userMetadata(o.metadata)] })),
    },
    gw,
  );
  return [volume, volumeAttachment(gw)];
}

/** Grows a volume; an attached one is detached, extended and attached again (as Heat does). */
async function extend(io: Io, obj: Volume, size: number): Promise<void> {
  const attached = obj.attachments.map((a) => ({ server: a.server_id, device: a.device }));
  for (const a of attached) await io.gw.call('server.detachVolume', io.signal, (o) => io.gw.client.detachVolume(a.server, obj.id, o));
  if (attached.length > 0) await waitVolume(io, obj.id, (v) => v.status === 'available', 'did not detach for extending');
  await io.gw.call('volume.extend', io.signal, (o) => io.gw.client.extendVolume(obj.id, size, o));
  await waitVolume(io, obj.id, (v) => v.status === 'available' && v.size >= size, 'did not extend');
  for (const a of attached) await io.gw.call('server.attachVolume', io.signal, (o) => io.gw.client.attachVolume(a.server, obj.id, { ...o, device: a.device }));
  if (attached.length > 0) await waitVolume(io, obj.id, (v) => v.status === 'in-use', 'did not re-attach after extending');
}

/**
 * Waits until the volume is in use by the server; `start` (the attach call) runs once the
 * volume's change events are watched. `available` without the attachment after the attach
 * started means the attach was lost: when the server is gone (it vanished) that is a wait for its
 * actor to recreate it; otherwise (also a stale change event) a fresh read decides.
 */
async function waitAttached(io: Io, volId: string, server: string, name: string, start: () => Promise<boolean>): Promise<Volume> {
  const lost = new Error('lost');
  for (let first = true; ; first = false) {
    try {
      const v = await io.gw.waitFor('volume', volId, io.signal, (x) => (x === undefined ? { failed: 'it disappeared' } : x.status === 'error' ? { failed: 'went to error' } : x.status === 'in-use' && attachedTo(x, server) ? 'done' : x.status === 'available' ? { failed: 'lost' } : 'pending'), {
        ...(first ? { start } : {}),
        onFail: (reason) => (reason === 'lost' ? lost : new CloudResourceError(`Volume ${volId} did not attach to server ${server}: ${reason}`, 'volume', volId)),
      });
      return v!;
    } catch (e) {
      if (e !== lost) throw e;
      if (!(await io.gw.get('server', server, io.signal))) throw new DependencyGoneError(`Server ${server} of ${name} is gone; waiting for it to be recreated`);
      const v = await io.gw.get('volume', volId, io.signal);
      if (v?.status === 'available' && !attachedTo(v, server)) throw new CloudResourceError(`Volume ${volId} did not attach to server ${server}`, 'volume', volId);
    }
  }
}

const attachedTo = (v: Volume | undefined, server: string) => v?.attachments.find((a) => a.server_id === server);

/**
 * OS::Cinder::VolumeAttachment. Physical id `<server>:<volume>` (self-contained, so delete and
 * observe need nothing else). Every property is update_allowed: an update detaches the old
 * pair and attaches the new one.
 */
function volumeAttachment(gw: CloudGateway): CloudTaskType {
  const parse = (id: string) => {
    const [server, vol] = id.split(':', 2) as [string, string | undefined];
    return { server, volume: vol ?? '' };
  };
  const attach = async (req: ActionRequest, io: Io) => {
    const p = req.properties;
    const server = await resolveId(io, 'server', p.instance_uuid, 'instance_uuid');
    const volId = await resolveId(io, 'volume', p.volume_id, 'volume_id');
    // Attach first, look after: one call in the usual case. A replayed attach is refused (the
    // volume is no longer `available`) and then finds the attachment it made before.
    const start = async (): Promise<boolean> => {
      try {
        await io.gw.call('server.attachVolume', io.signal, (o) => io.gw.client.attachVolume(server, volId, { ...o, ...(typeof p.mountpoint === 'string' ? { device: p.mountpoint } : {}) }));
        return true;
      } catch (e) {
        if (!(e instanceof KilnError) || (e.code !== 'RESOURCE_NOT_FOUND' && e.code !== 'REQUEST_INVALID')) throw e;
        const v = await io.gw.get('volume', volId, io.signal);
        if (!v) throw new KilnError('RESOURCE_NOT_FOUND', `The Volume (${volId}) could not be found.`, { path: 'properties.volume_id' });
        // The server vanished since it was READY: its actor recreates it and sends the new id.
        if (e.code === 'RESOURCE_NOT_FOUND') throw new DependencyGoneError(`Server ${server} of ${req.name} is gone; waiting for it to be recreated`);
        if (!attachedTo(v, server)) throw e;
        return false;
      }
    };
    const done = await waitAttached(io, volId, server, req.name, start);
    const a = attachedTo(done, server)!;
    return { physicalId: `${server}:${volId}`, attrs: { server_id: server, volume_id: volId, device: a.device, attachment_id: a.attachment_id, show: a } };
  };

  const detach = async (id: string, io: Io) => {
    const { server, volume } = parse(id);
    await io.gw.call('server.detachVolume', io.signal, (o) => io.gw.client.detachVolume(server, volume, o));
    await io.gw.waitFor('volume', volume, io.signal, (v) => (v === undefined || (!attachedTo(v, server) && v.status !== 'detaching') ? 'done' : 'pending'), {
      onFail: (reason) => new KilnError('TIMEOUT', `Volume ${volume} did not detach from ${server}: ${reason}`),
    });
  };

  return {
    kind: 'task',
    name: 'OS::Cinder::VolumeAttachment',
    properties: { instance_uuid: S.str({ required: true, ...U }), volume_id: S.str({ required: true, ...U }), mountpoint: S.str(U) },
    attributes: ['show'],
    classify: classifyCloudError,
    create: (req, ctx) => attach(req, { gw, signal: ctx.signal, key: req.idempotencyKey }),
    async update(req, ctx) {
      const io: Io = { gw, signal: ctx.signal, key: req.idempotencyKey };
      if (!req.physicalId) throw new ResourceGoneError(`VolumeAttachment ${req.name} has no physical id`);
      const { server, volume } = parse(req.physicalId);
      const newServer = await resolveId(io, 'server', req.properties.instance_uuid, 'instance_uuid');
      const newVolume = await resolveId(io, 'volume', req.properties.volume_id, 'volume_id');
      const same = server === newServer && volume === newVolume && (req.oldProperties?.mountpoint ?? null) === (req.properties.mountpoint ?? null);
      if (!same) await detach(req.physicalId, io);
      return attach(req, io);
    },
    async delete(req, ctx) {
      if (req.physicalId) await detach(req.physicalId, { gw, signal: ctx.signal, key: req.idempotencyKey });
    },
    async observe(req, ctx): Promise<ObservedResource | null> {
      if (!req.physicalId) return null;
      const { server, volume } = parse(req.physicalId);
      const v = await gw.get('volume', volume, ctx.signal);
      const a = attachedTo(v, server);
      // Detached (or the volume or server is gone): the attachment is gone; recreating it reattaches.
      if (!v || !a) return null;
      const attrs = { server_id: server, volume_id: volume, device: a.device, attachment_id: a.attachment_id, show: a };
      if (v.status === 'error') return { physicalId: req.physicalId, attrs, health: { state: 'error', reason: `Volume ${volume} is offline (status error)`, repair: 'replace' } };
      return { physicalId: req.physicalId, attrs, health: OK };
    },
  };
}
