/** OS::Cinder::Volume and OS::Cinder::VolumeAttachment. */
import { KilnError } from '@kiln/core';
import type { ActionRequest, ResourceType } from '@kiln/engine';
import { KEY_METADATA, type Volume } from '@kiln/sim-cloud';
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
 * started means the attach was undone (a detach raced it, or a stale change event): when the
 * server is gone (it vanished) that is a wait for its actor to recreate it; otherwise a fresh read
 * decides, and a volume that is free again is attached again (a few times, then RESOURCE_ERROR).
 */
async function waitAttached(io: Io, volId: string, server: string, name: string, start: () => Promise<boolean>): Promise<Volume> {
  const lost = new Error('lost');
  for (let starts = 1, again = true; ; ) {
    try {
      const v = await io.gw.waitFor('volume', volId, io.signal, (x) => (x === undefined ? { failed: 'it disappeared' } : x.status === 'error' ? { failed: 'went to error' } : x.status === 'in-use' && attachedTo(x, server) ? 'done' : x.status === 'available' ? { failed: 'lost' } : 'pending'), {
        ...(again ? { start } : {}),
        onFail: (reason) => (reason === 'lost' ? lost : new CloudResourceError(`Volume ${volId} did not attach to server ${server}: ${reason}`, 'volume', volId)),
      });
      return v!;
    } catch (e) {
      if (e !== lost) throw e;
      if (!(await io.gw.get('server', server, io.signal))) throw new DependencyGoneError(`Server ${server} of ${name} is gone; waiting for it to be recreated`);
      const v = await io.gw.get('volume', volId, io.signal);
      again = v?.status === 'available' && !attachedTo(v, server);
      if (again && ++starts > MAX_ATTACH_STARTS) throw new CloudResourceError(`Volume ${volId} did not attach to server ${server}`, 'volume', volId);
    }
  }
}

/** How often one task (re)starts an attach whose volume keeps being freed or taken before it gives up. */
const MAX_ATTACH_STARTS = 3;

const attachedTo = (v: Volume | undefined, server: string) => v?.attachments.find((a) => a.server_id === server);

/**
 * Detaches the volume from the server and waits until it is off it. Replay-safe: a detach
 * already in flight is waited for, and a volume no longer attached to the server (detached,
 * attached elsewhere since) or a server or volume that is gone is done (the cloud answers 404).
 */
async function detachFrom(io: Io, server: string, volId: string): Promise<void> {
  await io.gw.call('server.detachVolume', io.signal, (o) => io.gw.client.detachVolume(server, volId, o));
  await io.gw.waitFor('volume', volId, io.signal, (v) => (v === undefined || (!attachedTo(v, server) && v.status !== 'detaching') ? 'done' : 'pending'), {
    onFail: (reason) => new KilnError('TIMEOUT', `Volume ${volId} did not detach from ${server}: ${reason}`),
  });
}

/** An idempotency key (`<resource actor>#<incarnation>`) split into the resource and the incarnation number. */
function incarnationOf(key: string | undefined): { resource: string; n: number } | undefined {
  const at = key?.lastIndexOf('#') ?? -1;
  const n = Number(key?.slice(at + 1));
  return key && at > 0 && Number.isInteger(n) ? { resource: key.slice(0, at), n } : undefined;
}

/**
 * Frees a volume an attach to `server` was refused for, so the attach can be made again:
 * - a detach in flight (an update or delete of this attachment that ran before a crash, an
 *   extend) is waited for;
 * - an attachment to an older incarnation of the same server resource (the server was replaced
 *   between this attach and its replay, so the earlier attach went to the old server) or to a
 *   server being deleted is undone, as Heat's update of the attachment would;
 * - an attachment to any other server is a real conflict: `refused` is thrown, with who holds it.
 */
async function release(io: Io, v: Volume, server: string, refused: KilnError): Promise<void> {
  if (v.status === 'available') return;
  if (v.status === 'detaching') {
    await waitVolume(io, v.id, (x) => x.status !== 'detaching', 'did not finish detaching');
    return;
  }
  const holders = v.attachments.map((a) => a.server_id).filter((s) => s !== server);
  if (holders.length === 0) throw refused;
  const ours = incarnationOf((await io.gw.get('server', server, io.signal))?.metadata[KEY_METADATA]);
  for (const holder of holders) {
    const other = await io.gw.get('server', holder, io.signal);
    const theirs = incarnationOf(other?.metadata[KEY_METADATA]);
    // Only from an older incarnation: a stale replay for an old server never takes the volume back.
    const older = !!ours && !!theirs && theirs.resource === ours.resource && theirs.n < ours.n;
    const leaving = !other || other['OS-EXT-STS:task_state'] === 'deleting';
    if (!leaving && !older) {
      throw new KilnError('REQUEST_INVALID', `${refused.message} (volume ${v.id} is in use by server ${holder}, not ${server})`, { path: 'properties.volume_id', cause: refused });
    }
    await detachFrom(io, holder, v.id);
  }
}

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
    // Attach first, look after: one call in the usual case. A refused attach looks at the
    // volume: attaching or in use by this server is an earlier attach of this pair (a replay
    // after a crash, or a call retried after it did attach): wait for it. Otherwise the volume
    // is freed first (see `release`) and the attach made again.
    const start = async (): Promise<boolean> => {
      for (let round = 1; ; round++) {
        try {
          await io.gw.call('server.attachVolume', io.signal, (o) => io.gw.client.attachVolume(server, volId, { ...o, ...(typeof p.mountpoint === 'string' ? { device: p.mountpoint } : {}) }));
          return true;
        } catch (e) {
          if (!(e instanceof KilnError) || (e.code !== 'RESOURCE_NOT_FOUND' && e.code !== 'REQUEST_INVALID')) throw e;
          const v = await io.gw.get('volume', volId, io.signal);
          if (!v) throw new KilnError('RESOURCE_NOT_FOUND', `The Volume (${volId}) could not be found.`, { path: 'properties.volume_id' });
          // The server vanished since it was READY: its actor recreates it and sends the new id.
          if (e.code === 'RESOURCE_NOT_FOUND') throw new DependencyGoneError(`Server ${server} of ${req.name} is gone; waiting for it to be recreated`);
          if (attachedTo(v, server) && v.status !== 'detaching') return false;
          if (round >= MAX_ATTACH_STARTS) throw e;
          await release(io, v, server, e);
        }
      }
    };
    const done = await waitAttached(io, volId, server, req.name, start);
    const a = attachedTo(done, server)!;
    return { physicalId: `${server}:${volId}`, attrs: { server_id: server, volume_id: volId, device: a.device, attachment_id: a.attachment_id, show: a } };
  };

  const detach = async (id: string, io: Io) => {
    const { server, volume } = parse(id);
    await detachFrom(io, server, volume);
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
      if (v.status !== 'in-use') return { physicalId: req.physicalId, attrs, health: { state: 'pending', reason: `volume status ${v.status}`, repair: 'none' } };
      return { physicalId: req.physicalId, attrs, health: OK };
    },
  };
}
