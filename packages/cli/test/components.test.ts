import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { freePort, NatsServer, waitFor } from '@kiln/natsd';

/**
 * A multi-process installation from the component commands, as deploy/ runs them: `kiln
 * sim-cloud`, two `kiln engine` nodes (each serving the API) and `kiln gateway` against one
 * nats-server; a stack of cloud servers deployed through them; SIGTERM stops each cleanly.
 */
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const BIN = join(ROOT, 'packages', 'cli', 'bin', 'kiln.js');

interface Proc {
  child: ChildProcess;
  out: string;
  exited: Promise<number | null>;
}

function start(args: string[]): Proc {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ctx.dir, env: { ...process.env, KILN_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const p: Proc = { child, out: '', exited: new Promise((r) => child.once('exit', (code) => r(code))) };
  child.stdout!.on('data', (d) => (p.out += d));
  child.stderr!.on('data', (d) => (p.out += d));
  return p;
}

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ctx.dir, env: { ...process.env, KILN_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const ctx = {} as { dir: string; server: NatsServer; procs: Proc[]; cloudUrl: string; gatewayUrl: string };
const test = suite('kiln engine, gateway and sim-cloud as separate processes');

test.before(async () => {
  ctx.dir = mkdtempSync(join(tmpdir(), 'kiln-cli-components-'));
  ctx.server = await NatsServer.start();
  ctx.procs = [];
});

test.after(async () => {
  for (const p of ctx.procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  await ctx.server?.stop();
  rmSync(ctx.dir, { recursive: true, force: true });
});

test('the components start and report where they are', async () => {
  const sim = start(['sim-cloud', '--port', '0', '--state-dir', join(ctx.dir, 'sim')]);
  ctx.procs.push(sim);
  const line = await waitFor('the sim cloud URL', () => /\{"url":"([^"]+)"/.exec(sim.out)?.[1]);
  ctx.cloudUrl = line;
  for (const id of ['e1', 'e2']) {
    const e = start(['engine', '--nats', ctx.server.url, '--partitions', '8', '--node-id', id, '--cloud', ctx.cloudUrl]);
    ctx.procs.push(e);
    await waitFor(`engine ${id}`, () => e.out.includes('kiln engine: connected') || (e.child.exitCode !== null && assert.unreachable(e.out)));
  }
  const port = await freePort();
  const gw = start(['gateway', '--nats', ctx.server.url, '--port', String(port), '--token', 'secret=default']);
  ctx.procs.push(gw);
  ctx.gatewayUrl = await waitFor('the gateway URL', () => /kiln gateway: (http:\/\/\S+)\//.exec(gw.out)?.[1]);
  const health = await fetch(`${ctx.gatewayUrl}/healthz`);
  assert.is(health.status, 200);
});

test('a stack of cloud servers deploys through them', async () => {
  const t = join(ctx.dir, 'servers.yaml');
  writeFileSync(
    t,
    `heat_template_version: 2016-10-14
resources:
  group:
    type: OS::Heat::ResourceGroup
    properties:
      count: 3
      resource_def: {type: OS::Nova::Server, properties: {name: vm-%index%, flavor: m1.tiny, image: cirros-0.6.2-x86_64-disk}}
`,
  );
  const r = await run(['stack', 'create', 'vms', '-t', t, '--wait', '--json', '--nats', ctx.server.url]);
  assert.is(r.code, 0, r.stderr);
  assert.is(JSON.parse(r.stdout).status, 'CREATE_COMPLETE');
  const servers = (await (await fetch(`${ctx.cloudUrl}/compute/v2.1/servers/detail`, { headers: { 'X-Project-Id': 'demo' } })).json()) as { servers: Array<{ name: string; status: string }> };
  assert.equal(servers.servers.map((s) => `${s.name}:${s.status}`).sort(), ['vm-0:ACTIVE', 'vm-1:ACTIVE', 'vm-2:ACTIVE']);
});

test('SIGTERM stops each component with exit code 0', async () => {
  for (const p of ctx.procs) p.child.kill('SIGTERM');
  const codes = await Promise.all(ctx.procs.map((p) => p.exited));
  assert.equal(codes, ctx.procs.map(() => 0), ctx.procs.map((p) => p.out).join('\n---\n'));
});

test('usage: --help, and a bad option is refused', async () => {
  assert.is((await run(['engine', '--help'])).code, 0);
  const bad = await run(['engine', '--frobnicate']);
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /REQUEST_INVALID/);
  assert.is((await run(['up', '--port', 'x'])).code, 1);
});

test.run();
