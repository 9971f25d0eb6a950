import { KilnError } from '@kiln/core';
import type {
  AdoptStackInput,
  CreateStackInput,
  EngineStatus,
  GenerationRef,
  ListResourcesQuery,
  ListStacksQuery,
  Page,
  PatchStackInput,
  PreviewResource,
  ResourceDetail,
  StackBackend,
  StackSource,
  StackSummary,
  StackView,
  UpdateStackInput,
  ValidationResult,
} from '../src/backend.js';

/**
 * A test double of the engine (not of NATS): stacks in plain memory, so API tests exercise the
 * request path through a real nats-server before the engine exists. Templates are JSON text or
 * objects with a `resources` map; every resource is reported CREATE_COMPLETE.
 */
interface Stored {
  id: string;
  tenant: string;
  name: string;
  generation: number;
  history: StackSource[];
  source: StackSource;
  createdAt: string;
  tags?: string[] | undefined;
  unhealthy: Map<string, string | undefined>;
  signals: Array<{ resource: string; data: unknown }>;
  capacity: Map<string, number>;
}

function parse(doc: StackSource['template']): Record<string, unknown> {
  let t: unknown = doc;
  if (typeof doc === 'string') {
    try {
      t = JSON.parse(doc);
    } catch {
      throw new KilnError('TEMPLATE_INVALID', 'template is not JSON (the test backend reads JSON only)', { path: 'template' });
    }
  }
  if (t === null || typeof t !== 'object' || !('heat_template_version' in t)) {
    throw new KilnError('TEMPLATE_INVALID', 'missing heat_template_version', { path: 'template.heat_template_version' });
  }
  return t as Record<string, unknown>;
}

function resourcesOf(src: StackSource): Array<[string, string]> {
  const res = (parse(src.template).resources ?? {}) as Record<string, { type?: string }>;
  return Object.entries(res).map(([n, r]) => [n, r.type ?? 'OS::Heat::None']);
}

export class MemoryBackend implements StackBackend {
  readonly stacks = new Map<string, Stored>();
  private nextId = 1;
  /** Calls per method, to prove that refused requests have no side effects. */
  readonly writes: string[] = [];

  private find(tenant: string, ref: string): Stored | undefined {
    const byId = this.stacks.get(ref);
    // The double is deliberately not tenant-scoped on ids: the API's own tenant check is under test.
    if (byId) return byId;
    return [...this.stacks.values()].find((s) => s.tenant === tenant && s.name === ref);
  }

  private must(tenant: string, ref: string): Stored {
    const s = this.find(tenant, ref);
    if (!s) throw new KilnError('STACK_NOT_FOUND', `stack '${ref}' not found`);
    return s;
  }

  private gen(s: Stored): GenerationRef {
    return { id: s.id, name: s.name, generation: s.generation };
  }

  private bump(s: Stored, src: StackSource): GenerationRef {
    s.history.push(s.source);
    s.source = src;
    s.generation++;
    return this.gen(s);
  }

  private view(s: Stored): StackView {
    const resources = resourcesOf(s.source);
    const status = s.generation === 1 ? 'CREATE_COMPLETE' : 'UPDATE_COMPLETE';
    const params = s.source.parameters ?? {};
    return {
      id: s.id,
      name: s.name,
      tenant: s.tenant,
      status,
      generation: s.generation,
      createdAt: s.createdAt,
      updatedAt: s.createdAt,
      tags: s.tags,
      parameters: params,
      outputs: Object.keys((parse(s.source.template).outputs ?? {}) as object).map((key) => ({ key, value: `${key}-of-${s.name}` })),
      resources: { total: resources.length, byStatus: resources.length ? { CREATE_COMPLETE: resources.length } : {} },
    };
  }

  async createStack(tenant: string, input: CreateStackInput): Promise<GenerationRef> {
    resourcesOf(input);
    if ([...this.stacks.values()].some((s) => s.tenant === tenant && s.name === input.name)) {
      throw new KilnError('STACK_EXISTS', `stack '${input.name}' exists`, { path: 'body.name' });
    }
    this.writes.push('create');
    const s: Stored = {
      id: `stk-${this.nextId++}`,
      tenant,
      name: input.name,
      generation: 1,
      history: [],
      source: input,
      createdAt: new Date().toISOString(),
      tags: input.tags,
      unhealthy: new Map(),
      signals: [],
      capacity: new Map(),
    };
    this.stacks.set(s.id, s);
    return this.gen(s);
  }

  async updateStack(tenant: string, ref: string, input: UpdateStackInput): Promise<GenerationRef> {
    resourcesOf(input);
    this.writes.push('update');
    return this.bump(this.must(tenant, ref), input);
  }

  async patchStack(tenant: string, ref: string, input: PatchStackInput): Promise<GenerationRef> {
    const s = this.must(tenant, ref);
    const params = { ...(s.source.parameters ?? {}), ...(input.parameters ?? {}) };
    for (const p of input.clearParameters ?? []) delete params[p];
    this.writes.push('patch');
    return this.bump(s, { ...s.source, ...(input.template ? { template: input.template } : {}), parameters: params });
  }

  async deleteStack(tenant: string, ref: string): Promise<GenerationRef> {
    const s = this.must(tenant, ref);
    this.writes.push('delete');
    this.stacks.delete(s.id);
    return { ...this.gen(s), generation: s.generation + 1 };
  }

  async findStack(tenant: string, ref: string): Promise<StackSummary | undefined> {
    return this.getStack(tenant, ref);
  }

  async getStack(tenant: string, ref: string): Promise<StackView | undefined> {
    const s = this.find(tenant, ref);
    return s && this.view(s);
  }

  async listStacks(tenant: string, q: ListStacksQuery): Promise<Page<StackSummary>> {
    const all = [...this.stacks.values()]
      .filter((s) => s.tenant === tenant && (q.name === undefined || s.name === q.name))
      .map((s) => this.view(s))
      .filter((s) => q.status === undefined || s.status === q.status);
    const start = q.cursor ? Number(q.cursor) : 0;
    const items = all.slice(start, start + q.limit);
    return { items, nextCursor: start + q.limit < all.length ? String(start + q.limit) : undefined };
  }

  async countStacks(tenant: string): Promise<number> {
    return [...this.stacks.values()].filter((s) => s.tenant === tenant).length;
  }

  async validate(_tenant: string, src: StackSource): Promise<ValidationResult> {
    const t = parse(src.template);
    return { description: t.description as string | undefined, parameters: (t.parameters ?? {}) as Record<string, unknown>, resourceCount: resourcesOf(src).length };
  }

  async preview(tenant: string, ref: string | undefined, src: StackSource): Promise<PreviewResource[]> {
    const next = new Map(resourcesOf(src));
    const prev = new Map(ref === undefined ? [] : resourcesOf(this.must(tenant, ref).source));
    const out: PreviewResource[] = [];
    for (const [name, type] of next) out.push({ name, type, action: !prev.has(name) ? 'create' : prev.get(name) === type ? 'unchanged' : 'replace' });
    for (const [name, type] of prev) if (!next.has(name)) out.push({ name, type, action: 'delete' });
    return out;
  }

  async abandonStack(tenant: string, ref: string): Promise<Record<string, unknown>> {
    const s = this.must(tenant, ref);
    this.writes.push('abandon');
    this.stacks.delete(s.id);
    return { name: s.name, resources: Object.fromEntries(resourcesOf(s.source).map(([n, type]) => [n, { type, resource_id: `phys-${n}` }])) };
  }

  async adoptStack(tenant: string, input: AdoptStackInput): Promise<GenerationRef> {
    return this.createStack(tenant, input);
  }

  private resource(s: Stored, name: string, type: string): ResourceDetail {
    return {
      name,
      type,
      status: 'CREATE_COMPLETE',
      physicalId: `phys-${name}`,
      generation: s.generation,
      stackId: s.id,
      tenant: s.tenant,
      attributes: { name },
      unhealthy: s.unhealthy.has(name),
    };
  }

  async listResources(tenant: string, ref: string, q: ListResourcesQuery): Promise<Page<ResourceDetail>> {
    const s = this.must(tenant, ref);
    const all = resourcesOf(s.source)
      .map(([n, t]) => this.resource(s, n, t))
      .filter((r) => (q.type === undefined || r.type === q.type) && (q.status === undefined || r.status === q.status));
    const start = q.cursor ? Number(q.cursor) : 0;
    return { items: all.slice(start, start + q.limit), nextCursor: start + q.limit < all.length ? String(start + q.limit) : undefined };
  }

  async getResource(tenant: string, ref: string, resource: string): Promise<ResourceDetail | undefined> {
    const s = this.must(tenant, ref);
    const found = resourcesOf(s.source).find(([n]) => n === resource);
    return found && this.resource(s, found[0], found[1]);
  }

  async markUnhealthy(tenant: string, ref: string, resource: string, unhealthy: boolean, reason: string | undefined): Promise<void> {
    const s = this.must(tenant, ref);
    if (!resourcesOf(s.source).some(([n]) => n === resource)) throw new KilnError('RESOURCE_NOT_FOUND', `no resource '${resource}'`, { path: 'body.resource' });
    this.writes.push('mark-unhealthy');
    if (unhealthy) s.unhealthy.set(resource, reason);
    else s.unhealthy.delete(resource);
  }

  async signal(tenant: string, ref: string, resource: string, data: unknown): Promise<void> {
    const s = this.must(tenant, ref);
    if (!resourcesOf(s.source).some(([n]) => n === resource)) throw new KilnError('RESOURCE_NOT_FOUND', `no resource '${resource}'`, { path: 'body.resource' });
    this.writes.push('signal');
    s.signals.push({ resource, data });
  }

  async setCapacity(tenant: string, ref: string, group: string, capacity: number): Promise<GenerationRef> {
    const s = this.must(tenant, ref);
    if (!resourcesOf(s.source).some(([n]) => n === group)) throw new KilnError('RESOURCE_NOT_FOUND', `no group '${group}'`, { path: 'body.group' });
    this.writes.push('capacity');
    s.capacity.set(group, capacity);
    s.generation++;
    return this.gen(s);
  }

  async cancelUpdate(tenant: string, ref: string): Promise<GenerationRef> {
    const s = this.must(tenant, ref);
    const previous = s.history.at(-1);
    if (!previous) throw new KilnError('CONFLICT', 'no previous generation to return to');
    this.writes.push('cancel');
    return this.bump(s, previous);
  }

  async status(): Promise<EngineStatus> {
    return { version: 'test', nodes: [{ id: 'memory' }] };
  }
}
