import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface WorkerProcess {
  readonly nodeId: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  stderr(): string;
}

const workerScript = fileURLToPath(new URL('./fixtures/worker.js', import.meta.url));

/** Starts a runtime node in a child process and waits for its "ready". */
export async function startWorker(opts: Record<string, unknown> & { nodeId: string }): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [workerScript, JSON.stringify(opts)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KILN_LOG_LEVEL: process.env.KILN_WORKER_LOG_LEVEL ?? 'info' },
  });
  let err = '';
  child.stderr!.on('data', (d) => (err = (err + d).slice(-256 * 1024)));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('ready')) resolve();
    });
    void exited.then((code) => reject(new Error(`worker ${opts.nodeId} exited (${code}) before ready:\n${err}`)));
  });
  return { nodeId: opts.nodeId, child, exited, stderr: () => err };
}

/** Parsed pino lines of a worker's stderr. */
export function logLines(w: WorkerProcess): Record<string, unknown>[] {
  return w
    .stderr()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return {};
      }
    });
}
