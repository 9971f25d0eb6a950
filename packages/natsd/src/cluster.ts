import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { KilnError } from '@kiln/core';
import { NatsServer } from './server.js';
import { freePort } from './ports.js';

/** A JetStream cluster of real nats-server processes on loopback (R3 test bed). */
export class NatsCluster {
  private constructor(
    readonly nodes: NatsServer[],
    private readonly baseDir: string,
  ) {}

  static async start(size = 3, opts: { baseDir?: string; readyTimeoutMs?: number } = {}): Promise<NatsCluster> {
    const ownsBase = !opts.baseDir;
    const baseDir = opts.baseDir ?? mkdtempSync(join(tmpdir(), 'kiln-cluster-'));
    const clientPorts: number[] = [];
    const routePorts: number[] = [];
    for (let i = 0; i < size; i++) {
      clientPorts.push(await freePort());
      routePorts.push(await freePort());
    }
    const routes = routePorts.map((p) => `nats-route://127.0.0.1:${p}`);
    const nodes = await Promise.all(
      clientPorts.map((port, i) =>
        NatsServer.start({
          port,
          name: `kiln-n${i + 1}`,
          storeDir: join(baseDir, `n${i + 1}`),
          cluster: { name: 'kiln', port: routePorts[i]!, routes },
          readyTimeoutMs: opts.readyTimeoutMs ?? 30_000,
        }),
      ),
    );
    const c = new NatsCluster(nodes, ownsBase ? baseDir : '');
    await c.waitJetStream(opts.readyTimeoutMs ?? 30_000);
    return c;
  }

  /** Client URLs of every node, for a connection that fails over. */
  get servers(): string[] {
    return this.nodes.map((n) => n.url);
  }

  /** Waits until the JetStream meta group has a leader (account info answers). */
  async waitJetStream(timeoutMs: number): Promise<void> {
    const nc = await connect({ servers: this.servers.filter((_, i) => this.nodes[i]!.running) });
    try {
      const deadline = Date.now() + timeoutMs;
      let last: unknown;
      while (Date.now() < deadline) {
        try {
          const jsm = await jetstreamManager(nc, { timeout: 2_000 });
          await jsm.getAccountInfo();
          return;
        } catch (e) {
          last = e;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      throw new KilnError('NATS_SERVER_FAILED', `JetStream cluster has no meta leader after ${timeoutMs} ms: ${String(last)}`);
    } finally {
      await nc.close();
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.halt()));
    if (this.baseDir) rmSync(this.baseDir, { recursive: true, force: true });
  }
}
