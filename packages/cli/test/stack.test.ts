import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { NatsServer } from '@kiln/natsd';
import { Engine } from '@kiln/engine';
import { ApiService, EngineBackend } from '@kiln/api';

/**
 * The stack commands as a user runs them: the real `kiln` binary in a child process against a
 * real nats-server, engine and API service (tenant `default`, no auth: local mode).
 */
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const BIN = join(ROOT, 'packages', 'cli', 'bin', 'kiln.js');
const HELLO = join(ROOT, 'packages', 'cli', 'examples', 'hello.yaml');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function kiln(args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, KILN_LOG_LEVEL: 'warn', ...o.env };
    delete env.KILN_NATS_URL;
    if (o.env?.KILN_NATS_URL) env.KILN_NATS_URL = o.env.KILN_NATS_URL;
    const child = spawn(process.execPath, [BIN, ...args], { cwd: o.cwd ?? ctx.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const ctx = {} as { server: NatsServer; engine: Engine; nc: NatsConnection; api: ApiService; dir: string; nats: string[] };
const test = suite('kiln stack commands');

test.before(async () => {
  ctx.server = await NatsServer.start();
  ctx.engine = await Engine.start({ servers: ctx.server.url, partitions: 8, nodeId: 'cli-test' });
  ctx.nc = await connect({ servers: ctx.server.url });
  ctx.api = await ApiService.start({ nc: ctx.nc, backend: await EngineBackend.open({ engine: ctx.engine }) });
  ctx.dir = mkdtempSync(join(tmpdir(), 'kiln-cli-stack-'));
  ctx.nats = ['--nats', ctx.server.url];
});

test.after(async () => {
  await ctx.api?.stop();
  await ctx.nc?.close();
  await ctx.engine?.stop();
  await ctx.server?.stop();
  rmSync(ctx.dir, { recursive: true, force: true });
});

function file(name: string, content: string): string {
  const p = join(ctx.dir, name);
  writeFileSync(p, content);
  return p;
}

test('create --wait: plain progress lines when stdout is not a terminal, exit 0 at CREATE_COMPLETE', async () => {
  const r = await kiln(['stack', 'create', 'hello', '-t', HELLO, '-P', 'greeting=hi', '--wait', ...ctx.nats]);
  assert.is(r.code, 0, r.stderr);
  assert.not.match(r.stdout, '\r', 'no terminal redraws in a pipe');
  const lines = r.stdout.trim().split('\n');
  assert.match(lines.at(-2)!, /^\[#{20}\] 2\/2  CREATE_COMPLETE 2  hello CREATE_COMPLETE  \d\d:\d\d$/);
  assert.is(lines.at(-1), 'stack hello CREATE_COMPLETE');
});

test('show --json: id, name, status, generation, outputs and resource counts', async () => {
  const r = await kiln(['stack', 'show', 'hello', '--json', ...ctx.nats]);
  assert.is(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.type(s.id, 'string');
  assert.is(s.name, 'hello');
  assert.is(s.status, 'CREATE_COMPLETE');
  assert.is(s.generation, 1);
  assert.match(s.outputs.message, /^hi-[A-Za-z0-9]{6}$/);
  assert.equal(s.resources, { total: 2, by_status: { CREATE_COMPLETE: 2 } });
  const text = await kiln(['stack', 'show', 'hello', ...ctx.nats]);
  assert.match(text.stdout, /status\s+CREATE_COMPLETE/);
  const out = await kiln(['stack', 'output', 'show', 'hello', 'message', ...ctx.nats]);
  assert.is(out.stdout.trim(), s.outputs.message);
  const list = JSON.parse((await kiln(['stack', 'output', 'list', 'hello', '--json', ...ctx.nats])).stdout);
  assert.equal(list.map((o: { key: string }) => o.key), ['message']);
});

test('resource list --json includes group members with their path; `kiln resource list` is the same', async () => {
  const t = file(
    'group.yaml',
    `heat_template_version: 2016-10-14
resources:
  tag: {type: OS::Heat::Value, properties: {value: x}}
  workers:
    type: OS::Heat::ResourceGroup
    properties:
      count: 2
      resource_def: {type: OS::Heat::TestResource, properties: {value: w%index%}}
`,
  );
  const c = await kiln(['stack', 'create', 'grouped', '-t', t, '--wait', '--json', ...ctx.nats]);
  assert.is(c.code, 0, c.stderr);
  assert.is(JSON.parse(c.stdout).status, 'CREATE_COMPLETE', '--wait --json prints the final show');
  const r = await kiln(['stack', 'resource', 'list', 'grouped', '--json', ...ctx.nats]);
  assert.is(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
  const byPath = Object.fromEntries(rows.map((x) => [x.path ?? x.name, x]));
  assert.equal(Object.keys(byPath).sort(), ['tag', 'workers', 'workers/0', 'workers/1']);
  for (const row of rows) {
    assert.is(row.status, 'CREATE_COMPLETE');
    assert.is(row.generation, 1);
    assert.type(row.physical_id, 'string');
    assert.type(row.type, 'string');
  }
  assert.is(byPath['workers/1']!.type, 'OS::Heat::TestResource');
  assert.is(byPath['workers/1']!.name, '1');
  const alias = await kiln(['resource', 'list', 'grouped', '--json', ...ctx.nats]);
  assert.equal(JSON.parse(alias.stdout), rows);
  const top = JSON.parse((await kiln(['resource', 'list', 'grouped', '--json', '--nested-depth', '0', ...ctx.nats])).stdout) as unknown[];
  assert.is(top.length, 2);
});

test('update with -P alone patches parameters: a new generation and new outputs', async () => {
  const r = await kiln(['stack', 'update', 'hello', '-P', 'greeting=bye', '--wait', '--json', ...ctx.nats]);
  assert.is(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.is(s.generation, 2);
  assert.is(s.status, 'UPDATE_COMPLETE');
  assert.match(s.outputs.message, /^bye-/);
  const list = JSON.parse((await kiln(['stack', 'list', '--json', ...ctx.nats])).stdout) as Array<{ name: string }>;
  assert.equal(list.map((x) => x.name).sort(), ['grouped', 'hello']);
});

test('a stack that ends FAILED makes --wait exit 1', async () => {
  const t = file('fail.yaml', 'heat_template_version: 2016-10-14\nresources:\n  bad: {type: OS::Heat::TestResource, properties: {fail: true}}\n');
  const r = await kiln(['stack', 'create', 'broken', '-t', t, '--wait', ...ctx.nats]);
  assert.is(r.code, 1, r.stdout);
  assert.match(r.stderr, /stack broken CREATE_FAILED/);
  const without = await kiln(['stack', 'create', 'broken2', '-t', t, '--json', ...ctx.nats]);
  assert.is(without.code, 0, 'without --wait the create is only accepted');
  assert.is(JSON.parse(without.stdout).generation, 1);
});

test('delete --wait: the stack is gone afterwards', async () => {
  const r = await kiln(['stack', 'delete', 'hello', '--wait', ...ctx.nats]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /stack hello deleted/);
  const show = await kiln(['stack', 'show', 'hello', '--json', ...ctx.nats]);
  assert.is(show.code, 1);
  assert.is(JSON.parse(show.stderr).code, 'STACK_NOT_FOUND');
});

test('the NATS URL comes from $KILN_NATS_URL, else from .kiln/nats-url; a dead URL is UNAVAILABLE', async () => {
  const fromEnv = await kiln(['stack', 'list', '--json'], { env: { KILN_NATS_URL: ctx.server.url } });
  assert.is(fromEnv.code, 0, fromEnv.stderr);
  const cwd = join(ctx.dir, 'project');
  mkdirSync(join(cwd, '.kiln'), { recursive: true });
  writeFileSync(join(cwd, '.kiln', 'nats-url'), `${ctx.server.url}\n`);
  const fromFile = await kiln(['stack', 'list', '--json'], { cwd });
  assert.is(fromFile.code, 0, fromFile.stderr);
  assert.ok((JSON.parse(fromFile.stdout) as unknown[]).length >= 2);
  const dead = await kiln(['stack', 'list', '--json', '--nats', 'nats://127.0.0.1:1']);
  assert.is(dead.code, 1);
  assert.is(JSON.parse(dead.stderr).code, 'UNAVAILABLE');
});

test('usage errors: unknown subcommand, missing template, wrong arity, bad -P', async () => {
  assert.is((await kiln(['stack', 'frobnicate'])).code, 2);
  assert.is((await kiln(['stack', '--help'])).code, 0);
  const noT = await kiln(['stack', 'create', 'x', '--json', ...ctx.nats]);
  assert.is(noT.code, 1);
  assert.equal(JSON.parse(noT.stderr).path, '--template');
  assert.is(JSON.parse((await kiln(['stack', 'show', '--json', ...ctx.nats])).stderr).code, 'REQUEST_INVALID');
  assert.is(JSON.parse((await kiln(['stack', 'create', 'x', '-t', HELLO, '-P', 'nokey', '--json', ...ctx.nats])).stderr).code, 'REQUEST_INVALID');
  const missing = await kiln(['stack', 'create', 'x', '-t', join(ctx.dir, 'absent.yaml'), '--json', ...ctx.nats]);
  assert.is(JSON.parse(missing.stderr).code, 'FILE_MISSING');
});

test.run();
