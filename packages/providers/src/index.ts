/**
 * @kiln/providers: the cloud resource types (Nova, Neutron, Cinder, Octavia) as engine task
 * types, built on a CloudClient (the sim cloud's, or a real cloud's implementing the same
 * interface), plus cloud-backed custom constraints.
 */
import type { ObjectChange, ResourceType } from '@kiln/engine';
import type { CloudClient } from '@kiln/sim-cloud';
import { cinderTypes } from './cinder.js';
import { CloudGateway, type GatewayOptions } from './gateway.js';
import { neutronTypes } from './neutron.js';
import { novaTypes } from './nova.js';
import { octaviaTypes } from './octavia.js';
import { ChangeTee, notableChange } from './watcher.js';

export interface CloudProvider {
  /** Register these in the engine (`Engine.start({ types })`). */
  readonly types: ResourceType[];
  /** Rate limiter, retries, change feed and call counts for this endpoint/tenant. */
  readonly gateway: CloudGateway;
  /** Stops following the change feed (when `changes` was given). */
  close(): Promise<void>;
}

/**
 * One provider per cloud endpoint/tenant: its types share one rate limiter. With a change feed
 * (`opts.changes`) its types also carry the engine's `changes` hook (one function shared by all
 * of them, over the gateway's one connection to the feed): a resource whose object is deleted or
 * goes to ERROR observes at once instead of at its next poll.
 */
export function createCloudProvider(client: CloudClient, opts: GatewayOptions = {}): CloudProvider {
  const tee = opts.changes ? new ChangeTee(opts.changes) : undefined;
  const gateway = new CloudGateway(client, tee ? { ...opts, changes: tee } : opts);
  const types = [...novaTypes(gateway), ...neutronTypes(gateway), ...cinderTypes(gateway), ...octaviaTypes(gateway)];
  const changes = tee
    ? (onChange: (c: ObjectChange) => void) =>
        tee.listen((e) => {
          const c = notableChange(e);
          // A failed boot inside a create is that task's to replace: telling the actor only makes it observe again after.
          if (c && !gateway.creating(c.key)) onChange(c);
        })
    : undefined;
  return {
    gateway,
    types: changes ? types.map((t) => (t.kind === 'task' ? { ...t, changes } : t)) : types,
    close: () => gateway.close(),
  };
}

/** The cloud resource types for one endpoint/tenant (polling waits; use createCloudProvider for the change feed). */
export function cloudTypes(client: CloudClient, opts: GatewayOptions = {}): ResourceType[] {
  return createCloudProvider(client, opts).types;
}

export { CloudGateway, TokenBucket, sleep, type GatewayOptions, type Settle } from './gateway.js';
export { classifyCloudError, CloudResourceError, ResourceGoneError, TaskAbortedError, RETRYABLE_API_CODES } from './errors.js';
export { CloudConstraints, registerCloudConstraints } from './constraints.js';
export type { Health, ObservedResource, CloudTaskType, TaskContext } from './define.js';
export { registerTypeSchemas } from './schemas.js';
export { ChangeTee, ChangeWatcher, notableChange, type ChangeFeed } from './watcher.js';
