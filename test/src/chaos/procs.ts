import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repo root from test/dist/src/chaos/x.js. */
export const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const KILN_BIN = join(repoRoot, 'packages', 'cli', 'bin', 'kiln.js');
/** Bytes of each process's output kept for the violation log; raise it (with KILN_LOG_LEVEL=info) to diagnose a run. */
const LOG_TAIL_BYTES = Number(process.env.KILN_CHAOS_LOG_TAIL ?? 32 * 1024);

/** Children still running, killed when the harness exits so no engine or sim outlives a run. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) {
    c.kill('SIGCONT');
    c.kill('SIGKILL');
  }
});

/**
 * One `kiln <command>` child process, restartable with the same arguments (an engine comes back
 * as a new process of the same node id; the sim cloud on the same port and state directory).
 */
export class KilnProcess {
  private child: ChildProcess | undefined;
  private output = '';
  /** SIGSTOPped and not yet continued. */
  stopped = false;

  constructor(
    readonly label: string,
    private readonly args: string[],
    /** A line on stdout that says the process is ready. */
    private readonly readyPattern: RegExp,
    private readonly env: Record<string, string> = {},
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The tail of what it printed (stdout and stderr), for diagnosing a violation. */
  get log(): string {
    return this.output;
  }

  /** Starts the process and resolves once its ready line appears. */
  start(timeoutMs = 30_000): Promise<void> {
    if (this.running) throw new Error(`${this.label} is already running`);
    const child = spawn(process.execPath, [KILN_BIN, ...this.args], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, KILN_LOG_LEVEL: process.env.KILN_LOG_LEVEL ?? 'warn', ...this.env },
    });
    this.child = child;
    this.stopped = false;
    live.add(child);
    child.once('exit', () => live.delete(child));
    return new Promise((resolve, reject) => {
      let stdout = '';
      const keep = (d: Buffer) => {
        // The tail only: a long run must not grow this without bound.
        this.output = (this.output + d.toString()).slice(-LOG_TAIL_BYTES);
      };
      const t = setTimeout(() => reject(new Error(`${this.label} not ready within ${timeoutMs} ms:\n${this.output}`)), timeoutMs);
      child.stdout!.on('data', (d: Buffer) => {
        keep(d);
        stdout += d.toString();
        if (this.readyPattern.test(stdout)) {
          clearTimeout(t);
          stdout = '';
          resolve();
        }
      });
      child.stderr!.on('data', keep);
      child.once('exit', (code, sig) => {
        clearTimeout(t);
        reject(new Error(`${this.label} exited (${code ?? sig}) before it was ready:\n${this.output}`));
      });
    });
  }

  /** Sends a signal; SIGKILL resolves once the process is gone. */
  async signal(sig: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    if (sig === 'SIGSTOP') this.stopped = true;
    if (sig === 'SIGCONT') this.stopped = false;
    if (sig !== 'SIGKILL') {
      child.kill(sig);
      return;
    }
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGKILL');
    await exited;
    this.stopped = false;
  }

  /** Stops it for good: SIGTERM (a clean stop), SIGKILL after a grace period. */
  async stop(graceMs = 5_000): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGCONT');
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(t);
  }
}
