import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { encode } from '@kiln/core';
import { NatsServer } from '@kiln/natsd';
import { Engine } from '@kiln/engine';
import { ApiService, EngineBackend, eventSubject } from '@kiln/api';
import { SimCloud, SimCloudClient } from '@kiln/sim-cloud';
import { cloudTypes } from '@kiln/providers';
import { KilnClient, type ClientOptions } from '../src/index.js';

/** Repo root from packages/sdk/dist/test/fixture.js. */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

/** nats-server reads the users' passwords from its environment (deploy/tenants/tenants.conf). */
const SECRETS = {
  KILN_ENGINE_PASSWORD: 'sdk-engine',
  KILN_GATEWAY_PASSWORD: 'sdk-gateway',
  KILN_ADMIN_PASSWORD: 'sdk-admin',
  KILN_TENANT_A_PASSWORD: 'sdk-a',
  KILN_TENANT_B_PASSWORD: 'sdk-b',
};
export const TENANT_PASSWORD: Record<string, string> = { 'tenant-a': SECRETS.KILN_TENANT_A_PASSWORD, 'tenant-b': SECRETS.KILN_TENANT_B_PASSWORD };

/**
 * A real nats-server with the shipped tenants config, a real one-node Engine and the API service
 * over it: the installation an SDK user talks to.
 */
export class Installation {
  private constructor(
    readonly server: NatsServer,
    readonly engine: Engine,
    /** The engine's user (everything): stands in for the engine when publishing events. */
    readonly kiln: NatsConnection,
    public api: ApiService | undefined,
    /** The simulated cloud behind the engine's cloud resource types, when started with one. */
    readonly cloud: { sim: SimCloud; client: SimCloudClient } | undefined,
  ) {}

  static async start(o: { cloud?: boolean } = {}): Promise<Installation> {
    Object.assign(process.env, SECRETS);
    const server = await NatsServer.start({
      // Engine.start takes no credentials: unauthenticated connections are the engine's user.
      extraConfig: `${readFileSync(join(repoRoot, 'deploy', 'tenants', 'tenants.conf'), 'utf8')}\nno_auth_user: kiln\n`,
    });
    let cloud: { sim: SimCloud; client: SimCloudClient } | undefined;
    if (o.cloud) {
      // Short, still asynchronous latencies; quick polls to follow them.
      const sim = await SimCloud.start({ seed: 11, latency: { default: { dist: 'uniform', min: 5, max: 20 }, server: { dist: 'uniform', min: 20, max: 60 }, delete: { dist: 'fixed', ms: 10 } } });
      cloud = { sim, client: new SimCloudClient(sim.url) };
    }
    const types = cloud ? cloudTypes(cloud.client, { pollInitialMs: 10, pollMaxMs: 50, backoffBaseMs: 20, backoffMaxMs: 200 }) : [];
    const engine = await Engine.start({ servers: server.url, partitions: 8, nodeId: 'sdk-test', types });
    const kiln = await connect({ servers: server.url, user: 'kiln', pass: SECRETS.KILN_ENGINE_PASSWORD, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    const inst = new Installation(server, engine, kiln, undefined, cloud);
    await inst.startApi();
    return inst;
  }

  async startApi(): Promise<void> {
    this.api = await ApiService.start({ nc: this.kiln, backend: await EngineBackend.open({ engine: this.engine }) });
  }

  async stopApi(): Promise<void> {
    await this.api?.stop();
    this.api = undefined;
  }

  client(tenant: 'tenant-a' | 'tenant-b', o: ClientOptions = {}): Promise<KilnClient> {
    return KilnClient.connect({ servers: this.server.url, tenant, user: tenant, pass: TENANT_PASSWORD[tenant]!, ...o });
  }

  /** An operator's connection: may call the API of every tenant, receives on `_INBOX.>`. */
  admin(): Promise<NatsConnection> {
    return connect({ servers: this.server.url, user: 'admin', pass: SECRETS.KILN_ADMIN_PASSWORD });
  }

  /** Publishes an event the way the engine contract says (docs/api.md); returns its stream sequence. */
  async emit(tenant: string, stackId: string, resource: string | undefined, status: string, type = 'OS::Heat::TestResource'): Promise<number> {
    const ack = await jetstream(this.kiln).publish(eventSubject(tenant, stackId, resource), encode({ status, resource_type: type, generation: 1, timestamp: Date.now() }));
    return ack.seq;
  }

  async stop(): Promise<void> {
    await this.stopApi();
    await this.kiln.close();
    await this.engine.stop();
    this.cloud?.client.close();
    await this.cloud?.sim.stop();
    await this.server.stop();
  }
}

/** Two resources with an output: converges without any cloud. */
export const chain = (v: string) => ({
  heat_template_version: '2016-10-14',
  parameters: { suffix: { type: 'string', default: v } },
  resources: {
    a: { type: 'OS::Heat::RandomString', properties: { length: 8 } },
    b: { type: 'OS::Heat::TestResource', properties: { value: { str_replace: { template: 'X-V', params: { X: { get_attr: ['a', 'value'] }, V: { get_param: 'suffix' } } } } } },
  },
  outputs: { b: { value: { get_attr: ['b', 'output'] } } },
});

const testMember = { type: 'OS::Heat::TestResource', properties: { value: 'w%index%' } };

/** Servers of the simulated cloud. */
export const serverMember = { type: 'OS::Nova::Server', properties: { flavor: 'm1.small', image: 'cirros-0.6.2-x86_64-disk', name: 'worker-%index%' } };

/** A scaling group sized by a parameter. */
export const group = (count: number, member: Record<string, unknown> = testMember) => ({
  heat_template_version: '2016-10-14',
  parameters: { size: { type: 'number', default: count } },
  resources: {
    workers: { type: 'OS::Heat::ResourceGroup', properties: { count: { get_param: 'size' }, resource_def: member } },
  },
});
