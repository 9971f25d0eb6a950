import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { EngineRole } from './role.js';

/** One line on stdout: what bench/run.mjs and the reader see. */
export function say(line: string): void {
  process.stdout.write(line + '\n');
}

/** Peak resident set (VmHWM) of a process in MiB, 0 when unknown. */
export function peakRssMiB(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : 0;
  } catch {
    return 0;
  }
}

/**
 * CPU seconds (user + system) a process has used so far, 0 when unknown. Unlike wall time it does
 * not grow with the load that other processes put on this shared machine.
 */
export function cpuSeconds(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/** The 1-minute load average (the machine is shared: figures are read beside it). */
export function loadAverage(): number {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return -1;
  }
}

const roleScript = fileURLToPath(new URL('./role.js', import.meta.url));

export interface RoleProcess {
  child: ChildProcess;
  /** The role's first line that `isReady` accepted (e.g. the URL it listens on). */
  line: string;
  exited: Promise<void>;
}

/**
 * Spawns `bench/lib/role.js <args>` and resolves once a stdout line passes `isReady`.
 * `profileDir`: the role writes a V8 CPU profile there when it exits (open it in Chrome's DevTools).
 */
export function startRole(args: string[], isReady: (line: string) => string | undefined, profileDir?: string): Promise<RoleProcess> {
  const profile = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const child = spawn(process.execPath, ['--max-old-space-size=4096', ...profile, roleScript, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, KILN_LOG_LEVEL: process.env.KILN_LOG_LEVEL ?? 'warn' },
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return new Promise((resolve, reject) => {
    let buf = '';
    let done = false;
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) {
        const v = done ? undefined : isReady(l);
        if (v !== undefined) {
          done = true;
          resolve({ child, line: v, exited });
        }
      }
    });
    void exited.then(() => reject(new Error(`role ${args[0]} exited (${String(child.exitCode ?? child.signalCode)}) before ready`)));
  });
}

const urlLine = (l: string): string | undefined => (l.startsWith('{') ? (JSON.parse(l) as { url: string }).url : undefined);

export const startSim = (options: Record<string, unknown>, profileDir?: string) => startRole(['sim', JSON.stringify(options)], urlLine, profileDir);
export const startEngine = (o: EngineRole, profileDir?: string) => startRole(['engine', JSON.stringify(o)], (l) => (l === 'ready' ? l : undefined), profileDir);
export const startGateway = (nats: string, token: string, tenant: string) => startRole(['gateway', nats, token, tenant], urlLine);

/**
 * SIGTERM and wait for the exit (nothing to do if it already exited, e.g. after a SIGKILL);
 * SIGKILL after `graceMs` (an engine whose nats-server is gone can wait forever on its drain).
 */
export async function stopRole(p: RoleProcess, graceMs = 15_000): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const killed = new Promise<void>((r) => {
    timer = setTimeout(() => {
      p.child.kill('SIGKILL');
      r();
    }, graceMs);
  });
  await Promise.race([p.exited, killed]);
  clearTimeout(timer);
  await p.exited;
}
