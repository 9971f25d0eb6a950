import { KilnError } from '@kiln/core';
import { Engine, HotTemplateAdapter, type AdoptRequest, type ResourceInfo, type StackDescription, type StackInfo, type StackSpec } from '@kiln/engine';
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
  ResourceView,
  StackBackend,
  StackSource,
  StackSummary,
  StackView,
  UpdateStackInput,
  ValidationResult,
} from './backend.js';

/**
 * The StackBackend over `@kiln/engine`'s Engine. Stacks carry their tenant in the engine (names
 * are unique per tenant); every lookup here compares it with the caller's, and the API checks
 * the `tenant` of what this returns once more.
 */
export interface EngineBackendOptions {
  engine: Engine;
  version?: string;
}

const BY_STATUS_EXACT_MAX = 1000;
const UUID_LIKE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Stack descriptions kept per API process (one per stack generation shown). */
const DESCRIPTION_CACHE = 1000;

function iso(ms: number): string {
  return new Date(ms || 0).toISOString();
}

function specOf(src: Partial<StackSource>): StackSpec {
  const spec: { -readonly [K in keyof StackSpec]: StackSpec[K] } = { template: src.template };
  if (src.environment !== undefined) spec.environment = src.environment;
  if (src.parameters !== undefined) spec.parameters = src.parameters;
  if (src.files !== undefined) spec.files = src.files;
  return spec;
}

export class EngineBackend implements StackBackend {
  private readonly template = new HotTemplateAdapter();
  private readonly descriptions = new Map<string, StackDescription>();

  private constructor(private readonly o: EngineBackendOptions) {}

  static async open(o: EngineBackendOptions): Promise<EngineBackend> {
    return new EngineBackend(o);
  }

  private get engine(): Engine {
    return this.o.engine;
  }

  /** Parses and plans the source: invalid templates are refused before any state is written. */
  private plan(src: StackSource, name = 'validate') {
    return this.template.plan(specOf(src), { stackId: 'validate', stackName: name });
  }

  private ref(g: { id: string; name: string; generation: number }): GenerationRef {
    return { id: g.id, name: g.name, generation: g.generation };
  }

  /** The engine's view of `ref` (the tenant's name, or an id of the tenant's); undefined when absent. */
  private async info(tenant: string, ref: string): Promise<StackInfo | undefined> {
    // As Heat's identify_stack: a UUID-like reference is an id first (one lookup less), else a name.
    for (const candidate of UUID_LIKE.test(ref) ? [ref, { tenant, name: ref }] : [{ tenant, name: ref }, ref]) {
      try {
        const s = await this.engine.getStack(candidate);
        if (s.tenant === tenant) return s;
      } catch (e) {
        if ((e as KilnError).code !== 'STACK_NOT_FOUND') throw e;
      }
    }
    return undefined;
  }

  /** The id of the tenant's stack `ref`, or STACK_NOT_FOUND. */
  private async id(tenant: string, ref: string): Promise<string> {
    const s = await this.info(tenant, ref);
    if (!s) throw new KilnError('STACK_NOT_FOUND', `stack '${ref}' not found`, { path: 'body.stack' });
    return s.id;
  }

  private summary(s: StackInfo): StackSummary {
    return {
      id: s.id,
      name: s.name,
      tenant: s.tenant,
      status: s.stackStatus,
      statusReason: s.reason || undefined,
      generation: s.generation,
      createdAt: iso(s.createdAt),
      updatedAt: iso(s.updatedAt),
    };
  }

  async createStack(tenant: string, input: CreateStackInput): Promise<GenerationRef> {
    this.plan(input, input.name);
    return this.ref(await this.engine.createStack({ ...specOf(input), tenant, name: input.name }, { requestId: input.requestId }));
  }

  async updateStack(tenant: string, ref: string, input: UpdateStackInput): Promise<GenerationRef> {
    this.plan(input);
    return this.ref(await this.engine.updateStack(await this.id(tenant, ref), specOf(input), { requestId: input.requestId }));
  }

  async patchStack(tenant: string, ref: string, input: PatchStackInput): Promise<GenerationRef> {
    if (input.clearParameters?.length) throw new KilnError('REQUEST_INVALID', 'clear_parameters is not supported by this engine version', { path: 'body.clear_parameters' });
    const patch: { -readonly [K in keyof StackSpec]?: StackSpec[K] } = {};
    if (input.template !== undefined) patch.template = input.template;
    if (input.environment !== undefined) patch.environment = input.environment;
    if (input.parameters !== undefined) patch.parameters = input.parameters;
    if (input.files !== undefined) patch.files = input.files;
    return this.ref(await this.engine.patchStack(await this.id(tenant, ref), patch, { requestId: input.requestId }));
  }

  async deleteStack(tenant: string, ref: string, opts: { requestId?: string | undefined } = {}): Promise<GenerationRef> {
    return this.ref(await this.engine.deleteStack(await this.id(tenant, ref), { requestId: opts.requestId }));
  }

  async findStack(tenant: string, ref: string): Promise<StackSummary | undefined> {
    const s = await this.info(tenant, ref);
    return s && this.summary(s);
  }

  async getStack(tenant: string, ref: string): Promise<StackView | undefined> {
    const s = await this.info(tenant, ref);
    if (!s) return undefined;
    const [d, byStatus] = await Promise.all([this.describe(s), this.byStatus(s)]);
    const keys = new Set([...Object.keys(d?.outputs ?? {}), ...Object.keys(s.outputs)]);
    return {
      ...this.summary(s),
      description: d?.description,
      parameters: d?.parameters,
      outputs: [...keys].map((key) => ({ key, value: s.outputs[key], description: d?.outputs[key] })),
      resources: { total: s.resources.total, byStatus },
    };
  }

  /**
   * The description of the stack's desired spec, cached per generation (a spec never changes, and
   * parsing a big template on every show would dominate its latency). Undefined while the spec is
   * unreadable (e.g. the stack is being deleted).
   */
  private async describe(s: StackInfo): Promise<StackDescription | undefined> {
    // The info's generation is the registry's: a described one needs no read of its spec.
    const cached = this.descriptions.get(`${s.id}:${s.generation}`);
    if (cached) return cached;
    let desired: { generation: number; spec: StackSpec };
    try {
      desired = await this.engine.desiredSpec(s.id);
    } catch (e) {
      if ((e as KilnError).code === 'STACK_NOT_FOUND') return undefined;
      throw e;
    }
    const key = `${s.id}:${desired.generation}`;
    let d = this.descriptions.get(key);
    if (!d) {
      d = this.template.describe(desired.spec, { stackId: s.id, stackName: s.name, tenant: s.tenant });
      if (this.descriptions.size >= DESCRIPTION_CACHE) this.descriptions.delete(this.descriptions.keys().next().value as string);
      this.descriptions.set(key, d);
    }
    return d;
  }

  /**
   * Exact counts per resource status read every resource's state; above BY_STATUS_EXACT_MAX
   * resources they come from the supervisor's aggregate counts instead (settled / failed / gone / the rest).
   */
  private async byStatus(s: StackInfo): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    const add = (k: string, n: number) => n > 0 && (out[k] = (out[k] ?? 0) + n);
    if (s.resources.total <= BY_STATUS_EXACT_MAX) {
      for (const r of await this.engine.listResources(s.id)) add(r.status, 1);
      return out;
    }
    const action = s.stackStatus.split('_')[0];
    const { total, settled, failed, deleted } = s.resources;
    add(`${action}_COMPLETE`, settled);
    add(`${action}_FAILED`, failed);
    add('DELETE_COMPLETE', deleted);
    add(`${action}_IN_PROGRESS`, total - settled - failed - deleted);
    return out;
  }

  async listStacks(tenant: string, q: ListStacksQuery): Promise<Page<StackSummary>> {
    const page = await this.engine.listStacks(tenant, {
      limit: q.limit,
      ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
      ...(q.name !== undefined ? { name: q.name } : {}),
      ...(q.status !== undefined ? { status: q.status } : {}),
    });
    return { items: page.stacks.map((s) => this.summary(s)), nextCursor: page.nextCursor };
  }

  countStacks(tenant: string): Promise<number> {
    return this.engine.countStacks(tenant);
  }

  async validate(_tenant: string, source: StackSource): Promise<ValidationResult> {
    const plan = this.plan(source);
    const t = typeof source.template === 'object' ? source.template : undefined;
    return {
      description: typeof t?.description === 'string' ? t.description : undefined,
      // The parameter values the stack would get (defaults applied).
      parameters: { ...plan.scope.params },
      resourceCount: plan.resources.length,
    };
  }

  async preview(tenant: string, ref: string | undefined, source: StackSource): Promise<PreviewResource[]> {
    const next = this.plan(source).resources;
    const current = new Map((ref === undefined ? [] : await this.engine.listResources(await this.id(tenant, ref))).map((r) => [r.name, r.type]));
    const out: PreviewResource[] = next.map((r) => ({
      name: r.name,
      type: r.type,
      // Without the stored spec the engine cannot tell "unchanged" from "update in place".
      action: !current.has(r.name) ? 'create' : current.get(r.name) === r.type ? 'update' : 'replace',
    }));
    const planned = new Set(next.map((r) => r.name));
    for (const [name, type] of current) if (!planned.has(name)) out.push({ name, type, action: 'delete' });
    return out;
  }

  async abandonStack(tenant: string, ref: string): Promise<Record<string, unknown>> {
    const { tenant: _owner, ...data } = await this.engine.abandonStack(await this.id(tenant, ref));
    return data;
  }

  async adoptStack(tenant: string, input: AdoptStackInput): Promise<GenerationRef> {
    this.plan(input, input.name);
    const adoptData = input.adoptData as AdoptRequest['adoptData'];
    return this.ref(await this.engine.adoptStack({ ...specOf(input), tenant, name: input.name, adoptData }, { requestId: input.requestId }));
  }

  private view(tenant: string, stackId: string, r: ResourceInfo, path: string | undefined): ResourceDetail {
    return {
      name: r.name,
      path,
      type: r.type,
      status: r.status,
      statusReason: r.reason || undefined,
      physicalId: r.physicalId ?? undefined,
      generation: r.generation,
      stackId,
      tenant,
      attributes: r.attributes,
    };
  }

  /** Resources of the stack and, down to `depth`, of nested stacks (path `parent/member`). */
  private async walk(tenant: string, stackId: string, depth: number): Promise<ResourceDetail[]> {
    const out: ResourceDetail[] = [];
    const visit = async (id: string, prefix: string | undefined, left: number): Promise<void> => {
      for (const r of await this.engine.listResources(id)) {
        const path = prefix === undefined ? undefined : `${prefix}/${r.name}`;
        out.push(this.view(tenant, stackId, r, path));
        if (left > 0 && r.nestedStackId) await visit(r.nestedStackId, path ?? r.name, left - 1);
      }
    };
    await visit(stackId, undefined, depth);
    return out;
  }

  async listResources(tenant: string, ref: string, q: ListResourcesQuery): Promise<Page<ResourceView>> {
    const id = await this.id(tenant, ref);
    const wanted = (r: { status: string; type: string }) => (q.status === undefined || r.status === q.status) && (q.type === undefined || r.type === q.type);
    const start = q.cursor === undefined ? 0 : Number(q.cursor) || 0;
    if (q.nestedDepth === 0) {
      // The cursor is a position in the stack's resource names: a page reads only what it shows
      // (the whole list read every state: 1 s for a page of 100 of 10,000 resources).
      const page = await this.engine.listResourcesPage(id, { from: start, limit: q.limit, filter: wanted });
      return { items: page.items.map((r) => this.view(tenant, id, r, undefined)), nextCursor: page.next === undefined ? undefined : String(page.next) };
    }
    const all = (await this.walk(tenant, id, q.nestedDepth)).filter(wanted);
    const items = all.slice(start, start + q.limit);
    return { items, nextCursor: start + q.limit < all.length ? String(start + q.limit) : undefined };
  }

  async getResource(tenant: string, ref: string, resource: string): Promise<ResourceDetail | undefined> {
    const depth = resource.split('/').length - 1;
    return (await this.walk(tenant, await this.id(tenant, ref), depth)).find((r) => (r.path ?? r.name) === resource);
  }

  async markUnhealthy(tenant: string, ref: string, resource: string, unhealthy: boolean, reason: string | undefined): Promise<void> {
    const id = await this.id(tenant, ref);
    // The engine acts on the mark at once (the resource is replaced), so there is no mark left to clear.
    if (unhealthy) await this.engine.markUnhealthy(id, resource, reason ?? '');
    else if (!(await this.getResource(tenant, id, resource))) throw new KilnError('RESOURCE_NOT_FOUND', `resource '${resource}' not found`, { path: 'body.resource' });
  }

  async signal(tenant: string, ref: string, resource: string, data: unknown): Promise<void> {
    await this.engine.signal(await this.id(tenant, ref), resource, data);
  }

  async setCapacity(tenant: string, ref: string, group: string, capacity: number, opts: { requestId?: string | undefined } = {}): Promise<GenerationRef> {
    return this.ref(await this.engine.setGroupCapacity(await this.id(tenant, ref), group, capacity, { requestId: opts.requestId }));
  }

  async cancelUpdate(tenant: string, ref: string): Promise<GenerationRef> {
    return this.ref(await this.engine.cancelUpdate(await this.id(tenant, ref)));
  }

  async status(): Promise<EngineStatus> {
    const m = this.engine.metrics();
    return { version: this.o.version ?? '0.1.0', nodes: m ? [{ id: m.nodeId, partitions: m.partitionsOwned }] : [], metrics: m };
  }
}
