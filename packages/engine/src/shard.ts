/**
 * Shard actors (`shard/<stackId>/<key>`): the fan-out/fan-in tree between a stack supervisor and
 * its resources, so no actor sends or receives more than `leaf` (or `fanout`) messages per
 * generation. A shard keeps no per-member records beyond bitsets of who has reported: its members
 * are given by the desire (a list of names, or an index range of a group whose membership is
 * computed from the group's shape), so a million-member group never becomes a million-entry
 * structure in one actor.
 */
import type { Draft } from 'immer';
import type { ActorBehavior, Effect, MessageContext, Reduction } from '@kiln/runtime';
import type { GroupMemberData } from './builtins.js';
import { produce, undraftEffects } from './draft.js';
import { resourceAddress } from './resource.js';
import type { GroupShape, GroupSpec, MemberReport, ResourceDef, ResourceMsg, ShardMsg, ShardReport } from './types.js';

export const SHARD_ACTOR = 'shard';

export interface TreeConfig {
  /** Members per leaf shard. */
  readonly leaf: number;
  /** Children per inner node (and top-level nodes per supervisor). */
  readonly fanout: number;
}

export const DEFAULT_TREE: TreeConfig = { leaf: 1000, fanout: 1000 };

export interface ShardState {
  readonly gen: number;
  readonly slot: number;
  readonly parent: string;
  readonly total: number;
  /** Per slot: reported settled / failed / gone (bitsets as 32-bit words). */
  readonly settled: readonly number[];
  readonly failed: readonly number[];
  readonly gone: readonly number[];
  /** Slots set in each bitset (leaf: members; inner: children complete / failing). */
  readonly counts: { readonly settled: number; readonly failed: number; readonly gone: number };
  /** Inner nodes: counts reported by each child slot. */
  readonly childCounts: Readonly<Record<number, { settled: number; failed: number; gone: number; total: number }>>;
  readonly inner: boolean;
  readonly reason: string;
  readonly collect: boolean;
  /** Collected member data by slot (inner: per child, a list). */
  readonly collected: Readonly<Record<number, readonly GroupMemberData[]>>;
  readonly lastReport: { readonly settled: number; readonly failed: number; readonly gone: number; readonly done?: boolean } | null;
}

export function initialShardState(): ShardState {
  return { gen: 0, slot: 0, parent: '', total: 0, settled: [], failed: [], gone: [], counts: { settled: 0, failed: 0, gone: 0 }, childCounts: {}, inner: false, reason: '', collect: false, collected: {}, lastReport: null };
}

const bit = (words: readonly number[], i: number) => ((words[i >>> 5] ?? 0) >>> (i & 31)) & 1;
function setBit(words: number[], i: number, on: boolean): void {
  while (words.length <= i >>> 5) words.push(0);
  const w = words[i >>> 5]!;
  words[i >>> 5] = on ? (w | (1 << (i & 31))) >>> 0 : (w & ~(1 << (i & 31))) >>> 0;
}

/** Members of a group shape: index i exists iff not removed and fewer than `count` members precede it. */
export function memberExists(i: number, shape: GroupShape): boolean {
  if (sortedIncludes(shape.removed, i)) return false;
  return i - countBelow(shape.removed, i) < shape.count;
}

/** The index range [0, extent) that holds all members of a shape. */
export function shapeExtent(shape: GroupShape): number {
  let e = shape.count;
  for (const r of shape.removed) if (r < e) e++;
  return e;
}

function countBelow(sorted: readonly number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
const sortedIncludes = (sorted: readonly number[], x: number) => sorted[countBelow(sorted, x)] === x;

/** Top-level nodes covering [0, span): the smallest level whose node count fits the fanout. */
export function treeNodes(lo: number, hi: number, level: number | null, cfg: TreeConfig): Array<{ level: number; lo: number; hi: number }> {
  let size = cfg.leaf;
  let lvl = 0;
  if (level === null) {
    while (Math.ceil((hi - lo) / size) > cfg.fanout) {
      size *= cfg.fanout;
      lvl++;
    }
  } else {
    lvl = level - 1;
    size = cfg.leaf * cfg.fanout ** lvl;
  }
  const out: Array<{ level: number; lo: number; hi: number }> = [];
  for (let a = lo; a < hi; a += size) out.push({ level: lvl, lo: a, hi: Math.min(hi, a + size) });
  return out;
}

export function groupShardAddress(stackId: string, level: number, lo: number): string {
  return `${SHARD_ACTOR}/${stackId}/g${level}.${lo}`;
}

export function namedShardAddress(stackId: string, k: number): string {
  return `${SHARD_ACTOR}/${stackId}/n${k}`;
}

const hasProperties = (p: unknown) => p !== null && typeof p === 'object' && Object.keys(p).length > 0;

/** Replaces the index variable in every string of a member definition. */
export function substituteIndex(value: unknown, indexVar: string, index: number): unknown {
  if (typeof value === 'string') return indexVar && value.includes(indexVar) ? value.split(indexVar).join(String(index)) : value;
  if (Array.isArray(value)) return value.map((v) => substituteIndex(v, indexVar, index));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substituteIndex(v, indexVar, index)]));
  }
  return value;
}

export function memberDef(spec: GroupSpec, index: number): ResourceDef {
  return {
    type: spec.member.type,
    properties: substituteIndex(spec.member.properties, spec.indexVar, index),
    scope: null,
    deletionPolicy: 'Delete',
    updatePolicy: null,
    metadata: spec.member.metadata ?? null,
    ...(spec.member.nestedTemplate ? { nestedTemplate: spec.member.nestedTemplate } : {}),
  };
}

export function shardBehavior(cfg: TreeConfig = DEFAULT_TREE): ActorBehavior<ShardState, ShardMsg> {
  return {
    type: SHARD_ACTOR,
    initial: initialShardState,
    reduce: (state, msg, ctx) => reduceShard(cfg, state, msg as ShardMsg, ctx),
  };
}

export function reduceShard(cfg: TreeConfig, state: ShardState, msg: ShardMsg, ctx: MessageContext): Reduction<ShardState> {
  const effects: Effect[] = [];
  const next = produce(state, (d) => {
    if (msg.kind === 'shardDesire') {
      if (msg.gen <= d.gen) return;
      d.gen = msg.gen;
      d.parent = msg.parent;
      d.settled = [];
      d.failed = [];
      d.gone = [];
      d.counts = { settled: 0, failed: 0, gone: 0 };
      d.childCounts = {};
      d.collected = {};
      d.reason = '';
      d.lastReport = null;
      d.collect = !!msg.group?.spec.collect;
      if (msg.named) {
        d.inner = false;
        d.total = msg.named.length;
        msg.named.forEach((m, slot) => {
          const desire: ResourceMsg = {
            kind: 'desire',
            gen: msg.gen,
            parent: ctx.self,
            slot,
            tenant: msg.tenant,
            stackId: msg.stackId,
            stackName: msg.stackName,
            def: m.def && msg.scope && hasProperties(m.def.properties) ? { ...m.def, scope: msg.scope } : m.def,
            requires: m.requires,
            dependants: m.dependants,
            ...(msg.forget ? { forget: true } : {}),
            ...(msg.eventsRoot ? { eventsRoot: msg.eventsRoot } : {}),
          };
          effects.push({ type: 'send', to: resourceAddress(msg.stackId, m.name), msg: desire });
        });
      } else if (msg.group) {
        const g = msg.group;
        if (g.level > 0) {
          d.inner = true;
          const children = treeNodes(g.lo, g.hi, g.level, cfg);
          d.total = children.length;
          children.forEach((c, slot) => {
            const m: ShardMsg = {
              kind: 'shardDesire',
              gen: msg.gen,
              parent: ctx.self,
              tenant: msg.tenant,
            stackId: msg.stackId,
              stackName: msg.stackName,
              slot,
              group: { ...g, level: c.level, lo: c.lo, hi: c.hi },
              ...(msg.forget ? { forget: true } : {}),
            ...(msg.eventsRoot ? { eventsRoot: msg.eventsRoot } : {}),
            };
            effects.push({ type: 'send', to: groupShardAddress(msg.stackId, c.level, c.lo), msg: m });
          });
        } else {
          d.inner = false;
          d.total = g.hi - g.lo;
          for (let i = g.lo; i < g.hi; i++) {
            const desire: ResourceMsg = {
              kind: 'desire',
              gen: msg.gen,
              parent: ctx.self,
              slot: i - g.lo,
              tenant: msg.tenant,
            stackId: msg.stackId,
              stackName: msg.stackName,
              def: memberExists(i, g.spec.shape) ? memberDef(g.spec, i) : null,
              requires: [],
              dependants: [],
              collect: g.spec.collect,
              ...(msg.forget ? { forget: true } : {}),
            ...(msg.eventsRoot ? { eventsRoot: msg.eventsRoot } : {}),
            };
            effects.push({ type: 'send', to: resourceAddress(msg.stackId, String(i)), msg: desire });
          }
        }
      }
      d.slot = msg.slot;
      maybeReport(d, effects, ctx);
      undraftEffects(effects);
      return;
    }
    if (msg.gen !== d.gen) return;
    if (msg.kind === 'report') {
      onMember(d, msg);
    } else {
      onChild(d, msg);
    }
    maybeReport(d, effects, ctx);
    undraftEffects(effects);
  });
  return { state: next, effects };
}

function onMember(d: Draft<ShardState>, m: MemberReport): void {
  const was = bit(d.settled, m.slot) ? 'settled' : bit(d.gone, m.slot) ? 'gone' : bit(d.failed, m.slot) ? 'failed' : null;
  if (was === m.state && !(d.collect && m.state === 'settled')) return;
  if (was) {
    setBit(d[was] as number[], m.slot, false);
    d.counts[was]--;
  }
  // Repairing: the slot is not done until it reports settled again.
  if (m.state === 'repairing') return;
  setBit(d[m.state] as number[], m.slot, true);
  d.counts[m.state]++;
  if (m.state === 'failed' && !d.reason) d.reason = `${m.name}: ${m.reason ?? 'failed'}`;
  if (d.collect && m.state === 'settled') d.collected[m.slot] = [{ name: m.name, ref: m.ref ?? null, attrs: (m.attrs ?? {}) as Record<string, unknown> }];
  if (d.collect && m.state !== 'settled') delete d.collected[m.slot];
}

function onChild(d: Draft<ShardState>, m: ShardReport): void {
  const slot = m.slot;
  d.childCounts[slot] = { settled: m.settled, failed: m.failed, gone: m.gone, total: m.total };
  const complete = m.settled + m.gone === m.total;
  if (bit(d.settled, slot) !== (complete ? 1 : 0)) d.counts.settled += complete ? 1 : -1;
  if (bit(d.failed, slot) !== (m.failed > 0 ? 1 : 0)) d.counts.failed += m.failed > 0 ? 1 : -1;
  setBit(d.settled as number[], slot, complete);
  setBit(d.failed as number[], slot, m.failed > 0);
  if (m.failed > 0 && !d.reason && m.reason) d.reason = m.reason;
  if (d.collect && m.members) d.collected[slot] = m.members as GroupMemberData[];
}

/** Counts over the members this shard covers (inner nodes sum their children). */
export function shardCounts(s: ShardState): { settled: number; failed: number; gone: number; total: number } {
  if (!s.inner) return { ...s.counts, total: s.total };
  const out = { settled: 0, failed: 0, gone: 0, total: 0 };
  for (const c of Object.values(s.childCounts)) {
    out.settled += c.settled;
    out.failed += c.failed;
    out.gone += c.gone;
    out.total += c.total;
  }
  return out;
}

/**
 * Reports up when every slot is done, and when the failure count changes (so a failure shows at
 * once); nothing per member otherwise, keeping the parent's inbox bounded.
 */
function maybeReport(d: Draft<ShardState>, effects: Effect[], ctx: MessageContext): void {
  const slotsDone = d.inner ? d.counts.settled : d.counts.settled + d.counts.gone;
  const allDone = slotsDone === d.total;
  const failedSlots = d.counts.failed;
  const last = d.lastReport;
  const counts = shardCounts(d as ShardState);
  // A slot that was done and is repairing again is reported too (the stack shows CONVERGING).
  const wasDone = last?.done === true;
  if (!allDone && failedSlots === 0 && !(last && last.failed > 0) && !wasDone) return;
  if (last && last.settled === counts.settled && last.failed === counts.failed && last.gone === counts.gone && !allDone) return;
  if (last && allDone && last.settled === counts.settled && last.gone === counts.gone && last.failed === counts.failed) return;
  d.lastReport = { settled: counts.settled, failed: counts.failed, gone: counts.gone, done: allDone };
  let members: GroupMemberData[] | undefined;
  if (d.collect && allDone) {
    members = [];
    const slots = Object.keys(d.collected).map(Number).sort((a, b) => a - b);
    for (const s of slots) members.push(...(d.collected[s] as GroupMemberData[]));
  }
  const report: ShardReport = {
    kind: 'shardReport',
    shard: ctx.self,
    slot: d.slot,
    gen: d.gen,
    ...counts,
    ...(d.reason ? { reason: d.reason } : {}),
    ...(wasDone && !allDone ? { repairing: true } : {}),
    ...(members ? { members } : {}),
  };
  effects.push({ type: 'send', to: d.parent, msg: report });
}
