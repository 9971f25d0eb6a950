import { KilnError } from '@kiln/core';

/**
 * Resource dependency graph over integer ids: `requires[i]` lists what resource i needs to
 * exist first. Building, ordering and cycle search are linear in nodes + edges, so 50K
 * resources cost milliseconds.
 */
export class DependencyGraph {
  private readonly index = new Map<string, number>();
  private readonly requires: number[][];
  private requiredByCache: number[][] | undefined;
  private levelCache: number[] | undefined;

  constructor(readonly names: readonly string[], requires: readonly (readonly string[])[]) {
    names.forEach((n, i) => this.index.set(n, i));
    this.requires = requires.map((deps) => {
      const ids = new Set<number>();
      for (const d of deps) {
        const id = this.index.get(d);
        if (id !== undefined) ids.add(id);
      }
      return [...ids];
    });
    const cycle = this.findCycle();
    if (cycle) {
      throw new KilnError('DEPENDENCY_CYCLE', `Circular Dependency Found: ${cycle.join(' -> ')}`, {
        path: `resources.${cycle[0]}`,
        detail: { cycle },
      });
    }
  }

  has(name: string): boolean {
    return this.index.has(name);
  }

  /** What `name` needs first (its direct dependencies). */
  requirementsOf(name: string): string[] {
    const id = this.index.get(name);
    return id === undefined ? [] : this.requires[id]!.map((d) => this.names[d]!);
  }

  /** What needs `name` (its direct dependents). */
  requiredBy(name: string): string[] {
    const id = this.index.get(name);
    return id === undefined ? [] : this.reverse()[id]!.map((d) => this.names[d]!);
  }

  private reverse(): number[][] {
    if (!this.requiredByCache) {
      const rev: number[][] = this.names.map(() => []);
      this.requires.forEach((deps, i) => {
        for (const d of deps) rev[d]!.push(i);
      });
      this.requiredByCache = rev;
    }
    return this.requiredByCache;
  }

  /** Level of each node: 0 for no dependencies, else 1 + the highest level it requires. */
  private levelsById(): number[] {
    if (!this.levelCache) {
      const level = new Array<number>(this.names.length).fill(0);
      for (const id of this.topo()) {
        let l = 0;
        for (const d of this.requires[id]!) l = Math.max(l, level[d]! + 1);
        level[id] = l;
      }
      this.levelCache = level;
    }
    return this.levelCache;
  }

  /** Creation order: every resource after everything it requires (stable in template order). */
  order(): string[] {
    return this.topo().map((i) => this.names[i]!);
  }

  /** Groups of resources that can be created in parallel, in creation order. */
  levels(): string[][] {
    const level = this.levelsById();
    const out: string[][] = [];
    level.forEach((l, i) => (out[l] ??= []).push(this.names[i]!));
    return out;
  }

  levelOf(name: string): number | undefined {
    const id = this.index.get(name);
    return id === undefined ? undefined : this.levelsById()[id];
  }

  /** Kahn's algorithm; returns fewer ids than nodes when there is a cycle. */
  private topo(): number[] {
    const n = this.names.length;
    const pending = this.requires.map((d) => d.length);
    const rev = this.reverse();
    const out: number[] = [];
    for (let i = 0; i < n; i++) if (pending[i] === 0) out.push(i);
    for (let k = 0; k < out.length; k++) {
      for (const dep of rev[out[k]!]!) if (--pending[dep]! === 0) out.push(dep);
    }
    return out;
  }

  /** One cycle, named from a node back to itself, or undefined when the graph is acyclic. */
  private findCycle(): string[] | undefined {
    const done = new Uint8Array(this.names.length);
    const sorted = this.topo();
    if (sorted.length === this.names.length) return undefined;
    for (const i of sorted) done[i] = 1;
    // Every node left over still requires another left-over node: walking those edges must
    // come back to a node already on the walk.
    let start = 0;
    while (done[start]) start++;
    const seenAt = new Map<number, number>();
    const walk: number[] = [];
    let cur = start;
    while (!seenAt.has(cur)) {
      seenAt.set(cur, walk.length);
      walk.push(cur);
      cur = this.requires[cur]!.find((d) => !done[d])!;
    }
    const cycle = walk.slice(seenAt.get(cur)!).map((i) => this.names[i]!);
    cycle.push(cycle[0]!);
    return cycle;
  }
}
