import { fnv1a } from './address.js';

/** A partition lease as stored in the leases bucket. `node` is '' once released. */
export interface LeaseValue {
  node: string;
  /** Wall-clock ms since epoch after which anyone may take the partition over. */
  exp: number;
}

/** A node's liveness announcement (membership key), refreshed every lease tick. */
export interface MemberValue {
  exp: number;
}

export interface LeaseView {
  readonly value: LeaseValue;
  readonly revision: number;
}

/** Free for the taking: never claimed, released, or not renewed in time by its holder. */
export function isClaimable(lease: LeaseView | undefined, now: number): boolean {
  return !lease || lease.value.node === '' || lease.value.exp < now;
}

/** The most partitions one node should hold when `alive` nodes share `partitions`. */
export function fairShare(partitions: number, alive: number): number {
  return Math.ceil(partitions / Math.max(1, alive));
}

/**
 * Rendezvous (highest-random-weight) preference of `node` for `partition`: nodes claim and
 * keep the partitions they rank highest for, so concurrent claimers rarely collide and a
 * rebalance moves few partitions.
 */
export function preference(partition: number, node: string): number {
  return fnv1a(`${partition}:${node}`);
}

/** Whether `node` ranks first for `partition` among `alive` (which contains `node`). */
export function isPreferred(partition: number, node: string, alive: readonly string[]): boolean {
  const mine = preference(partition, node);
  return alive.every((other) => other === node || preference(partition, other) < mine || (preference(partition, other) === mine && other < node));
}

export interface LeasePlan {
  readonly claim: number[];
  readonly release: number[];
}

/**
 * What one node does on a lease tick, given who is alive, what it holds and what is claimable:
 * hold at most the fair share (ceil); claim claimable partitions up to it, those it is preferred
 * for first; release the excess, those it is least preferred for first; above the floor, give
 * one back while another node is below it. Every node converges to floor or ceil.
 */
export function planLeases(args: {
  partitions: number;
  node: string;
  alive: readonly string[];
  owned: ReadonlySet<number>;
  claimable: readonly number[];
  /** Partitions held by each other live node (from the lease view). */
  others?: readonly number[];
}): LeasePlan {
  const { partitions, node, alive, owned } = args;
  const share = fairShare(partitions, alive.length);
  const floor = Math.floor(partitions / Math.max(1, alive.length));
  const leastPreferred = () => [...owned].sort((a, b) => preference(a, node) - preference(b, node));
  if (owned.size > share) return { claim: [], release: leastPreferred().slice(0, owned.size - share) };
  // Everyone at the ceiling but someone below the floor (e.g. 6/6/4 of 16): give one back.
  if (owned.size > floor && (args.others ?? []).some((c) => c < floor)) return { claim: [], release: leastPreferred().slice(0, 1) };
  const want = share - owned.size;
  const candidates = args.claimable.filter((p) => !owned.has(p));
  const preferred = candidates.filter((p) => isPreferred(p, node, alive));
  const others = candidates.filter((p) => !isPreferred(p, node, alive));
  return { claim: [...preferred, ...others].slice(0, want), release: [] };
}

/**
 * The monotonic instant (performance.now()) until which a holder may work a partition whose
 * lease renewal was SENT at `sentAt`: the lease was written to expire leaseMs after that, so
 * stopping `marginMs` earlier leaves the margin for clock skew and a pause between the check and
 * a write reaching the server.
 */
export function validUntil(sentAt: number, leaseMs: number, marginMs: number): number {
  return sentAt + leaseMs - marginMs;
}
