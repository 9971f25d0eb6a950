import { KilnError } from '@kiln/core';
import type { CallOptions, KilnClient } from './client.js';

/** A member's state as an autoscaler cares about it. */
export type MemberState = 'healthy' | 'in_progress' | 'failed' | 'deleted' | 'unknown';

export interface GroupMember {
  /** Member name within the group (`0`, `1`, …). */
  name: string;
  /** `group/member`, what `resource.show` takes. */
  path: string;
  type: string;
  status: string;
  status_reason?: string;
  physical_id?: string;
  generation: number;
  state: MemberState;
}

export interface GroupHealth {
  stack: string;
  group: string;
  type: string;
  /** The group resource's own status (e.g. UPDATE_IN_PROGRESS while it scales). */
  status: string;
  members: GroupMember[];
  /** Members by state; `total` excludes deleted ones. */
  counts: Record<MemberState, number> & { total: number };
}

/** Heat statuses are `<ACTION>_<STATE>`: what that means for a member's health. */
export function memberState(status: string): MemberState {
  if (status === 'DELETE_COMPLETE') return 'deleted';
  if (status.endsWith('_FAILED')) return 'failed';
  if (status.endsWith('_IN_PROGRESS') || status === 'INIT_COMPLETE') return 'in_progress';
  if (status.endsWith('_COMPLETE')) return 'healthy';
  return 'unknown';
}

/** Reads the group and its members from `resource.list` with one level of nesting. */
export async function groupHealth(client: KilnClient, stack: string, group: string, o: CallOptions = {}): Promise<GroupHealth> {
  let self: { type: string; status: string } | undefined;
  const members: GroupMember[] = [];
  const prefix = `${group}/`;
  for await (const r of client.resources(stack, { nested_depth: 1 }, o)) {
    if (r.path === undefined) {
      if (r.name === group) self = { type: r.type, status: r.status };
    } else if (r.path.startsWith(prefix) && !r.path.slice(prefix.length).includes('/')) {
      const m: GroupMember = { name: r.name, path: r.path, type: r.type, status: r.status, generation: r.generation, state: memberState(r.status) };
      if (r.status_reason !== undefined) m.status_reason = r.status_reason;
      if (r.physical_id !== undefined) m.physical_id = r.physical_id;
      members.push(m);
    }
  }
  if (!self) throw new KilnError('RESOURCE_NOT_FOUND', `stack '${stack}' has no resource '${group}'`, { path: 'group' });
  const counts = { total: 0, healthy: 0, in_progress: 0, failed: 0, deleted: 0, unknown: 0 };
  for (const m of members) {
    counts[m.state]++;
    if (m.state !== 'deleted') counts.total++;
  }
  // Numeric member names sort as numbers (2 before 10).
  members.sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
  return { stack, group, type: self.type, status: self.status, members, counts };
}
