import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NatsCluster, freePort, waitFor, type NatsServer } from '@kiln/natsd';
import { KilnClient } from '@kiln/sdk';
import { SimCloudClient } from '@kiln/sim-cloud';
import { KilnProcess } from './procs.js';

export interface WorldOptions {
  /** Seeds the sim cloud's draws (latencies, ids). */
  seed: number;
  engines?: number;
  /** Partitions of every engine (the same everywhere). */
  partitions?: number;
  /** `--latency` of the sim cloud: short, so that a scenario is mostly faults, not waiting. */
  simLatency?: string;
  /**
   * The nats-server node (index) each engine connects to first; it fails over to the others
   * (learnt from the cluster) when that node dies. Default: engine i on node i mod 3.
   */
  engineNodes?: number[];
}

/** The sim cloud tenant the engines use (`kiln engine --cloud-tenant` default). */
export const CLOUD_TENANT = 'demo';

/**
 * The chaos test bed, nothing in-process: a 3-node JetStream cluster on loopback (R3 buckets and
 * streams), `kiln engine` processes (each serving the API too), `kiln sim-cloud` as a process,
 * and an SDK client. Faults act on the real processes.
 */
export class ChaosWorld {
  readonly engines: KilnProcess[] = [];
  /** Engine restarts so far (each incarnation gets a new node id, as a rescheduled pod would). */
  private incarnations = 0;

  private constructor(
    readonly cluster: NatsCluster,
    readonly sim: KilnProcess,
    readonly simUrl: string,
    readonly cloud: SimCloudClient,
    readonly client: KilnClient,
    private readonly dir: string,
    private readonly o: Required<WorldOptions>,
  ) {}

  static async start(opts: WorldOptions): Promise<ChaosWorld> {
    const o: Required<WorldOptions> = { engines: 3, partitions: 16, simLatency: 'server=150..600,default=20..80,delete=20..80', engineNodes: [0, 1, 2], ...opts };
    const dir = mkdtempSync(join(tmpdir(), 'kiln-chaos-'));
    const cluster = await NatsCluster.start(3, { baseDir: join(dir, 'nats') });
    // A fixed port: engines keep the URL across sim restarts.
    const simPort = await freePort();
    const sim = new KilnProcess(
      'sim-cloud',
      ['sim-cloud', '--port', String(simPort), '--state-dir', join(dir, 'sim'), '--seed', String(o.seed), '--latency', o.simLatency],
      /"url"/,
    );
    const simUrl = `http://127.0.0.1:${simPort}`;
    const cloud = new SimCloudClient(simUrl, { tenant: CLOUD_TENANT });
    const w = await (async () => {
      await sim.start();
      const client = await KilnClient.connect({ servers: cluster.servers, timeoutMs: 5_000, retries: 4, name: 'kiln-chaos' });
      return new ChaosWorld(cluster, sim, simUrl, cloud, client, dir, o);
    })().catch(async (e: unknown) => {
      await sim.stop();
      cloud.close();
      await cluster.stop();
      rmSync(dir, { recursive: true, force: true });
      throw e;
    });
    try {
      // The first engine creates the buckets and streams; the others find them.
      for (let i = 0; i < o.engines; i++) w.engines.push(w.engineProcess(i));
      await w.engines[0]!.start();
      await Promise.all(w.engines.slice(1).map((e) => e.start()));
      await waitFor('the API answering', () => w.client.call('engine.status', {}, { timeoutMs: 2_000 }), 30_000, 200);
    } catch (e) {
      await w.stop();
      throw e;
    }
    return w;
  }

  private engineProcess(slot: number): KilnProcess {
    const nodeId = `e${slot}-${this.incarnations++}`;
    return new KilnProcess(
      `engine ${nodeId}`,
      ['engine', '--nats', this.cluster.servers[this.o.engineNodes[slot % this.o.engineNodes.length]! % this.cluster.servers.length]!, '--cloud', this.simUrl, '--partitions', String(this.o.partitions), '--replicas', '3', '--node-id', nodeId],
      /kiln engine: connected/,
    );
  }

  /** Starts a fresh engine process in a slot whose process died. */
  async restartEngine(slot: number): Promise<void> {
    await this.engines[slot]!.signal('SIGKILL');
    this.engines[slot] = this.engineProcess(slot);
    await this.engines[slot]!.start();
  }

  /** Nodes some engine connects to first. */
  get engineHomes(): NatsServer[] {
    return this.engines.map((_, i) => this.cluster.nodes[this.o.engineNodes[i % this.o.engineNodes.length]! % this.cluster.nodes.length]!);
  }

  /** The node every running node names as the JetStream meta leader (from their logs), if known. */
  metaLeader(): NatsServer | undefined {
    const votes = new Map<string, number>();
    for (const n of this.cluster.nodes) {
      if (!n.running) continue;
      let leader: string | undefined;
      for (const line of n.log.split('\n')) {
        if (line.includes('Self is new JetStream cluster metadata leader')) leader = n.name;
        const m = /JetStream cluster new metadata leader: ([^/\s]+)/.exec(line);
        if (m) leader = m[1];
      }
      if (leader) votes.set(leader, (votes.get(leader) ?? 0) + 1);
    }
    const best = [...votes.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
    return this.cluster.nodes.find((n) => n.name === best && n.running);
  }

  /** Restarts a nats-server node on its store once it has died (after a SIGKILL). */
  async restartNats(node: NatsServer): Promise<void> {
    await waitFor(`${node.name} exited`, () => !node.running, 10_000, 20);
    await node.restart();
  }

  async stop(): Promise<void> {
    await this.client.close().catch(() => undefined);
    this.cloud.close();
    await Promise.all(this.engines.map((e) => e.stop()));
    await this.sim.stop();
    await this.cluster.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
