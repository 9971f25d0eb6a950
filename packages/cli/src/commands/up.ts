import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { KilnError, toKilnError } from '@kiln/core';
import { NatsServer, freePort, natsServerBin } from '@kiln/natsd';
import { Gateway } from '@kiln/api';
import { KilnClient } from '@kiln/sdk';
import { SimCloud, SimCloudClient, parseFaultsArg, type Faults, type LatencyConfig } from '@kiln/sim-cloud';
import { loadStackRequest } from '@kiln/template';
import { LOCAL_DIR, NATS_URL_FILE } from '../nats-options.js';
import { startEngineNode, type EngineNode } from '../node.js';
import { reportError } from '../output.js';
import { progressLine } from '../progress.js';
import type { Command } from './index.js';

const USAGE = `usage: kiln up [--demo] [--dir DIR] [--port N] [--gateway-port N] [--sim-port N] [--faults F]
  Local mode: a nats-server child process, an engine with the API, the web-socket gateway and
  the simulated cloud, all stopped by Ctrl-C. State lives in DIR (default ./${LOCAL_DIR}).
  --demo          also deploy packages/cli/examples/demo (web servers behind a load balancer, 20% of the
                  servers fail to boot) and show it converging
  --port N        NATS client port (default 4222, or a free one if taken)
  --gateway-port  gateway port (default 8080, or a free one); --sim-port: sim cloud (default 8774)
  --faults F      sim-cloud faults (key=value list, as kiln sim-cloud --faults)`;

const OPTIONS = {
  demo: { type: 'boolean' },
  dir: { type: 'string' },
  port: { type: 'string' },
  'gateway-port': { type: 'string' },
  'sim-port': { type: 'string' },
  faults: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Partitions of the local engine (one node: a few keep the per-partition overhead small). */
const LOCAL_PARTITIONS = 16;
/**
 * The demo's weather: a fifth of the servers never boot, a few API calls fail, and once READY
 * each server vanishes about every 6 minutes (about one a minute for the demo's 6): heal brings
 * them back.
 */
const DEMO_FAULTS: Partial<Faults> = { serverBootError: 0.2, apiErrorShare: 0.02, serverVanishRate: 10 };
/** Local mode looks at cloud resources every ~10 s, so drift is repaired while you watch. */
const LOCAL_OBSERVE_MS = 10_000;
/** Boots slow enough to watch (the sim's defaults are a few seconds at most). */
const DEMO_LATENCY: LatencyConfig = {
  server: { dist: 'uniform', min: 3_000, max: 12_000 },
  loadbalancer: { dist: 'uniform', min: 2_000, max: 5_000 },
};
const DEMO_STACK = 'demo';
const TOKEN_FILE = 'gateway-token';
export const UP_FILE = 'up.json';

/** The CLI package's examples/, from packages/cli/dist/src/commands/up.js. */
const EXAMPLES = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'examples');

function portOption(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new KilnError('REQUEST_INVALID', `--${name} must be a port number (0: any free one)`, { path: `--${name}` });
  return n;
}

function isFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const srv = createServer();
    srv.once('error', () => res(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => res(true)));
  });
}

/** The given port; else the conventional one when it is free; else any free one. */
async function choosePort(given: number | undefined, preferred: number): Promise<number> {
  if (given !== undefined) return given === 0 ? freePort() : given;
  return (await isFree(preferred)) ? preferred : freePort();
}

/**
 * A nats-server launcher that starts it in a session of its own (setsid), so that a Ctrl-C in
 * the terminal reaches only `kiln up`, which stops the engine before the server it needs.
 * Undefined where setsid does not exist (the server then gets the Ctrl-C too, and the engine's
 * stop gives up on it after its timeouts).
 */
function sessionLauncher(dir: string): string | undefined {
  if (spawnSync('setsid', ['--version'], { stdio: 'ignore' }).status !== 0) return undefined;
  const file = join(dir, 'nats-server.sh');
  writeFileSync(file, `#!/bin/sh\nexec setsid ${JSON.stringify(natsServerBin())} "$@"\n`, { mode: 0o755 });
  return file;
}

/** The pid of a live `kiln up` that wrote `up.json` (a stale file of a killed one does not count). */
function runningUp(upFile: string): number | undefined {
  if (!existsSync(upFile)) return undefined;
  try {
    const pid = (JSON.parse(readFileSync(upFile, 'utf8')) as { pid?: unknown }).pid;
    if (typeof pid !== 'number' || pid === process.pid) return undefined;
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/** The local gateway token: kept in DIR so a bookmarked page URL keeps working across restarts. */
function localToken(dir: string): string {
  const file = join(dir, TOKEN_FILE);
  if (existsSync(file)) {
    const t = readFileSync(file, 'utf8').trim();
    if (t) return t;
  }
  const t = randomBytes(16).toString('hex');
  writeFileSync(file, `${t}\n`, { mode: 0o600 });
  return t;
}

/** Everything `kiln up` runs, stopped in reverse order. */
class LocalInstallation {
  private readonly stops: Array<() => Promise<void>> = [];

  add(stop: () => Promise<void>): void {
    this.stops.push(stop);
  }

  async stop(): Promise<void> {
    for (const stop of this.stops.reverse()) {
      await stop().catch((e: unknown) => process.stderr.write(`kiln up: stopping: ${(e as Error).message}\n`));
    }
    this.stops.length = 0;
  }
}

/** Creates the demo stack (or follows it when an earlier `kiln up --demo` left it running). */
async function deployDemo(client: KilnClient): Promise<string> {
  const req = loadStackRequest(join(EXAMPLES, 'demo', 'demo.yaml'));
  try {
    const ref = await client.createStack(DEMO_STACK, { template: req.template, environment: req.environment as Record<string, unknown>, files: req.files });
    return ref.id;
  } catch (e) {
    if (e instanceof KilnError && e.code === 'STACK_EXISTS') return (await client.showStack(DEMO_STACK)).id;
    throw e;
  }
}

/** Counts by status. */
function tally(statuses: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of statuses) out[s] = (out[s] ?? 0) + 1;
  return out;
}

/**
 * The demo's live progress line (redrawn on a terminal, a line per change otherwise): every
 * resource of the stack, group members included, by status, and the cloud's servers, with the
 * boots that failed and were replaced so far.
 */
function followDemo(client: KilnClient, cloud: SimCloudClient, stackId: string, signal: AbortSignal): Promise<void> {
  const started = Date.now();
  const out = process.stdout;
  const failedBoots = new Set<string>();
  // The cloud's change feed sees every boot that ends in ERROR, however soon it is deleted.
  void cloud
    .follow({ kinds: ['server'], signal, onEvent: (e) => e.status === 'ERROR' && e.id !== undefined && failedBoots.add(e.id) })
    .catch(() => undefined);
  let last = '';
  return (async () => {
    while (!signal.aborted) {
      try {
        const view = await client.showStack(stackId, { signal });
        const rows: string[] = [];
        for await (const r of client.resources(stackId, { nested_depth: 5 }, { signal })) rows.push(r.status);
        const servers = await cloud.list('server');
        const byStatus = tally(rows);
        const line = `${progressLine({ name: view.name, status: view.status, resources: { total: rows.length, by_status: byStatus } }, Date.now() - started)}  | cloud servers: ${
          Object.entries(tally(servers.map((x) => x.status))).map(([k, n]) => `${k} ${n}`).join(' · ') || 'none'
        }, failed boots replaced: ${failedBoots.size}`;
        if (signal.aborted) break;
        if (out.isTTY) out.write(`\r\x1b[K${line.slice(0, Math.max(40, (out.columns ?? 200) - 1))}`);
        else {
          const key = line.replace(/\s+\d\d:\d\d {2}\|/, ' |');
          if (key !== last) out.write(`${line}\n`);
          last = key;
        }
      } catch {
        // Not visible yet, or a slow moment: try again.
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    if (out.isTTY) out.write('\n');
  })();
}

async function up(args: string[]): Promise<number> {
  let values;
  try {
    values = parseArgs({ args, options: OPTIONS, allowPositionals: false }).values;
  } catch (e) {
    throw new KilnError('REQUEST_INVALID', `${(e as Error).message}\n${USAGE}`);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  // The terminal is for the URLs and the progress line; KILN_LOG_LEVEL=info shows the logs.
  process.env.KILN_LOG_LEVEL ??= 'warn';
  const dir = resolve(values.dir ?? LOCAL_DIR);
  mkdirSync(dir, { recursive: true });
  const running = runningUp(join(dir, UP_FILE));
  if (running !== undefined) throw new KilnError('CONFLICT', `kiln up is already running in ${dir} (pid ${running}); its NATS URL is in ${join(dir, NATS_URL_FILE)}`, { path: '--dir' });
  const faults = values.faults !== undefined ? parseFaultsArg(values.faults) : values.demo ? DEMO_FAULTS : {};
  const [natsPort, gatewayPort, simPort] = [
    await choosePort(portOption(values.port, 'port'), 4222),
    await choosePort(portOption(values['gateway-port'], 'gateway-port'), 8080),
    await choosePort(portOption(values['sim-port'], 'sim-port'), 8774),
  ];

  const local = new LocalInstallation();
  let stopping: Promise<void> | undefined;
  let stopRequested!: () => void;
  const stopSignal = new Promise<void>((r) => (stopRequested = r));
  const demoAbort = new AbortController();
  const stop = () => {
    if (stopping) {
      process.stderr.write('kiln up: forced exit\n');
      process.exit(130);
    }
    demoAbort.abort();
    process.stdout.write('\nkiln up: stopping…\n');
    stopping = local.stop();
    stopRequested();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  try {
    const launcher = sessionLauncher(dir);
    if (launcher) process.env.NATS_SERVER_BIN = launcher;
    const nats = await NatsServer.start({ storeDir: join(dir, 'nats'), port: natsPort, name: 'kiln-local' });
    local.add(() => nats.stop());
    const sim = await SimCloud.start({ stateDir: join(dir, 'sim-cloud'), port: simPort, faults, ...(values.demo ? { latency: DEMO_LATENCY } : {}) });
    local.add(() => sim.stop());
    const node: EngineNode = await startEngineNode({
      servers: [nats.url],
      partitions: LOCAL_PARTITIONS,
      nodeId: 'local',
      worker: true,
      api: true,
      cloud: { url: sim.url, tenant: 'demo' },
      heal: { observeIntervalMs: LOCAL_OBSERVE_MS },
    });
    local.add(() => node.stop());
    const token = localToken(dir);
    const gateway = await Gateway.start({ servers: nats.url, port: gatewayPort, tokens: { [token]: 'default' } });
    local.add(() => gateway.stop());
    const urlFile = join(dir, NATS_URL_FILE);
    const upFile = join(dir, UP_FILE);
    const page = `${gateway.url}/?token=${token}${values.demo ? `&stack=${DEMO_STACK}` : ''}`;
    const info = { pid: process.pid, nats_pid: nats.pid, nats: nats.url, gateway: gateway.url, page, events: `${gateway.url.replace(/^http/, 'ws')}/events`, token, sim_cloud: sim.url, dir };
    writeFileSync(urlFile, `${nats.url}\n`);
    writeFileSync(upFile, `${JSON.stringify(info, null, 2)}\n`);
    local.add(async () => {
      rmSync(urlFile, { force: true });
      rmSync(upFile, { force: true });
    });
    if (stopping) return 0;
    process.stdout.write(
      [
        'Kiln is up (local mode, tenant "default")',
        `  NATS       ${nats.url}`,
        `  gateway    ${page}`,
        `  events     ${info.events}`,
        `  sim cloud  ${sim.url}${Object.keys(faults).length ? `  (faults: ${Object.entries(faults).map(([k, v]) => `${k}=${v}`).join(',')})` : ''}`,
        `  state      ${dir}`,
        '',
        values.demo ? `Deploying stack "${DEMO_STACK}" from packages/cli/examples/demo. In another terminal:` : 'In another terminal:',
        values.demo ? `  kiln resource list ${DEMO_STACK}` : '  kiln stack create hello -t packages/cli/examples/hello.yaml --wait',
        values.demo ? `  kiln stack update ${DEMO_STACK} -P size=10 --wait   (scale the group)` : '  kiln stack list',
        'Ctrl-C stops everything.',
        '',
      ].join('\n'),
    );
    if (values.demo) {
      const client = await KilnClient.connect({ servers: nats.url, name: 'kiln-up-demo' });
      local.add(() => client.close());
      const cloud = new SimCloudClient(sim.url, { tenant: 'demo' });
      local.add(async () => cloud.close());
      const id = await deployDemo(client);
      const following = followDemo(client, cloud, id, demoAbort.signal);
      local.add(() => following);
    }
  } catch (e) {
    demoAbort.abort();
    await local.stop();
    throw e;
  }
  await stopSignal;
  await stopping;
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  process.stdout.write('kiln up: stopped\n');
  return 0;
}

export const upCommand: Command = {
  usage: 'up [--demo] [--dir DIR] [--port N]',
  summary: 'local mode: NATS, engine, API, gateway and sim cloud in one command',
  run: async (args) => {
    try {
      return await up(args);
    } catch (e) {
      reportError(toKilnError(e), false);
      return 1;
    }
  },
};
