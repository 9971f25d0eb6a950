import { KilnError, createLogger } from '@kiln/core';
import { parseFaultsArg, parseLatencyArg } from './config.js';
import { SimCloud, type SimCloudOptions } from './server.js';
import type { FsyncPolicy } from './wal.js';

const USAGE = `kiln sim-cloud [options]
  --port N            listen port (default 8774; 0 picks a free one)
  --host H            listen address (default 127.0.0.1)
  --state-dir DIR     where state persists (default ./.kiln-sim-cloud)
  --seed S            seed for every random draw (default 1)
  --faults F          JSON or key=value list, e.g. serverBootError=0.2,apiErrorShare=0.02
  --latency L         JSON or key=value list, e.g. server=5000..30000,volume=ln:800:0.5:5000
  --fsync P           always | interval | never (default interval)`;

/** Parses `kiln sim-cloud` flags into SimCloud options (exported for the CLI and tests). */
export function parseArgs(argv: string[]): SimCloudOptions & { help?: boolean } {
  const out: SimCloudOptions & { help?: boolean } = { port: 8774, stateDir: '.kiln-sim-cloud' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      if (arg.startsWith('--') && eq > 0) return arg.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new KilnError('REQUEST_INVALID', `${flag} needs a value`, { path: flag });
      return v;
    };
    switch (flag) {
      case '--port': {
        const p = Number(value());
        if (!Number.isInteger(p) || p < 0 || p > 65535) throw new KilnError('REQUEST_INVALID', 'must be a port number', { path: '--port' });
        out.port = p;
        break;
      }
      case '--host':
        out.host = value();
        break;
      case '--state-dir':
        out.stateDir = value();
        break;
      case '--seed':
        out.seed = value();
        break;
      case '--faults':
        out.faults = parseFaultsArg(value());
        break;
      case '--latency':
        out.latency = parseLatencyArg(value());
        break;
      case '--fsync': {
        const f = value();
        if (f !== 'always' && f !== 'interval' && f !== 'never') throw new KilnError('REQUEST_INVALID', 'must be always, interval or never', { path: '--fsync' });
        out.fsync = f as FsyncPolicy;
        break;
      }
      case '-h':
      case '--help':
        out.help = true;
        break;
      default:
        throw new KilnError('REQUEST_INVALID', `unknown option ${arg}\n${USAGE}`, { path: arg });
    }
  }
  return out;
}

/**
 * `kiln sim-cloud`: runs the simulated cloud until SIGINT/SIGTERM. Prints one JSON line with the
 * URL on stdout once listening (so a parent process can read it). Returns the exit code.
 */
export async function main(argv: string[]): Promise<number> {
  const log = createLogger('sim-cloud');
  let opts: ReturnType<typeof parseArgs>;
  try {
    opts = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 2;
  }
  if (opts.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  delete opts.help;
  let sim: SimCloud;
  try {
    sim = await SimCloud.start({ ...opts, logger: log });
  } catch (e) {
    process.stderr.write(`kiln sim-cloud: ${(e as Error).message}\n`);
    return 1;
  }
  process.stdout.write(JSON.stringify({ url: sim.url, stateDir: sim.stateDir }) + '\n');
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await sim.stop();
  return 0;
}
