import type { KilnClient, KilnEvent } from '@kiln/sdk';
import type { SimCloudClient } from '@kiln/sim-cloud';
import { waitFor } from '@kiln/natsd';
import { desiredOf, expectedServerNames, type AckedWrite, type Desired } from './model.js';

/** A stack as the harness knows it: its id and the writes the API acknowledged. */
export interface TrackedStack {
  name: string;
  id: string;
  writes: AckedWrite[];
}

/** Heat status pair of a stack that has reached what `d` asks for; false while converging. */
export function reached(status: string, d: Desired): boolean {
  return d.deleted ? status === 'DELETE_COMPLETE' : status.endsWith('_COMPLETE') && !status.startsWith('DELETE');
}

/**
 * No acknowledged write is lost or doubled: the acknowledged generations of a stack are exactly
 * 1..N (one per write, none shared) and the stack is at generation N.
 */
export async function checkGenerations(client: KilnClient, s: TrackedStack): Promise<string[]> {
  const gens = s.writes.map((w) => w.gen).sort((a, b) => a - b);
  const out: string[] = [];
  if (gens.some((g, i) => g !== i + 1)) out.push(`${s.name}: acknowledged generations ${gens.join(',')} are not 1..${gens.length} (a write shared or skipped a generation)`);
  const shown = await client.showStack(s.id);
  if (shown.generation !== gens.length) out.push(`${s.name}: at generation ${shown.generation}, but ${gens.length} writes were acknowledged`);
  return out;
}

/** Resource types whose physical resources live in the sim cloud. */
const isCloudType = (t: string) => t.startsWith('OS::Nova::') || t.startsWith('OS::Neutron::');

/**
 * The cloud holds exactly the stacks' resources: every (non-implicit) object of the tenant is
 * some live resource's physical resource, every such resource has its object, no idempotency key
 * names two objects, and the servers are those the last desired state of every stack implies
 * (names carry the label and flavor, so a lost update or capacity change shows). Deletes finish
 * asynchronously, so this waits up to `timeoutMs` for the cloud to match before reporting.
 */
export async function checkInventory(client: KilnClient, cloud: SimCloudClient, stacks: TrackedStack[], timeoutMs: number): Promise<string[]> {
  let problems: string[] = [];
  const compare = async (): Promise<boolean> => {
    problems = [];
    const wanted = new Map<string, string>();
    const names: string[] = [];
    for (const s of stacks) {
      const d = desiredOf(s.writes)!;
      names.push(...expectedServerNames(s.name, d));
      if (d.deleted) continue;
      for (const r of (await client.listResources(s.id, { nested_depth: 1, limit: 1000 })).resources) {
        if (!isCloudType(r.type)) continue;
        if (!r.physical_id) problems.push(`${s.name}/${r.path ?? r.name}: no physical resource (${r.status})`);
        else wanted.set(r.physical_id, `${s.name}/${r.path ?? r.name}`);
      }
    }
    const objects = (await cloud.inventory({ tenant: 'demo' })).filter((o) => !o.implicit);
    const keys = new Map<string, string>();
    for (const o of objects) {
      if (!wanted.has(o.id)) problems.push(`leak: ${o.kind} ${o.id} ${o.name} (key ${o.key ?? '-'}, ${o.status}${o.transition ? `, ${String(o.transition)}` : ''}) belongs to no resource`);
      if (o.key) {
        if (keys.has(o.key)) problems.push(`duplicate: ${o.kind} ${o.id} and ${keys.get(o.key)} share key ${o.key}`);
        keys.set(o.key, o.id);
      }
    }
    const have = new Set(objects.map((o) => o.id));
    for (const [id, res] of wanted) if (!have.has(id)) problems.push(`missing: ${res} names ${id}, not in the cloud`);
    const servers = objects.filter((o) => o.kind === 'server').map((o) => o.name).sort();
    names.sort();
    if (servers.join('|') !== names.join('|')) problems.push(`servers ${servers.join(',')} differ from the desired ${names.join(',')}`);
    return problems.length === 0;
  };
  try {
    await waitFor('the cloud to match the stacks', compare, timeoutMs, 500);
    return [];
  } catch {
    return problems.length ? problems : ['inventory check could not run'];
  }
}

/** Every event of a stack (nested resources included), in stream order. */
export async function stackEvents(client: KilnClient, id: string): Promise<KilnEvent[]> {
  const out: KilnEvent[] = [];
  for await (const e of client.events({ stack: id })) out.push(e);
  return out.sort((a, b) => a.seq - b.seq);
}

/** CREATE of CREATE_IN_PROGRESS (Heat actions have no underscore). */
const actionOf = (status: string) => status.slice(0, status.indexOf('_'));

/**
 * No resource (nor the stack) goes backwards: its generations never decrease, and within one
 * generation it never starts an action again after completing it (unless a CHECK found drift in
 * between, which is heal's repair) nor acts after its DELETE_COMPLETE. The stack's last event is
 * its final state.
 */
export function checkEvents(name: string, events: KilnEvent[], final: { generation: number; status: string }): string[] {
  const out: string[] = [];
  const last = new Map<string, { gen: number; completed: Map<string, KilnEvent>; deleted: boolean; seq: number }>();
  const show = (e: KilnEvent) => `seq ${e.seq} ${e.time.slice(11, 23)} ${e.status} ${e.physical_id ?? '-'} "${e.reason ?? ''}"`;
  for (const e of events) {
    const who = e.resource ?? '(stack)';
    const gen = e.generation ?? 0;
    const action = actionOf(e.status);
    let cur = last.get(who);
    if (cur && gen < cur.gen) {
      out.push(`${name} ${who}: generation went back from ${cur.gen} (seq ${cur.seq}) to ${gen} (seq ${e.seq}, ${e.status})`);
      continue;
    }
    if (!cur || gen > cur.gen) {
      cur = { gen, completed: new Map(), deleted: false, seq: e.seq };
      last.set(who, cur);
    }
    cur.seq = e.seq;
    if (action === 'CHECK') {
      cur.completed.clear();
      continue;
    }
    if (cur.deleted && action !== 'DELETE') out.push(`${name} ${who}: at generation ${gen}, ${show(e)} after its DELETE_COMPLETE`);
    const done = cur.completed.get(action);
    if (e.status.endsWith('_IN_PROGRESS') && done) out.push(`${name} ${who}: at generation ${gen}, ${show(e)} after ${show(done)}`);
    if (e.status.endsWith('_COMPLETE')) cur.completed.set(action, e);
    if (e.status === 'DELETE_COMPLETE') cur.deleted = true;
  }
  const stackEventsOnly = events.filter((e) => e.resource === undefined);
  const end = stackEventsOnly.at(-1);
  if (!end) out.push(`${name}: no stack events`);
  else if (end.generation !== final.generation || end.status !== final.status) {
    out.push(`${name}: last stack event is ${end.status} at generation ${end.generation}, the stack is ${final.status} at ${final.generation}`);
  }
  return out;
}
