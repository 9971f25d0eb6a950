import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tcpConnect } from 'node:net';
import { KilnError } from '@kiln/core';
import { freePort } from './ports.js';

export interface NatsServerOptions {
  /** Directory for JetStream files and the config; a fresh temp dir (removed on stop) when absent. */
  storeDir?: string;
  /** Client port; a free loopback port when absent. */
  port?: number;
  /** Server name (required for clustering). */
  name?: string;
  /** Cluster settings: this node's route port and all route URLs. */
  cluster?: { name: string; port: number; routes: string[] };
  /** Extra nats-server config text (accounts, authorization, limits). */
  extraConfig?: string;
  /** Max payload in bytes (nats-server default 1 MiB). */
  maxPayload?: number;
  /** How long to wait for readiness. */
  readyTimeoutMs?: number;
}

const INSTALL_HINT = 'install it with `apt-get install -y nats-server` (Debian/Ubuntu) or point NATS_SERVER_BIN at the binary';

export function natsServerBin(): string {
  return process.env.NATS_SERVER_BIN || 'nats-server';
}

let checkedVersion: string | undefined;

/** The installed nats-server version (e.g. "2.9.10"); a typed error naming the install command if absent. */
export function natsServerVersion(): string {
  if (checkedVersion) return checkedVersion;
  const bin = natsServerBin();
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new KilnError('NATS_SERVER_MISSING', `nats-server not found (tried '${bin}'): ${INSTALL_HINT}`);
  }
  const m = /v?(\d+\.\d+\.\d+)/.exec(r.stdout + r.stderr);
  checkedVersion = m?.[1] ?? '0.0.0';
  return checkedVersion;
}

/** Children still running, killed when this process exits so no server outlives its test. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/**
 * A real nats-server with JetStream as a child process. The store dir survives restart() so a
 * restarted server comes back with its streams, as a real one would.
 */
export class NatsServer {
  readonly port: number;
  readonly storeDir: string;
  readonly name: string;
  private readonly ownsStore: boolean;
  private child: ChildProcess | undefined;
  private output = '';
  private readonly opts: NatsServerOptions;

  private constructor(opts: NatsServerOptions, port: number, storeDir: string, ownsStore: boolean) {
    this.opts = opts;
    this.port = port;
    this.storeDir = storeDir;
    this.ownsStore = ownsStore;
    this.name = opts.name ?? `kiln-${port}`;
  }

  static async start(opts: NatsServerOptions = {}): Promise<NatsServer> {
    natsServerVersion();
    const port = opts.port ?? (await freePort());
    const ownsStore = !opts.storeDir;
    const storeDir = opts.storeDir ?? mkdtempSync(join(tmpdir(), 'kiln-nats-'));
    mkdirSync(storeDir, { recursive: true });
    const s = new NatsServer(opts, port, storeDir, ownsStore);
    await s.launch();
    return s;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Everything the server printed, for diagnosing a failed test. */
  get log(): string {
    return this.output;
  }

  private config(): string {
    const o = this.opts;
    const lines = [
      `server_name: "${this.name}"`,
      `listen: "127.0.0.1:${this.port}"`,
      `jetstream { store_dir: "${join(this.storeDir, 'js')}" }`,
    ];
    if (o.maxPayload) lines.push(`max_payload: ${o.maxPayload}`);
    if (o.cluster) {
      lines.push(
        `cluster { name: "${o.cluster.name}", listen: "127.0.0.1:${o.cluster.port}", routes: [${o.cluster.routes.map((r) => `"${r}"`).join(', ')}] }`,
      );
    }
    if (o.extraConfig) lines.push(o.extraConfig);
    return lines.join('\n') + '\n';
  }

  private async launch(): Promise<void> {
    const conf = join(this.storeDir, 'nats.conf');
    writeFileSync(conf, this.config());
    this.output = '';
    const child = spawn(natsServerBin(), ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    live.add(child);
    const keep = (b: Buffer) => {
      // Keep the tail only: a long-running server must not grow this without bound.
      this.output = (this.output + b.toString()).slice(-64 * 1024);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.once('exit', () => live.delete(child));
    const spawnError = new Promise<never>((_, reject) =>
      child.once('error', (e) => reject(new KilnError('NATS_SERVER_MISSING', `cannot start nats-server: ${e.message}; ${INSTALL_HINT}`))),
    );
    await Promise.race([spawnError, this.waitReady(this.opts.readyTimeoutMs ?? 15_000)]);
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) {
        throw new KilnError('NATS_SERVER_FAILED', `nats-server exited during start-up:\n${this.output}`);
      }
      if (this.output.includes('Server is ready') && (await canConnect(this.port))) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new KilnError('NATS_SERVER_FAILED', `nats-server not ready within ${timeoutMs} ms:\n${this.output}`);
  }

  /** Sends a signal (SIGKILL, SIGSTOP, SIGCONT, …) for fault injection. */
  signal(sig: NodeJS.Signals): void {
    this.child?.kill(sig);
  }

  /** Stops the process (SIGTERM, then SIGKILL after a grace period) but keeps the store. */
  async halt(graceMs = 5_000): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGCONT');
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(t);
  }

  /** Starts it again on the same port and store (after halt() or a SIGKILL). */
  async restart(): Promise<void> {
    await this.halt();
    await this.launch();
  }

  /** Stops the server and removes a store dir it created. */
  async stop(): Promise<void> {
    await this.halt();
    if (this.ownsStore) rmSync(this.storeDir, { recursive: true, force: true });
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = tcpConnect({ port, host: '127.0.0.1' });
    sock.once('data', (d) => {
      sock.destroy();
      resolve(d.toString().startsWith('INFO'));
    });
    sock.once('error', () => resolve(false));
    sock.setTimeout(1_000, () => {
      sock.destroy();
      resolve(false);
    });
  });
}
