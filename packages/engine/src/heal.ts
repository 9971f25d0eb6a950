/**
 * Heal: after a resource is settled it keeps observing its physical resource (task types with
 * `observe`), on a jittered per-type interval (a durable timer), and repairs drift: gone ->
 * recreate, broken -> replace, drifted -> update back to the desired properties. Repairs ask the
 * stack supervisor for a permit from a per-stack token bucket, so a mass failure is repaired at a
 * bounded rate instead of as a storm against the cloud.
 */
import { seededRandom } from './hash.js';

export interface HealConfig {
  /** Observe interval of task resources, ms (0 = never observe). Default 60 s. */
  readonly observeIntervalMs: number;
  /** Per type name: its own interval (ms; 0 = never). */
  readonly observeIntervalByType?: Readonly<Record<string, number>>;
  /** Repair permits per stack: sustained rate per second and burst. */
  readonly repairsPerSecond: number;
  readonly repairBurst: number;
  /**
   * The first observation of a new incarnation waits this many intervals (DEFAULT_HEAL: 3; 1 when
   * absent): a resource just made is what was asked for, and during a big create the early
   * observations were most of the cloud calls (2,000 servers: 2.25 calls per resource, 1.30
   * without them). A change notification still wakes it at once.
   */
  readonly firstObserveFactor?: number;
  /**
   * Observations started by the interval timer, at most this many per second per engine node;
   * due ones wait their turn (change notifications, `check` and `mark-unhealthy` are not held).
   * Polling is the fallback behind change notifications: 50,000 resources at a 60 s interval
   * would be 833 GETs/s against the cloud, and during a 10,000-server create those polls were
   * two of its three calls per resource and half the engine's work. With more resources per
   * node than rate × interval, each one is polled less often than its interval. Default 20 (0: no limit).
   */
  readonly observesPerSecond?: number;
}

export const DEFAULT_HEAL: HealConfig = { observeIntervalMs: 60_000, repairsPerSecond: 5, repairBurst: 20, firstObserveFactor: 3, observesPerSecond: 20 };

export function observeInterval(heal: HealConfig, type: string): number {
  return heal.observeIntervalByType?.[type] ?? heal.observeIntervalMs;
}

/** The next observation time: the interval scaled into [75 %, 125 %] by a seed (the message id), so replays agree. */
export function nextObserveAt(now: number, intervalMs: number, seed: string): number {
  return now + Math.round(intervalMs * (0.75 + 0.5 * seededRandom(`observe#${seed}`)()));
}

/** A token bucket as plain data (it lives in the supervisor's record). */
export interface RepairBucket {
  readonly tokens: number;
  readonly at: number;
}

/** Takes a token at `now` if one is available; `waitMs` says when the next one is due otherwise. */
export function takeToken(b: RepairBucket | null, now: number, heal: HealConfig): { bucket: RepairBucket; granted: boolean; waitMs: number } {
  const prev = b ?? { tokens: heal.repairBurst, at: now };
  const tokens = Math.min(heal.repairBurst, prev.tokens + ((now - prev.at) / 1000) * heal.repairsPerSecond);
  if (tokens >= 1) return { bucket: { tokens: tokens - 1, at: now }, granted: true, waitMs: 0 };
  return { bucket: { tokens, at: now }, granted: false, waitMs: Math.max(1, Math.ceil(((1 - tokens) / heal.repairsPerSecond) * 1000)) };
}
