import { parseArgs } from 'node:util';
import { KilnError, toKilnError } from '@kiln/core';
import { main as gatewayMain } from '@kiln/api';
import { main as simCloudMain } from '@kiln/sim-cloud';
import { natsUrl } from '../nats-options.js';
import { startEngineNode } from '../node.js';
import { reportError } from '../output.js';
import type { Command } from './index.js';

const NODE_OPTIONS = {
  nats: { type: 'string' },
  user: { type: 'string' },
  password: { type: 'string' },
  partitions: { type: 'string' },
  replicas: { type: 'string' },
  'node-id': { type: 'string' },
  cloud: { type: 'string' },
  'cloud-tenant': { type: 'string' },
  'no-api': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const ENGINE_USAGE = `usage: kiln engine [--nats URL[,URL...]] [--user U --password P] [--partitions N] [--replicas 1|3] [--node-id ID]
                   [--cloud SIM_CLOUD_URL [--cloud-tenant T]] [--no-api]
  An engine node: runs actors of the partitions it holds, and serves the request API (queue
  group kiln-api) unless --no-api. --partitions must be the same on every engine (default 64);
  --replicas 3 on a 3-node JetStream cluster (every bucket and stream R3), the same everywhere.
  Environment: KILN_NATS_URL, KILN_NATS_USER, KILN_NATS_PASSWORD, KILN_CLOUD_URL.`;

const API_USAGE = `usage: kiln api [--nats URL[,URL...]] [--user U --password P] [--partitions N] [--replicas 1|3]
  The request API alone (no actors): for API capacity apart from the engines. --partitions and
  --replicas must match the engines'.`;

/** Runs until SIGINT/SIGTERM, then stops `stop` and resolves. */
function untilSignal(stop: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    const onSignal = () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      void stop().then(resolve, resolve);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

async function runNode(args: string[], usage: string, worker: boolean): Promise<number> {
  try {
    let values;
    try {
      values = parseArgs({ args, options: NODE_OPTIONS, allowPositionals: false }).values;
    } catch (e) {
      throw new KilnError('REQUEST_INVALID', `${(e as Error).message}\n${usage}`);
    }
    if (values.help) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    const partitions = Number(values.partitions ?? 64);
    if (!Number.isInteger(partitions) || partitions < 1) throw new KilnError('REQUEST_INVALID', '--partitions takes a positive whole number', { path: '--partitions' });
    const replicas = Number(values.replicas ?? 1);
    if (replicas !== 1 && replicas !== 3) throw new KilnError('REQUEST_INVALID', '--replicas takes 1 or 3', { path: '--replicas' });
    const cloudUrl = worker ? (values.cloud ?? process.env.KILN_CLOUD_URL) : undefined;
    const servers = natsUrl(values.nats).split(',');
    const node = await startEngineNode({
      servers,
      user: values.user ?? process.env.KILN_NATS_USER,
      pass: values.password ?? process.env.KILN_NATS_PASSWORD,
      partitions,
      replicas,
      nodeId: values['node-id'],
      worker,
      api: !worker || !values['no-api'],
      cloud: cloudUrl ? { url: cloudUrl, tenant: values['cloud-tenant'] ?? 'demo' } : undefined,
    });
    process.stdout.write(`kiln ${worker ? 'engine' : 'api'}: connected to ${servers.join(',')}${worker && !values['no-api'] ? ' (serving the API)' : ''}${cloudUrl ? `, cloud ${cloudUrl}` : ''}\n`);
    await untilSignal(() => node.stop());
    return 0;
  } catch (e) {
    reportError(toKilnError(e), false);
    return 1;
  }
}

export const engineCommand: Command = {
  usage: 'engine [--nats URL] [--cloud URL] [--no-api]',
  summary: 'run one engine node (and the API) against a NATS cluster',
  run: (args) => runNode(args, ENGINE_USAGE, true),
};

export const apiCommand: Command = {
  usage: 'api [--nats URL]',
  summary: 'run the request API alone against a NATS cluster',
  run: (args) => runNode(args, API_USAGE, false),
};

export const gatewayCommand: Command = {
  usage: 'gateway [--nats URL] [--port P] --token TOKEN=TENANT ...',
  summary: 'run the web-socket event gateway and its page',
  run: async (args) => {
    if (args.includes('-h') || args.includes('--help')) {
      process.stdout.write('usage: kiln gateway [--nats URL] [--nats-user U --nats-password P] [--host H] [--port P] [--token TOKEN=TENANT]... [--tokens-file F.json]\n');
      return 0;
    }
    try {
      // The gateway reads KILN_NATS_URL itself; give it the URL `kiln up` wrote too.
      const withNats = args.includes('--nats') ? args : ['--nats', natsUrl(undefined), ...args];
      const { stopped } = await gatewayMain(withNats);
      await stopped;
      return 0;
    } catch (e) {
      reportError(toKilnError(e), false);
      return 1;
    }
  },
};

export const simCloudCommand: Command = {
  usage: 'sim-cloud [--port N] [--state-dir D] [--faults F] [--latency L]',
  summary: 'run the simulated OpenStack cloud',
  run: (args) => simCloudMain(args),
};
