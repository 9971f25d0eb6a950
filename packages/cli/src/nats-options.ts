import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KilnClient } from '@kiln/sdk';

/** Where `kiln up` keeps its state and the files other commands read (`nats-url`, `gateway-token`). */
export const LOCAL_DIR = '.kiln';
export const NATS_URL_FILE = 'nats-url';
export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

/** The connection options every command that talks to NATS takes (parseArgs option specs). */
export const NATS_OPTIONS = {
  nats: { type: 'string' },
  tenant: { type: 'string' },
  user: { type: 'string' },
  password: { type: 'string' },
} as const;

export interface NatsArgs {
  nats?: string | undefined;
  tenant?: string | undefined;
  user?: string | undefined;
  password?: string | undefined;
}

/**
 * The NATS URL: `--nats`, else `$KILN_NATS_URL`, else the one a `kiln up` in this directory
 * wrote to `.kiln/nats-url`, else the default port on loopback.
 */
export function natsUrl(flag: string | undefined, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  if (flag) return flag;
  if (env.KILN_NATS_URL) return env.KILN_NATS_URL;
  const file = join(cwd, LOCAL_DIR, NATS_URL_FILE);
  if (existsSync(file)) {
    const url = readFileSync(file, 'utf8').trim();
    if (url) return url;
  }
  return DEFAULT_NATS_URL;
}

/** A client of the request API for the tenant (default `default`, the tenant of local mode). */
export function connectClient(a: NatsArgs, env: NodeJS.ProcessEnv = process.env): Promise<KilnClient> {
  const user = a.user ?? env.KILN_NATS_USER;
  const pass = a.password ?? env.KILN_NATS_PASSWORD;
  return KilnClient.connect({
    servers: natsUrl(a.nats, env).split(','),
    tenant: a.tenant ?? env.KILN_TENANT ?? 'default',
    ...(user === undefined ? {} : { user }),
    ...(pass === undefined ? {} : { pass }),
    name: 'kiln-cli',
    // A person waits at the terminal: fail fast when nothing answers.
    timeoutMs: 10_000,
    retries: 1,
  });
}
