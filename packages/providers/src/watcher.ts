/**
 * Wakes waits early when the cloud says an object changed, so a wait costs one GET per real
 * change instead of a poll every few hundred milliseconds. Events are a hint: every wait still
 * polls on a slow fallback interval, and a missed event (stream down, gap) only costs latency.
 */
import type { ChangeEvent, Kind } from '@kiln/sim-cloud';
import type { Logger } from '@kiln/core';

/** The change feed of a cloud (the sim's SSE `/events`; a real cloud's notifications could feed it too). */
export interface ChangeFeed {
  follow(opts: { kinds?: Kind[]; signal?: AbortSignal; onEvent: (e: ChangeEvent) => void; onGap?: (seq: number) => void; onOpen?: () => void }): Promise<void>;
}

/** Interest in one object: marked dirty by an event, so a change between a GET and the wait is not lost. */
export interface Interest {
  dirty: boolean;
  wake: (() => void) | undefined;
  /** The object as the last event showed it (undefined obj: deleted); absent when a GET is needed. */
  latest: { obj: unknown } | undefined;
}

export class ChangeWatcher {
  private readonly interests = new Map<string, Set<Interest>>();
  private readonly ac = new AbortController();
  private readonly done: Promise<void>;
  connected = false;

  constructor(
    private readonly feed: ChangeFeed,
    private readonly log: Logger,
    private readonly reconnectMs = 1_000,
  ) {
    this.done = this.run();
  }

  private async run(): Promise<void> {
    while (!this.ac.signal.aborted) {
      try {
        await this.feed.follow({
          signal: this.ac.signal,
          onOpen: () => {
            this.connected = true;
            this.wakeAll();
          },
          onEvent: (e) => (e.id ? this.wakeId(e) : this.wakeAll()),
          onGap: () => this.wakeAll(),
        });
      } catch (e) {
        this.log.debug({ err: (e as Error).message }, 'change feed down; waits fall back to polling');
      }
      this.connected = false;
      if (this.ac.signal.aborted) return;
      await new Promise((r) => setTimeout(r, this.reconnectMs));
    }
  }

  /** The event carries the object as the API shows it, so the woken wait needs no GET. */
  private wakeId(e: ChangeEvent): void {
    const latest = e.type === 'deleted' ? { obj: undefined } : e.object ? { obj: e.object } : undefined;
    for (const i of this.interests.get(e.id!) ?? []) {
      i.latest = latest;
      i.dirty = true;
      i.wake?.();
    }
  }

  private wakeAll(): void {
    for (const set of this.interests.values()) for (const i of set) {
      i.latest = undefined;
      i.dirty = true;
      i.wake?.();
    }
  }

  watch(id: string): Interest {
    const i: Interest = { dirty: false, wake: undefined, latest: undefined };
    let set = this.interests.get(id);
    if (!set) this.interests.set(id, (set = new Set()));
    set.add(i);
    return i;
  }

  unwatch(id: string, i: Interest): void {
    const set = this.interests.get(id);
    set?.delete(i);
    if (set?.size === 0) this.interests.delete(id);
  }

  /** Resolves when the object changed since the last wait, after `ms`, or when the signal aborts (the caller's next sleep throws). */
  wait(i: Interest, ms: number, signal?: AbortSignal): Promise<void> {
    if (i.dirty) {
      i.dirty = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(t);
        signal?.removeEventListener('abort', finish);
        i.wake = undefined;
        i.dirty = false;
        resolve();
      };
      const t = setTimeout(finish, ms);
      signal?.addEventListener('abort', finish, { once: true });
      i.wake = finish;
    });
  }

  async close(): Promise<void> {
    this.ac.abort();
    await this.done;
  }
}
