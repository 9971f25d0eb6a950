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
import { scopeReadIn } from './template-adapter.js';
import type { BatchDone, DesireScope, GroupShape, GroupSpec, MemberReport, OpenBatch, ResolveScope, ResourceDef, ResourceMsg, ShardMsg, ShardReport } from './types.js';

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
  readonly lastReport: { readonly settled: number; readonly failed: number; readonly gone: number; readonly done?: boolean; readonly unhealthy?: number } | null;
  /** Group leaves: the first member index covered (slot + lo = member index); null for named shards. */
  readonly lo?: number | null;
  /** Leaves: slots repairing drift (bitset; failed slots are in `failed`). */
  readonly repairing?: readonly number[];
  /** Group inner nodes: unhealthy member indices reported by each child slot. */
  readonly childUnhealthy?: Readonly<Record<number, readonly number[]>>;
  /** Group shards: the tree node this shard is (level, index range). */
  readonly range?: { readonly level: number; readonly lo: number; readonly hi: number } | null;
  /** A failure at this generation that is not replaceable (see MemberReport.replaceable). */
  readonly fatal?: boolean;
  /**
   * Rollout: the open batch's member range within this shard and the children still working on
   * it; `open`: the batch's `lo` as the parent sent it (what identifies the batch to the parent),
   * `heard`: the child slots that reported it done (a repeated `batchDone` counts once). Both
   * absent in records written before.
   */
  readonly batch?: {
    readonly lo: number;
    readonly hi: number;
    readonly waiting: number;
    readonly failed: number;
    readonly done: boolean;
    readonly open?: number;
    readonly heard?: readonly number[];
  } | null;
  /** When the shard last heard from its parent's first desire or from a child (see `ShardMsg.again`). */
  readonly heardAt?: number;
}

/**
 * At most this many unhealthy member indices travel in one shard report (scale-in "unhealthy
 * first" picks among them), so a mass failure does not make reports and records large.
 */
export const UNHEALTHY_REPORT_LIMIT = 100;

export function initialShardState(): ShardState {
  return { gen: 0, slot: 0, parent: '', total: 0, settled: [], failed: [], gone: [], counts: { settled: 0, failed: 0, gone: 0 }, childCounts: {}, inner: false, reason: '', collect: false, collected: {}, lastReport: null, lo: null, repairing: [], childUnhealthy: {} };
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
  if (msg.kind === 'report') return memberReported(state, msg, effects, ctx);
  const next = produce(state, (d) => {
    if (msg.kind === 'shardDesire') {
      // A probe (a repeat without members, see RESEND_SPEC_LIMIT) is never taken as a new generation.
      const probe = !msg.named && !msg.group;
      if (msg.gen < d.gen || (probe && msg.gen > d.gen)) return;
      if (msg.gen === d.gen) {
        // The parent sent this generation again (it has not heard this shard reach it: a desire
        // or a report may have been lost): desire again only the children that have not
        // reported, and report again what was last reported. Nothing is reset.
        if (d.parent && ctx.now - (d.heardAt ?? 0) >= (msg.again?.quietMs ?? 0)) resendDesires(cfg, d as ShardState, msg, effects, ctx);
        if (d.lastReport) maybeReport(d, effects, ctx, true);
        undraftEffects(effects);
        return;
      }
      d.gen = msg.gen;
      d.heardAt = ctx.now;
      d.parent = msg.parent;
      d.settled = [];
      d.failed = [];
      d.gone = [];
      d.counts = { settled: 0, failed: 0, gone: 0 };
      d.childCounts = {};
      d.collected = {};
      d.reason = '';
      d.lastReport = null;
      d.repairing = [];
      d.childUnhealthy = {};
      d.lo = msg.group && msg.group.level === 0 ? msg.group.lo : null;
      d.range = msg.group ? { level: msg.group.level, lo: msg.group.lo, hi: msg.group.hi } : null;
      d.batch = null;
      d.fatal = false;
      d.collect = !!msg.group?.spec.collect;
      if (msg.named) {
        d.inner = false;
        d.total = msg.named.length;
        msg.named.forEach((_, slot) => sendNamedDesire(msg, slot, effects, ctx));
      } else if (msg.group) {
        const g = msg.group;
        if (g.level > 0) {
          d.inner = true;
          const children = treeNodes(g.lo, g.hi, g.level, cfg);
          d.total = children.length;
          children.forEach((c, slot) => sendChildDesire(msg, c, slot, effects, ctx));
        } else {
          d.inner = false;
          d.total = g.hi - g.lo;
          for (let i = g.lo; i < g.hi; i++) sendMemberDesire(msg, i, effects, ctx);
        }
      }
      d.slot = msg.slot;
      maybeReport(d, effects, ctx);
      undraftEffects(effects);
      return;
    }
    if (msg.gen !== d.gen) return;
    if (msg.kind === 'openBatch') {
      const b = d.batch;
      if (b && b.open === msg.lo) openedAgain(cfg, d, effects, ctx);
      // A late copy of a batch before the open one (batches of a generation only move forward).
      else if (b?.open !== undefined && msg.lo < b.open) return;
      else openBatch(cfg, d, msg, effects, ctx);
    } else if (msg.kind === 'batchDone') {
      const b = d.batch;
      if (!b || b.done || (msg.lo !== undefined && msg.lo !== b.lo)) return;
      if (msg.slot !== undefined && b.heard?.includes(msg.slot)) return;
      d.batch = { ...b, waiting: b.waiting - 1, failed: b.failed + msg.failed, ...(msg.slot !== undefined ? { heard: [...(b.heard ?? []), msg.slot] } : {}) };
      batchProgress(d, effects);
    } else {
      d.heardAt = ctx.now;
      onChild(d, msg);
      maybeReport(d, effects, ctx);
    }
    undraftEffects(effects);
  });
  return { state: next, effects };
}

type ShardDesire = Extract<ShardMsg, { kind: 'shardDesire' }>;

function sendNamedDesire(msg: ShardDesire, slot: number, effects: Effect[], ctx: MessageContext): void {
  const m = msg.named![slot]!;
  const desire: ResourceMsg = {
    kind: 'desire',
    gen: msg.gen,
    parent: ctx.self,
    slot,
    tenant: msg.tenant,
    stackId: msg.stackId,
    stackName: msg.stackName,
    // The scope goes only with expressions to resolve (metadata and update_policy feed resource_facade and group policies).
    def: m.def && msg.scope && (hasProperties(m.def.properties) || hasProperties(m.def.metadata) || hasProperties(m.def.updatePolicy)) ? { ...m.def, scope: scopeFor(m.def, msg.scope) } : m.def,
    requires: m.requires,
    dependants: m.dependants,
    ...(msg.forget ? { forget: true } : {}),
    ...(msg.eventsRoot ? { eventsRoot: msg.eventsRoot } : {}),
  };
  effects.push({ type: 'send', to: resourceAddress(msg.stackId, m.name), msg: desire });
}

/**
 * The scope with only the files and parameters the definition's own expressions read (get_file,
 * get_param), and without the stack's id and name (see DesireScope): the whole files map and
 * parameter set would otherwise travel in every desire and sit in every resource record. A
 * nested resource's child stack gets its files from `nestedTemplate`, not from here.
 */
function scopeFor(def: ResourceDef, scope: ResolveScope): DesireScope {
  const read = scopeReadIn([def.properties, def.metadata, def.updatePolicy]);
  const { stackId: _id, stackName: _name, ...rest } = scope;
  return { ...rest, files: only(scope.files, read.files), params: only(scope.params, read.params) };
}

/** The entries of `all` named in `keys` (all of them when `keys` is null). */
function only<T>(all: Record<string, T>, keys: ReadonlySet<string> | null): Record<string, T> {
  if (keys === null) return all;
  const out: Record<string, T> = {};
  for (const k of keys) if (Object.hasOwn(all, k)) out[k] = all[k]!;
  return out;
}

function sendChildDesire(msg: ShardDesire, c: { level: number; lo: number; hi: number }, slot: number, effects: Effect[], ctx: MessageContext): void {
  const m: ShardMsg = {
    kind: 'shardDesire',
    gen: msg.gen,
    parent: ctx.self,
    tenant: msg.tenant,
    stackId: msg.stackId,
    stackName: msg.stackName,
    slot,
    group: { ...msg.group!, level: c.level, lo: c.lo, hi: c.hi },
    ...(msg.forget ? { forget: true } : {}),
    ...(msg.eventsRoot ? { eventsRoot: msg.eventsRoot } : {}),
    ...(msg.again ? { again: msg.again } : {}),
  };
  effects.push({ type: 'send', to: groupShardAddress(msg.stackId, c.level, c.lo), msg: m });
}

/** Whether member `i` of a leaf's desire rolls out (acts only in its batch). */
function rollsOut(g: GroupSpec, i: number): boolean {
  const prev = g.rollout?.prev;
  // Rolling out: existing members (all, for a batched create) act in their batch only.
  return memberExists(i, g.shape) && !!g.rollout && (prev === null || (prev !== undefined && memberExists(i, prev)));
}

function sendMemberDesire(msg: ShardDesire, i: number, effects: Effect[], ctx: MessageContext): void {
  const g = msg.group!;
  const exists = memberExists(i, g.spec.shape);
  const rolling = rollsOut(g.spec, i);
  const desire: ResourceMsg = {
    kind: 'desire',
    gen: msg.gen,
    parent: ctx.self,
    slot: i - g.lo,
    tenant: msg.tenant,
    stackId: msg.stackId,
    stackName: msg.stackName,
    def: exists ? memberDef(g.spec, i) : null,
    requires: [],
    dependants: [],
    collect: g.spec.collect,
    ...(rolling ? { rolling: true } : {}),
    ...(msg.forget ? { forget: true } : {}),
    ...(msg.eventsRoot ? { eventsRoot: msg.eventsRoot } : {}),
  };
  effects.push({ type: 'send', to: resourceAddress(msg.stackId, String(i)), msg: desire });
}

/**
 * A repeated desire of the shard's own generation (and nothing heard from the children for the
 * sender's period): the children that have not reported reaching it are desired again (a child at that generation ignores the repeat while it works, and
 * reports again when it already reached it). Members of a rollout outside the batches opened so
 * far are not expected to report yet and are skipped.
 */
function resendDesires(cfg: TreeConfig, s: ShardState, msg: ShardDesire, effects: Effect[], ctx: MessageContext): void {
  const reported = (slot: number) => bit(s.settled, slot) || bit(s.gone, slot) || bit(s.failed, slot);
  if (msg.named) {
    for (let slot = 0; slot < msg.named.length; slot++) if (!reported(slot)) sendNamedDesire(msg, slot, effects, ctx);
    return;
  }
  const g = msg.group;
  if (!g) return;
  if (g.level > 0) {
    treeNodes(g.lo, g.hi, g.level, cfg).forEach((c, slot) => {
      const got = s.childCounts[slot];
      if (!got || got.settled + got.gone + got.failed < got.total) sendChildDesire(msg, c, slot, effects, ctx);
    });
    return;
  }
  const opened = s.batch ? s.batch.hi : g.lo;
  for (let i = g.lo; i < g.hi; i++) {
    if (reported(i - g.lo)) continue;
    const rolling = rollsOut(g.spec, i);
    if (i >= opened && rolling) continue;
    sendMemberDesire(msg, i, effects, ctx);
    // A member of the open batch may have lost its `go` as well (a repeat is harmless).
    if (rolling && s.batch && i >= s.batch.lo) effects.push({ type: 'send', to: resourceAddress(msg.stackId, String(i)), msg: { kind: 'go', gen: s.gen } satisfies ResourceMsg });
  }
}

/**
 * A member's report: one per member per generation, the shard's hot path. It works on a plain
 * copy of the few parts a report changes instead of an immer draft (drafting cost a tenth of an
 * engine's CPU in a large group create); the helpers are the same as for drafts.
 */
function memberReported(state: ShardState, msg: MemberReport, effects: Effect[], ctx: MessageContext): Reduction<ShardState> {
  if (msg.gen !== state.gen) return { state, effects };
  const d = {
    ...state,
    settled: [...state.settled],
    failed: [...state.failed],
    gone: [...state.gone],
    repairing: [...(state.repairing ?? [])],
    counts: { ...state.counts },
    collected: state.collect ? { ...state.collected } : state.collected,
    heardAt: ctx.now,
  } as Draft<ShardState>;
  onMember(d, msg);
  maybeReport(d, effects, ctx);
  batchProgress(d, effects);
  return { state: d as ShardState, effects };
}

/** Opens a rollout batch: a leaf tells its members in range to go, an inner node its children. */
function openBatch(cfg: TreeConfig, d: Draft<ShardState>, m: OpenBatch, effects: Effect[], ctx: MessageContext): void {
  const r = d.range;
  if (!r) return;
  const lo = Math.max(m.lo, r.lo);
  const hi = Math.min(m.hi, r.hi);
  if (d.inner) {
    const children = batchChildren(cfg, r, lo, hi);
    for (const c of children) sendOpenBatch(d, c, lo, hi, effects, ctx);
    d.batch = { lo, hi, waiting: children.length, failed: 0, done: false, open: m.lo, heard: [] };
  } else {
    for (let i = lo; i < hi; i++) {
      const go: ResourceMsg = { kind: 'go', gen: d.gen };
      effects.push({ type: 'send', to: resourceAddress(ctx.self.split('/')[1]!, String(i)), msg: go });
    }
    d.batch = { lo, hi, waiting: 0, failed: 0, done: false, open: m.lo };
  }
  batchProgress(d, effects);
}

/** An inner node's children covering the batch range [lo, hi), with their slots. */
function batchChildren(cfg: TreeConfig, r: NonNullable<ShardState['range']>, lo: number, hi: number): Array<{ level: number; lo: number; hi: number; slot: number }> {
  return treeNodes(r.lo, r.hi, r.level, cfg)
    .map((c, slot) => ({ ...c, slot }))
    .filter((c) => c.lo < hi && c.hi > lo);
}

function sendOpenBatch(d: Draft<ShardState>, c: { level: number; lo: number }, lo: number, hi: number, effects: Effect[], ctx: MessageContext): void {
  const open: OpenBatch = { kind: 'openBatch', gen: d.gen, lo, hi };
  effects.push({ type: 'send', to: groupShardAddress(ctx.self.split('/')[1]!, c.level, c.lo), msg: open });
}

/**
 * The open batch opened again (the parent has not heard it done: an `openBatch` or `batchDone`
 * may have been lost): done, it says so again; an inner node opens it again in the children
 * that have not said done. A leaf still working does nothing (a member's lost `go` is sent again
 * with its repeated desire, see resendDesires).
 */
function openedAgain(cfg: TreeConfig, d: Draft<ShardState>, effects: Effect[], ctx: MessageContext): void {
  const b = d.batch!;
  if (b.done) {
    effects.push({ type: 'send', to: d.parent, msg: batchDoneOf(d, b.failed) });
    return;
  }
  if (!d.inner || !d.range) return;
  for (const c of batchChildren(cfg, d.range, b.lo, b.hi)) if (!b.heard?.includes(c.slot)) sendOpenBatch(d, c, b.lo, b.hi, effects, ctx);
}

function batchDoneOf(d: Draft<ShardState>, failed: number): BatchDone {
  const open = d.batch?.open;
  return { kind: 'batchDone', gen: d.gen, failed, slot: d.slot, ...(open !== undefined ? { lo: open } : {}) };
}

/** Reports the open batch done up once every member of its range is (a leaf) or every child said so (inner). */
function batchProgress(d: Draft<ShardState>, effects: Effect[]): void {
  const b = d.batch;
  if (!b || b.done) return;
  let failed = b.failed;
  if (!d.inner) {
    const base = d.range?.lo ?? 0;
    failed = 0;
    for (let i = b.lo; i < b.hi; i++) {
      const slot = i - base;
      if (!bit(d.settled, slot) && !bit(d.gone, slot) && !bit(d.failed, slot)) return;
      failed += bit(d.failed, slot);
    }
  } else if (b.waiting > 0) return;
  d.batch = { ...b, failed, done: true };
  effects.push({ type: 'send', to: d.parent, msg: batchDoneOf(d, failed) });
}

function onMember(d: Draft<ShardState>, m: MemberReport): void {
  if (d.repairing === undefined) d.repairing = [];
  if (!!bit(d.repairing, m.slot) !== (m.state === 'repairing')) setBit(d.repairing as number[], m.slot, m.state === 'repairing');
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
  if (m.state === 'failed' && !m.replaceable) d.fatal = true;
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
  if (m.failed > 0 && !m.replaceable) d.fatal = true;
  if (d.collect && m.members) d.collected[slot] = m.members as GroupMemberData[];
  if (d.childUnhealthy === undefined) d.childUnhealthy = {};
  if (m.unhealthy?.length) d.childUnhealthy[slot] = [...m.unhealthy];
  else delete d.childUnhealthy[slot];
}

/** Group shards: member indices that failed or are repairing (at most UNHEALTHY_REPORT_LIMIT). */
export function unhealthyMembers(s: ShardState): number[] {
  const out: number[] = [];
  if (s.inner) {
    for (const k of Object.keys(s.childUnhealthy ?? {}).map(Number).sort((a, b) => a - b)) {
      for (const i of s.childUnhealthy![k]!) if (out.length < UNHEALTHY_REPORT_LIMIT) out.push(i);
    }
    return out;
  }
  if (s.lo === null || s.lo === undefined) return out;
  const words = Math.max(s.failed.length, s.repairing?.length ?? 0);
  for (let w = 0; w < words && out.length < UNHEALTHY_REPORT_LIMIT; w++) {
    const bits = ((s.failed[w] ?? 0) | (s.repairing?.[w] ?? 0)) >>> 0;
    for (let b = 0; b < 32 && out.length < UNHEALTHY_REPORT_LIMIT; b++) if ((bits >>> b) & 1) out.push(s.lo + w * 32 + b);
  }
  return out;
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
 * once); nothing per member otherwise, keeping the parent's inbox bounded. `again`: the parent
 * asked again (its desire repeated), so the report goes even when it is the one sent before.
 */
function maybeReport(d: Draft<ShardState>, effects: Effect[], ctx: MessageContext, again = false): void {
  const slotsDone = d.inner ? d.counts.settled : d.counts.settled + d.counts.gone;
  const allDone = slotsDone === d.total;
  const failedSlots = d.counts.failed;
  const last = d.lastReport;
  const counts = shardCounts(d as ShardState);
  // Members that failed or are repairing travel up (scale-in "unhealthy first" picks them).
  const unhealthy = unhealthyMembers(d as ShardState);
  const lastUnhealthy = last?.unhealthy ?? 0;
  // A slot that was done and is repairing again is reported too (the stack shows CONVERGING).
  const wasDone = last?.done === true;
  if (!again && !allDone && failedSlots === 0 && !(last && last.failed > 0) && !wasDone && unhealthy.length === 0 && lastUnhealthy === 0) return;
  const same = !!last && last.settled === counts.settled && last.failed === counts.failed && last.gone === counts.gone && lastUnhealthy === unhealthy.length;
  if (same && !again) return;
  d.lastReport = { settled: counts.settled, failed: counts.failed, gone: counts.gone, done: allDone, ...(unhealthy.length ? { unhealthy: unhealthy.length } : {}) };
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
    ...(counts.failed > 0 && !d.fatal ? { replaceable: true } : {}),
    ...(wasDone && !allDone ? { repairing: true } : {}),
    ...(members ? { members } : {}),
    ...(unhealthy.length ? { unhealthy } : {}),
  };
  effects.push({ type: 'send', to: d.parent, msg: report });
}
