import type { KilnClient, StackView } from '@kiln/sdk';
import { KilnError } from '@kiln/core';

/** A stack status that no longer changes by itself: `*_COMPLETE` or `*_FAILED`. */
export function isSettled(status: string): boolean {
  return status.endsWith('_COMPLETE') || status.endsWith('_FAILED');
}

export function isFailed(status: string): boolean {
  return status.endsWith('_FAILED');
}

/** Resources done: every `*_COMPLETE` status but `INIT_COMPLETE` (Heat's "not created yet"). */
export function completeCount(byStatus: Readonly<Record<string, number>>): number {
  let n = 0;
  for (const [s, c] of Object.entries(byStatus)) if (s.endsWith('_COMPLETE') && s !== 'INIT_COMPLETE') n += c;
  return n;
}

function clock(ms: number): string {
  const s = Math.floor(ms / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

/** One progress line: `[#####.....] 5/10  CREATE_COMPLETE 5 · CREATE_IN_PROGRESS 5  web CREATE_IN_PROGRESS  00:12`. */
export function progressLine(view: Pick<StackView, 'name' | 'status' | 'resources'>, elapsedMs: number, width = 20): string {
  const { by_status } = view.resources;
  const done = completeCount(by_status);
  // Members are counted before the stack's own total includes them.
  const total = Math.max(view.resources.total, Object.values(by_status).reduce((a, b) => a + b, 0));
  const filled = total > 0 ? Math.min(width, Math.round((done / total) * width)) : isSettled(view.status) ? width : 0;
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
  const counts = Object.entries(by_status)
    .filter(([, n]) => n > 0)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([s, n]) => `${s} ${n}`)
    .join(' · ');
  return `${bar} ${done}/${total}  ${counts || 'no resources yet'}  ${view.name} ${view.status}  ${clock(elapsedMs)}`;
}

export interface WaitOptions {
  /** The generation the wait is for: older states do not count as settled. */
  generation: number;
  /** Give up after this long (a TIMEOUT error); undefined waits forever. */
  timeoutMs?: number | undefined;
  /** Where progress goes; `tty` redraws one line, otherwise a line per change. Undefined: silent. */
  out?: { write(s: string): unknown; isTTY?: boolean } | undefined;
  intervalMs?: number;
}

/**
 * Polls `stack.show` until the stack has settled at (or beyond) `generation`, drawing progress.
 * Returns the last view; a stack that is gone (deleted) resolves to undefined.
 */
export async function waitForStack(client: KilnClient, stack: string, o: WaitOptions): Promise<StackView | undefined> {
  const started = Date.now();
  const interval = o.intervalMs ?? 500;
  let last = '';
  let drawn = false;
  const draw = (view: StackView, final: boolean) => {
    if (!o.out) return;
    const line = progressLine(view, Date.now() - started);
    if (o.out.isTTY) {
      o.out.write(`\r\x1b[K${line}${final ? '\n' : ''}`);
      drawn = !final;
    } else {
      // Plain lines only when something other than the clock changed.
      const key = line.replace(/\s+\d\d:\d\d$/, '');
      if (key !== last || final) o.out.write(`${line}\n`);
      last = key;
    }
  };
  try {
    for (;;) {
      let view: StackView;
      try {
        view = await client.showStack(stack);
      } catch (e) {
        if (e instanceof KilnError && e.code === 'STACK_NOT_FOUND') return undefined;
        throw e;
      }
      const settled = view.generation >= o.generation && isSettled(view.status);
      draw(view, settled);
      if (settled) return view;
      if (o.timeoutMs !== undefined && Date.now() - started > o.timeoutMs) {
        throw new KilnError('TIMEOUT', `stack ${view.name} did not settle within ${Math.round(o.timeoutMs / 1000)} s (status ${view.status})`);
      }
      await new Promise((r) => setTimeout(r, interval));
    }
  } finally {
    if (drawn && o.out) o.out.write('\n');
  }
}
