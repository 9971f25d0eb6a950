import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@kiln/natsd';
import type { MailboxClient, Outgoing } from '../src/index.js';

export interface WorkerProcess {
  readonly nodeId: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  /** The last 256 KiB of stderr (for failure messages). */
  stderr(): string;
  /** Every ownership log line (partition taken/lost/released, fencing), however much else was logged. */
  readonly ownership: Record<string, unknown>[];
}

/** Ownership lines are what tests assert on; a worker logging per-message lines would push them out of any tail. */
const isOwnershipLine = (msg: unknown) => typeof msg === 'string' && (msg.startsWith('partition ') || msg.startsWith('state write refused'));

const workerScript = fileURLToPath(new URL('./fixtures/worker.js', import.meta.url));

/** Starts a runtime node in a child process and waits for its "ready". */
export async function startWorker(opts: Record<string, unknown> & { nodeId: string }): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [workerScript, JSON.stringify(opts)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KILN_LOG_LEVEL: process.env.KILN_WORKER_LOG_LEVEL ?? 'info' },
  });
  let err = '';
  let partial = '';
  const ownership: Record<string, unknown>[] = [];
  child.stderr!.on('data', (d) => {
    err = (err + d).slice(-256 * 1024);
    const lines = (partial + d).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      if (!l.startsWith('{')) continue;
      try {
        const rec = JSON.parse(l) as Record<string, unknown>;
        if (isOwnershipLine(rec.msg)) ownership.push(rec);
      } catch {
        // Not a pino line.
      }
    }
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('ready')) resolve();
    });
    void exited.then((code) => reject(new Error(`worker ${opts.nodeId} exited (${code}) before ready:\n${err}`)));
  });
  return { nodeId: opts.nodeId, child, exited, stderr: () => err, ownership };
}

/** A worker's ownership log lines (see WorkerProcess.ownership). */
export function logLines(w: WorkerProcess): Record<string, unknown>[] {
  return w.ownership;
}

/** Retries the same list (same msgIds, same packs) until the stream stored it: a retry is stored once. */
export async function sendUntilStored(mail: MailboxClient, items: Outgoing[]): Promise<void> {
  await waitFor('mailbox publish', async () => {
    await mail.sendMany(items);
    return true;
  }, 60_000, 200);
}
