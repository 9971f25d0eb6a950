import { readFileSync } from 'node:fs';

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
