import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import WebSocket from 'ws';
import { waitFor } from '@kiln/natsd';

/**
 * The README's walk-through, end to end, with nothing in-process: `kiln up` in the background,
 * `kiln stack create --wait` of the demo template (servers in the simulated cloud behind a load
 * balancer), its events on the gateway's web socket, `kiln stack delete --wait`, then Ctrl-C
 * (SIGINT) stops everything, the nats-server child included.
 */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'packages', 'cli', 'bin', 'kiln.js');
const DEMO = join(ROOT, 'packages', 'cli', 'examples', 'demo', 'demo.yaml');

interface UpInfo {
  pid: number;
  nats_pid: number;
  nats: string;
  gateway: string;
  events: string;
  token: string;
  sim_cloud: string;
}

const ctx = {} as { dir: string; up: ChildProcess; upOut: string; upExit: Promise<number | null>; info: UpInfo; ws: WebSocket; messages: Array<Record<string, unknown>>; stackId: string };
const test = suite('e2e: kiln up, stack create --wait, events on the web socket, delete, Ctrl-C');

/** `kiln ...` run from the project directory, so it finds the NATS URL in .kiln/nats-url. */
function kiln(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, KILN_LOG_LEVEL: 'warn' };
    delete env.KILN_NATS_URL;
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ctx.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function canConnect(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const s = tcpConnect({ host: hostname, port: Number(port) });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function cloudServers(): Promise<Array<{ name: string; status: string }>> {
  const r = await fetch(`${ctx.info.sim_cloud}/compute/v2.1/servers/detail`, { headers: { 'X-Project-Id': 'demo' } });
  return ((await r.json()) as { servers: Array<{ name: string; status: string }> }).servers;
}

test.before(async () => {
  ctx.dir = mkdtempSync(join(tmpdir(), 'kiln-e2e-'));
  ctx.upOut = '';
  // Free ports everywhere: the conventional ones may be taken on a shared machine.
  ctx.up = spawn(process.execPath, [BIN, 'up', '--port', '0', '--gateway-port', '0', '--sim-port', '0'], {
    cwd: ctx.dir,
    env: { ...process.env, KILN_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, as a foreground job in a terminal: Ctrl-C signals the whole group.
    detached: true,
  });
  ctx.up.stdout!.on('data', (d) => (ctx.upOut += d));
  ctx.up.stderr!.on('data', (d) => (ctx.upOut += d));
  ctx.upExit = new Promise((r) => ctx.up.once('exit', (code) => r(code)));
  await waitFor('kiln up to print its URLs', () => ctx.upOut.includes('Ctrl-C stops everything') || (ctx.up.exitCode !== null && assert.unreachable(`kiln up exited:\n${ctx.upOut}`)), 60_000);
  ctx.info = JSON.parse(readFileSync(join(ctx.dir, '.kiln', 'up.json'), 'utf8')) as UpInfo;
  ctx.messages = [];
});

test.after(async () => {
  ctx.ws?.terminate();
  if (ctx.up && ctx.up.exitCode === null) {
    ctx.up.kill('SIGKILL');
    if (ctx.info?.nats_pid && alive(ctx.info.nats_pid)) process.kill(ctx.info.nats_pid, 'SIGKILL');
  }
  rmSync(ctx.dir, { recursive: true, force: true });
});

test('kiln up prints the NATS, gateway and sim-cloud URLs and writes .kiln/nats-url', () => {
  assert.match(ctx.upOut, `NATS       ${ctx.info.nats}`);
  assert.match(ctx.upOut, `gateway    ${ctx.info.gateway}/?token=${ctx.info.token}`);
  assert.match(ctx.upOut, `sim cloud  ${ctx.info.sim_cloud}`);
  assert.is(readFileSync(join(ctx.dir, '.kiln', 'nats-url'), 'utf8').trim(), ctx.info.nats);
  assert.ok(alive(ctx.info.nats_pid), 'the nats-server child runs');
});

test('the gateway accepts the local token on its web socket', async () => {
  ctx.ws = new WebSocket(`${ctx.info.events}?token=${ctx.info.token}`);
  ctx.ws.on('message', (d) => ctx.messages.push(JSON.parse(d.toString()) as Record<string, unknown>));
  await waitFor('welcome', () => ctx.messages.find((m) => m.type === 'welcome'), 10_000);
  assert.is(ctx.messages.find((m) => m.type === 'welcome')!.tenant, 'default');
  // All the tenant's events from the start of the stream, then live.
  ctx.ws.send(JSON.stringify({ type: 'subscribe', filter: {}, from_seq: 1 }));
  await waitFor('subscribed', () => ctx.messages.find((m) => m.type === 'subscribed'), 10_000);
});

test('kiln stack create --wait deploys servers behind a load balancer in the sim cloud', async () => {
  const r = await kiln('stack', 'create', 'e2e', '-t', DEMO, '-P', 'size=2', '--wait', '--json');
  assert.is(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout) as { id: string; status: string; outputs: Record<string, unknown> };
  ctx.stackId = s.id;
  assert.is(s.status, 'CREATE_COMPLETE');
  assert.is((s.outputs.web_addresses as unknown[]).length, 2);
  const rows = JSON.parse((await kiln('resource', 'list', 'e2e', '--json')).stdout) as Array<{ name: string; path?: string; type: string; status: string; physical_id: string }>;
  const servers = rows.filter((x) => x.type === 'OS::Nova::Server');
  assert.equal(servers.map((x) => x.path).sort(), ['web/0/server', 'web/1/server']);
  assert.ok(rows.every((x) => x.status === 'CREATE_COMPLETE'));
  const cloud = await cloudServers();
  assert.equal(cloud.map((x) => x.status), ['ACTIVE', 'ACTIVE']);
  assert.equal(servers.map((x) => x.physical_id).sort(), cloud.map((x) => (x as unknown as { id: string }).id).sort());
});

test("the stack's events arrive on the web socket", async () => {
  // Needs the engine to publish on kiln.events.<tenant>.<stackId>.<resource> (docs/api.md).
  const events = () => ctx.messages.filter((m) => m.type === 'event').map((m) => m.event as { stack: string; resource?: string; status: string });
  await waitFor(
    `events of stack ${ctx.stackId} on the web socket (got ${events().length} events in all)`,
    () => events().some((e) => e.stack === ctx.stackId && e.resource === undefined && e.status === 'CREATE_COMPLETE'),
    10_000,
  );
  assert.ok(events().some((e) => e.stack === ctx.stackId && e.resource === 'lb' && e.status === 'CREATE_COMPLETE'));
});

test('kiln stack delete --wait removes the stack and its cloud servers', async () => {
  const r = await kiln('stack', 'delete', 'e2e', '--wait');
  assert.is(r.code, 0, r.stderr);
  assert.is((await kiln('stack', 'show', 'e2e', '--json')).code, 1);
  assert.equal(await cloudServers(), []);
});

test('Ctrl-C (SIGINT to the process group) stops kiln up and everything it started', async () => {
  ctx.ws.terminate();
  process.kill(-ctx.up.pid!, 'SIGINT');
  const code = await Promise.race([ctx.upExit, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 30_000).unref())]);
  assert.is(code, 0, ctx.upOut);
  assert.match(ctx.upOut, 'kiln up: stopped');
  assert.not.ok(alive(ctx.info.nats_pid), 'no nats-server left behind');
  assert.not.ok(await canConnect(ctx.info.nats), 'NATS port closed');
  assert.not.ok(await canConnect(ctx.info.gateway), 'gateway port closed');
  assert.not.ok(await canConnect(ctx.info.sim_cloud), 'sim cloud port closed');
  assert.not.ok(existsSync(join(ctx.dir, '.kiln', 'nats-url')), 'the URL file is removed');
});

test.run();
