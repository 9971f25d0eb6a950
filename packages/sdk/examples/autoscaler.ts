/**
 * An example autoscaler embedding @kiln/sdk: every interval it reads a metric, asks a
 * target-tracking policy, and sets the desired capacity of one scaling group.
 *
 *   node packages/sdk/dist/examples/autoscaler.js --nats nats://127.0.0.1:4222 --tenant default \
 *     --stack web --group workers --target 50 --metric-file ./load.txt
 *
 * Replace `readMetric` with your own source (Prometheus, a queue length, …): it is the only
 * part that knows where the number comes from. See docs/sdk.md.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { KilnError, createLogger } from '@kiln/core';
// In your own project: from '@kiln/sdk'.
import { KilnClient, PolicyRunner, groupCapacity, parameterCapacity, type CapacityTarget } from '../src/index.js';

const USAGE = `usage: autoscaler --stack S --group G --target N (--metric-file F | --metric-url U)
  [--nats URL] [--tenant T] [--user U --password P | --token T]
  [--parameter P]          set the group's size through this stack parameter (stack.patch) instead of group.capacity.set
  [--min N] [--max N]      capacity bounds (default 1, 10)
  [--scale-out-cooldown S] [--scale-in-cooldown S]   seconds (default 60, 300)
  [--interval S]           seconds between evaluations (default 10)`;

function parseMetric(text: string, from: string): number {
  const n = Number(text.trim());
  // An empty read (a file being rewritten) must not look like a metric of 0.
  if (text.trim() === '' || !Number.isFinite(n)) throw new KilnError('DECODE_FAILED', `${from}: '${text.trim().slice(0, 40)}' is not a number`);
  return n;
}

/** The metric: a number in a file, or at a URL (plain text, or JSON {"value": n}). Replace at will. */
export function metricSource(o: { file?: string | undefined; url?: string | undefined }): () => Promise<number> {
  if (o.file !== undefined) {
    const file = o.file;
    return async () => parseMetric(await readFile(file, 'utf8'), file);
  }
  if (o.url !== undefined) {
    const url = o.url;
    return async () => {
      const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
      if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
      const text = (await res.text()).trim();
      return text.startsWith('{') ? parseMetric(String((JSON.parse(text) as { value?: unknown }).value), url) : parseMetric(text, url);
    };
  }
  throw new KilnError('REQUEST_INVALID', 'give --metric-file or --metric-url', { path: 'argv' });
}

function number(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new KilnError('REQUEST_INVALID', `--${name} must be a number >= 0, got '${v}'`, { path: `argv.${name}` });
  return n;
}

export async function main(argv: string[], signal?: AbortSignal): Promise<void> {
  const { values: a } = parseArgs({
    args: argv,
    options: {
      nats: { type: 'string', default: process.env.KILN_NATS_URL ?? 'nats://127.0.0.1:4222' },
      tenant: { type: 'string', default: 'default' },
      user: { type: 'string', default: process.env.KILN_NATS_USER },
      password: { type: 'string', default: process.env.KILN_NATS_PASSWORD },
      token: { type: 'string', default: process.env.KILN_NATS_TOKEN },
      stack: { type: 'string' },
      group: { type: 'string' },
      parameter: { type: 'string' },
      target: { type: 'string' },
      min: { type: 'string' },
      max: { type: 'string' },
      'scale-out-cooldown': { type: 'string' },
      'scale-in-cooldown': { type: 'string' },
      interval: { type: 'string' },
      'metric-file': { type: 'string' },
      'metric-url': { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (a.help || !a.stack || !a.group || a.target === undefined) {
    process.stderr.write(`${USAGE}\n`);
    if (!a.help) process.exitCode = 2;
    return;
  }
  const log = createLogger('autoscaler');
  const client = await KilnClient.connect({
    servers: a.nats!,
    tenant: a.tenant!,
    ...(a.user ? { user: a.user, pass: a.password ?? '' } : {}),
    ...(a.token ? { token: a.token } : {}),
    logger: log,
  });
  try {
    const target: CapacityTarget = a.parameter ? parameterCapacity(client, a.stack, a.parameter, a.group) : groupCapacity(client.group(a.stack, a.group));
    const runner = new PolicyRunner({
      policy: {
        kind: 'target_tracking',
        target: number(a.target, 'target', 50),
        min: number(a.min, 'min', 1),
        max: number(a.max, 'max', 10),
        scaleOutCooldownMs: number(a['scale-out-cooldown'], 'scale-out-cooldown', 60) * 1000,
        scaleInCooldownMs: number(a['scale-in-cooldown'], 'scale-in-cooldown', 300) * 1000,
      },
      metric: metricSource({ file: a['metric-file'], url: a['metric-url'] }),
      target,
      intervalMs: number(a.interval, 'interval', 10) * 1000,
      logger: log,
      ...(signal ? { signal } : {}),
    });
    await runner.run();
  } finally {
    await client.close();
  }
}

// Run when executed (not when imported); Ctrl-C / SIGTERM stop it cleanly.
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  process.once('SIGTERM', () => stop.abort());
  main(process.argv.slice(2), stop.signal).catch((e: unknown) => {
    const err = e instanceof KilnError ? e : new KilnError('INTERNAL', String((e as Error)?.message ?? e));
    process.stderr.write(`autoscaler: ${err.code}: ${err.message}\n`);
    process.exitCode = 1;
  });
}
