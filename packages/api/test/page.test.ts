import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { chromium, type BrowserContext } from 'playwright-core';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { encode } from '@kiln/core';
import type { NatsServer } from '@kiln/natsd';
import { ApiService } from '../src/service.js';
import { Gateway } from '../src/gateway.js';
import { eventSubject } from '../src/subjects.js';
import { MemoryBackend } from './memory-backend.js';
import { PASSWORDS, TEMPLATE, connectAs, createEventsStream, ok, repoRoot, startTenantServer } from './harness.js';

/** Debian's chromium; CI installs it (`apt-get install -y chromium`). */
const CHROMIUM = process.env.KILN_CHROMIUM ?? '/usr/bin/chromium';

interface Ctx {
  server: NatsServer;
  kiln: NatsConnection;
  js: JetStreamClient;
  api: ApiService;
  gw: Gateway;
  browser: BrowserContext;
  profile: string;
}
const ctx = {} as Ctx;

const page = suite('gateway page in headless Chromium');

page.before(async () => {
  ctx.server = await startTenantServer();
  ctx.kiln = await connectAs(ctx.server, 'kiln');
  ctx.js = jetstream(ctx.kiln);
  await createEventsStream(ctx.kiln);
  ctx.api = await ApiService.start({ nc: ctx.kiln, backend: new MemoryBackend() });
  ctx.gw = await Gateway.start({ servers: ctx.server.url, user: 'gateway', pass: PASSWORDS.KILN_GATEWAY_PASSWORD, tokens: { 'tok-a': 'tenant-a' } });
  ctx.profile = mkdtempSync(join(tmpdir(), 'kiln-chromium-'));
  ctx.browser = await launch(ctx.profile);
});

async function launch(profile: string): Promise<BrowserContext> {
  try {
    // A fresh profile directory per run (playwright passes it as --user-data-dir).
    return await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1000, height: 700 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  } catch (e) {
    // uvu does not print errors of `before` hooks: say here why the suite cannot run.
    console.error(`cannot start Chromium at ${CHROMIUM} (install it: apt-get install -y chromium): ${(e as Error).message}`);
    throw e;
  }
}

page.after(async () => {
  await ctx.browser?.close();
  await ctx.gw?.stop();
  await ctx.api?.stop();
  await ctx.kiln?.close();
  await ctx.server?.stop();
  if (ctx.profile) rmSync(ctx.profile, { recursive: true, force: true });
});

async function emit(stack: string, resource: string | undefined, status: string): Promise<void> {
  await ctx.js.publish(eventSubject('tenant-a', stack, resource), encode({ status, resource_type: resource ? 'OS::Nova::Server' : 'OS::Heat::Stack', timestamp: Date.now(), reason: `${resource ?? 'stack'} ${status}` }));
}

page('shows a stack converging live: counts by status, recent events, progress bar', async () => {
  const a = await connectAs(ctx.server, 'tenant-a');
  const stack = await ok<{ id: string }>(a, 'tenant-a', 'stack.create', { name: 'demo', template: TEMPLATE });
  await a.close();
  await emit(stack.id, undefined, 'CREATE_IN_PROGRESS');
  for (const r of ['web', 'db', 'workers']) await emit(stack.id, r, 'CREATE_IN_PROGRESS');
  await emit(stack.id, 'web', 'CREATE_COMPLETE');

  const tab = await ctx.browser.newPage();
  const errors: string[] = [];
  tab.on('pageerror', (e) => errors.push(e.message));
  await tab.goto(`${ctx.gw.url}/?token=tok-a&stack=demo`);
  // The replay: one of three resources ready.
  await tab.waitForFunction(`document.getElementById('progress-text').textContent.startsWith('1 / 3')`, undefined, { timeout: 15_000 });
  assert.is(await tab.textContent('#stack-name'), 'demo');
  assert.is(await tab.textContent('#counts li[data-status="CREATE_IN_PROGRESS"] b'), '2');
  assert.is(await tab.textContent('#counts li[data-status="CREATE_COMPLETE"] b'), '1');
  mkdirSync(join(repoRoot, 'test-output'), { recursive: true });
  await tab.screenshot({ path: join(repoRoot, 'test-output', 'gateway-page-converging.png'), fullPage: true });

  // Live: the rest converges while the page is open.
  await emit(stack.id, 'db', 'CREATE_COMPLETE');
  await emit(stack.id, 'workers', 'CREATE_COMPLETE');
  await emit(stack.id, undefined, 'CREATE_COMPLETE');
  await tab.waitForFunction(`document.getElementById('progress-text').textContent.startsWith('3 / 3')`, undefined, { timeout: 15_000 });
  assert.is(await tab.getAttribute('#progress-bar', 'style'), 'width: 100%;');
  assert.is(await tab.textContent('#counts li[data-status="CREATE_COMPLETE"] b'), '3');
  assert.is(await tab.textContent('#stack-status'), 'CREATE_COMPLETE');
  const events = await tab.locator('#events li').allTextContents();
  assert.is(events.length, 8);
  assert.match(events[0]!, /\(stack\) CREATE_COMPLETE/);
  assert.match((await tab.textContent('#conn')) ?? '', /live/);
  await tab.screenshot({ path: join(repoRoot, 'test-output', 'gateway-page-complete.png'), fullPage: true });

  // The gateway restarts: the page reconnects and resumes from its last sequence, no duplicate.
  const port = ctx.gw.port;
  await ctx.gw.stop();
  await tab.waitForFunction(`document.getElementById('conn').textContent.startsWith('reconnecting')`, undefined, { timeout: 15_000 });
  await emit(stack.id, 'web', 'UPDATE_IN_PROGRESS');
  ctx.gw = await Gateway.start({ servers: ctx.server.url, user: 'gateway', pass: PASSWORDS.KILN_GATEWAY_PASSWORD, tokens: { 'tok-a': 'tenant-a' }, port });
  await tab.waitForFunction(`document.querySelectorAll('#events li').length === 9`, undefined, { timeout: 15_000 });
  const resumed = await tab.locator('#events li').allTextContents();
  assert.match(resumed[0]!, /^#9 .* web UPDATE_IN_PROGRESS/);
  assert.equal(resumed.slice(1), events);
  assert.match((await tab.textContent('#progress-text')) ?? '', /^2 \/ 3/);
  assert.equal(errors, []);
  await tab.close();
});

page.run();
