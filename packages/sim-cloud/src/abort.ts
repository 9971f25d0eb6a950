import { setMaxListeners } from 'node:events';

const listenersOf = new WeakMap<AbortSignal, Set<() => void>>();

/**
 * Runs `listener` once when `signal` aborts; returns its removal. A task signal is shared by every
 * task of a partition, so thousands of calls and waits may listen to it at once: they share one
 * real listener per signal, and adding or removing one costs a Set operation, not an EventTarget
 * registration. A signal that has already aborted never calls `listener` (check `aborted` first).
 */
export function onAbort(signal: AbortSignal | undefined, listener: () => void): () => void {
  if (!signal) return noop;
  let set = listenersOf.get(signal);
  if (!set) {
    const fresh = new Set<() => void>();
    set = fresh;
    listenersOf.set(signal, fresh);
    // Others may listen to the shared signal too: no MaxListenersExceededWarning for them.
    setMaxListeners(0, signal);
    signal.addEventListener(
      'abort',
      () => {
        const all = [...fresh];
        fresh.clear();
        for (const l of all) l();
      },
      { once: true },
    );
  }
  const own = set;
  // A wrapper per registration, so the same function registered twice is removed once per removal.
  const entry = () => listener();
  own.add(entry);
  return () => {
    own.delete(entry);
  };
}

function noop(): void {}
