import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createLogger, type Logger } from '@kiln/core';
import { Engine, type HealConfig } from '@kiln/engine';
import { ApiService, EngineBackend } from '@kiln/api';
import { SimCloudClient } from '@kiln/sim-cloud';
import { createCloudProvider, type CloudProvider } from '@kiln/providers';

export interface EngineNodeOptions {
  servers: string[];
  /** Credentials of the node's NATS connection (engine and API share it). */
  user?: string | undefined;
  pass?: string | undefined;
  /** Must match across every engine of an installation. */
  partitions: number;
  /** JetStream replicas of every bucket and stream (3 on a 3-node cluster). */
  replicas?: 1 | 3 | undefined;
  /** Observe intervals and repair rate (engine defaults otherwise). */
  heal?: Partial<HealConfig> | undefined;
  nodeId?: string | undefined;
  /** Run actors (false: an API-only node). */
  worker: boolean;
  /** Serve the request API from this process. */
  api: boolean;
  /** A sim cloud (or an OpenStack-shaped endpoint) behind the cloud resource types. */
  cloud?: { url: string; tenant: string } | undefined;
  logger?: Logger;
}

/** One engine node: the engine (built-in and cloud resource types) and, optionally, the API service. */
export interface EngineNode {
  readonly engine: Engine;
  stop(): Promise<void>;
}

export async function startEngineNode(o: EngineNodeOptions): Promise<EngineNode> {
  const log = o.logger ?? createLogger('kiln-engine');
  let cloud: { client: SimCloudClient; provider: CloudProvider } | undefined;
  if (o.cloud) {
    const client = new SimCloudClient(o.cloud.url, { tenant: o.cloud.tenant });
    // The change feed wakes waits on status changes instead of polling.
    cloud = { client, provider: createCloudProvider(client, { changes: client }) };
  }
  // One connection for the engine and the API: credentials apply to both.
  const nc: NatsConnection = await connect({
    servers: o.servers,
    ...(o.user !== undefined ? { user: o.user } : {}),
    ...(o.pass !== undefined ? { pass: o.pass } : {}),
    name: o.nodeId ? `kiln-engine-${o.nodeId}` : 'kiln-engine',
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
  });
  const engine = await Engine.start({
    connection: nc,
    partitions: o.partitions,
    ...(o.replicas ? { replicas: o.replicas } : {}),
    ...(o.heal ? { heal: o.heal } : {}),
    worker: o.worker,
    types: cloud?.provider.types ?? [],
    ...(o.nodeId ? { nodeId: o.nodeId } : {}),
    logger: log,
  });
  const api = o.api ? await ApiService.start({ nc, backend: await EngineBackend.open({ engine }), ...(o.replicas ? { replicas: o.replicas } : {}) }) : undefined;
  return {
    engine,
    async stop() {
      await api?.stop();
      await engine.stop();
      await nc.drain().catch(() => undefined);
      await cloud?.provider.close();
      cloud?.client.close();
    },
  };
}
