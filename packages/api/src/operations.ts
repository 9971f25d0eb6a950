import { KilnError } from '@kiln/core';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type {
  GenerationRef,
  OutputView,
  ResourceDetail,
  ResourceView,
  StackBackend,
  StackSource,
  StackSummary,
  StackView,
} from './backend.js';
import { createEventConsumer, readEventsPage } from './events.js';
import type { Quotas } from './quotas.js';
import { arrayOf, bool, check, int, json, mapOf, obj, oneOf, required, str, type Schema } from './schema.js';

/** What an operation handler may use; the tenant is the one the subject proved. */
export interface OperationContext {
  tenant: string;
  backend: StackBackend;
  quotas: Quotas;
  js: JetStreamClient;
  jsm: JetStreamManager;
  eventsStream: string;
  maxEventScan: number;
  /** Budget for the events of one reply (below the server's max_payload). */
  maxReplyBytes: number;
}

export interface Operation {
  /** Subject suffix after the tenant token, e.g. `stack.create`. */
  name: string;
  description: string;
  schema: Schema;
  /** Writes desired state: a `request_id` makes retries of it idempotent. */
  idempotent: boolean;
  run(ctx: OperationContext, body: Record<string, unknown>): Promise<unknown>;
}

const STACK_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,254}$/;
export const REQUEST_ID = /^[A-Za-z0-9_=-]{1,128}$/;

const stackRef = str({ minLength: 1, maxLength: 255 });
const resourceRef = str({ minLength: 1, maxLength: 1024 });
const document = oneOf('YAML/JSON text or an object', str(), mapOf(json));
const requestId = str({ pattern: REQUEST_ID });
const limit = int({ min: 1, max: 1000 });
const cursor = str({ maxLength: 4096 });
const source = {
  template: required(document),
  environment: document,
  parameters: mapOf(json),
  files: mapOf(str()),
};

// Response shapes use snake_case: the API is for clients in any language.

function genOut(g: GenerationRef): Record<string, unknown> {
  return { id: g.id, name: g.name, generation: g.generation };
}

function summaryOut(s: StackSummary): Record<string, unknown> {
  return {
    id: s.id,
    name: s.name,
    status: s.status,
    status_reason: s.statusReason,
    generation: s.generation,
    created_at: s.createdAt,
    updated_at: s.updatedAt,
    tags: s.tags,
  };
}

function outputOut(o: OutputView): Record<string, unknown> {
  return { key: o.key, value: o.value, description: o.description, error: o.error };
}

function stackOut(s: StackView): Record<string, unknown> {
  return {
    ...summaryOut(s),
    description: s.description,
    parameters: s.parameters,
    outputs: s.outputs.map(outputOut),
    resources: { total: s.resources.total, by_status: s.resources.byStatus },
  };
}

function resourceOut(r: ResourceView): Record<string, unknown> {
  return {
    name: r.name,
    path: r.path,
    type: r.type,
    status: r.status,
    status_reason: r.statusReason,
    physical_id: r.physicalId,
    generation: r.generation,
    updated_at: r.updatedAt,
  };
}

function resourceDetailOut(r: ResourceDetail): Record<string, unknown> {
  return { ...resourceOut(r), attributes: r.attributes, properties: r.properties, required_by: r.requiredBy, unhealthy: r.unhealthy };
}

function stackNotFound(ref: string): KilnError {
  return new KilnError('STACK_NOT_FOUND', `stack '${ref}' not found`, { path: 'body.stack' });
}

/**
 * The stack `ref` as the tenant sees it. Another tenant's stack is reported as not found (not
 * forbidden) so that a tenant cannot even learn which ids exist elsewhere.
 */
async function ownedStack(ctx: OperationContext, ref: string): Promise<StackSummary> {
  const s = await ctx.backend.findStack(ctx.tenant, ref);
  if (!s || s.tenant !== ctx.tenant) throw stackNotFound(ref);
  return s;
}

/** The full view of one of the tenant's stacks. */
async function ownedStackView(ctx: OperationContext, ref: string): Promise<StackView> {
  const s = await ctx.backend.getStack(ctx.tenant, ref);
  if (!s || s.tenant !== ctx.tenant) throw stackNotFound(ref);
  return s;
}

function owned<T extends { tenant: string }>(ctx: OperationContext, items: T[]): T[] {
  // A backend answering for the wrong tenant is a bug; never let it reach a client.
  return items.filter((i) => i.tenant === ctx.tenant);
}

function ownedGen(g: GenerationRef, stack: StackSummary): GenerationRef {
  if (g.id !== stack.id) throw new KilnError('INTERNAL', `backend answered for stack ${g.id} instead of ${stack.id}`);
  return g;
}

function sourceOf(body: Record<string, unknown>): StackSource {
  return {
    template: body.template as StackSource['template'],
    environment: body.environment as StackSource['environment'],
    parameters: body.parameters as StackSource['parameters'],
    files: body.files as StackSource['files'],
  };
}

async function checkSourceQuotas(ctx: OperationContext, src: Partial<StackSource>): Promise<void> {
  ctx.quotas.checkTemplateSize(ctx.tenant, src);
  if (src.template !== undefined && ctx.quotas.limitOf(ctx.tenant).maxResourcesPerStack !== undefined) {
    const v = await ctx.backend.validate(ctx.tenant, src as StackSource);
    ctx.quotas.checkResources(ctx.tenant, v.resourceCount);
  }
}

async function checkStackCount(ctx: OperationContext): Promise<void> {
  if (ctx.quotas.limitOf(ctx.tenant).maxStacks !== undefined) ctx.quotas.checkStacks(ctx.tenant, await ctx.backend.countStacks(ctx.tenant));
}

const op = (o: Operation): Operation => o;
const s = (body: Record<string, unknown>, k: string): string => body[k] as string;
const optS = (body: Record<string, unknown>, k: string): string | undefined => body[k] as string | undefined;

export const OPERATIONS: readonly Operation[] = [
  op({
    name: 'stack.create',
    description: 'Create a stack: store its first desired generation',
    schema: obj({ name: required(str({ pattern: STACK_NAME })), ...source, tags: arrayOf(str({ maxLength: 255 }), 64), request_id: requestId }),
    idempotent: true,
    async run(ctx, b) {
      await checkStackCount(ctx);
      const src = sourceOf(b);
      await checkSourceQuotas(ctx, src);
      const g = await ctx.backend.createStack(ctx.tenant, { ...src, name: s(b, 'name'), tags: b.tags as string[] | undefined, requestId: optS(b, 'request_id') });
      return genOut(g);
    },
  }),
  op({
    name: 'stack.update',
    description: 'Replace the desired template, environment and parameters (a new generation)',
    schema: obj({ stack: required(stackRef), ...source, request_id: requestId }),
    idempotent: true,
    async run(ctx, b) {
      const stack = await ownedStack(ctx, s(b, 'stack'));
      const src = sourceOf(b);
      await checkSourceQuotas(ctx, src);
      return genOut(ownedGen(await ctx.backend.updateStack(ctx.tenant, stack.id, { ...src, requestId: optS(b, 'request_id') }), stack));
    },
  }),
  op({
    name: 'stack.patch',
    description: 'Change part of the desired state; parameters are merged with the existing ones',
    schema: obj({
      stack: required(stackRef),
      template: document,
      environment: document,
      parameters: mapOf(json),
      files: mapOf(str()),
      clear_parameters: arrayOf(str()),
      request_id: requestId,
    }),
    idempotent: true,
    async run(ctx, b) {
      const stack = await ownedStack(ctx, s(b, 'stack'));
      const src = sourceOf(b);
      await checkSourceQuotas(ctx, src);
      const g = await ctx.backend.patchStack(ctx.tenant, stack.id, {
        ...src,
        clearParameters: b.clear_parameters as string[] | undefined,
        requestId: optS(b, 'request_id'),
      });
      return genOut(ownedGen(g, stack));
    },
  }),
  op({
    name: 'stack.delete',
    description: 'Delete a stack and its resources (desired state: absent)',
    schema: obj({ stack: required(stackRef), request_id: requestId }),
    idempotent: true,
    async run(ctx, b) {
      const stack = await ownedStack(ctx, s(b, 'stack'));
      return genOut(ownedGen(await ctx.backend.deleteStack(ctx.tenant, stack.id, { requestId: optS(b, 'request_id') }), stack));
    },
  }),
  op({
    name: 'stack.show',
    description: 'A stack with its status, outputs and resource counts by status',
    schema: obj({ stack: required(stackRef) }),
    idempotent: false,
    async run(ctx, b) {
      return stackOut(await ownedStackView(ctx, s(b, 'stack')));
    },
  }),
  op({
    name: 'stack.list',
    description: "The tenant's stacks, paged, optionally filtered by name and status",
    schema: obj({ limit, cursor, filter: obj({ name: str(), status: str() }) }),
    idempotent: false,
    async run(ctx, b) {
      const f = (b.filter ?? {}) as { name?: string; status?: string };
      const page = await ctx.backend.listStacks(ctx.tenant, { limit: (b.limit as number | undefined) ?? 100, cursor: optS(b, 'cursor'), name: f.name, status: f.status });
      return { stacks: owned(ctx, page.items).map(summaryOut), next_cursor: page.nextCursor };
    },
  }),
  op({
    name: 'stack.validate',
    description: 'Validate a template with its environment and parameters without creating anything',
    schema: obj(source),
    idempotent: false,
    async run(ctx, b) {
      const src = sourceOf(b);
      ctx.quotas.checkTemplateSize(ctx.tenant, src);
      const v = await ctx.backend.validate(ctx.tenant, src);
      return { valid: true, description: v.description, parameters: v.parameters, resource_count: v.resourceCount };
    },
  }),
  op({
    name: 'stack.preview',
    description: 'What creating (no `stack`) or updating (`stack`) with this source would do to each resource',
    schema: obj({ stack: stackRef, ...source }),
    idempotent: false,
    async run(ctx, b) {
      const ref = optS(b, 'stack');
      const stack = ref === undefined ? undefined : await ownedStack(ctx, ref);
      const src = sourceOf(b);
      ctx.quotas.checkTemplateSize(ctx.tenant, src);
      return { resources: await ctx.backend.preview(ctx.tenant, stack?.id, src) };
    },
  }),
  op({
    name: 'stack.abandon',
    description: 'Forget a stack without deleting its resources; returns the data stack.adopt takes',
    schema: obj({ stack: required(stackRef) }),
    idempotent: false,
    async run(ctx, b) {
      const stack = await ownedStack(ctx, s(b, 'stack'));
      return { adopt_data: await ctx.backend.abandonStack(ctx.tenant, stack.id) };
    },
  }),
  op({
    name: 'stack.adopt',
    description: 'Create a stack from existing resources (the output of stack.abandon)',
    schema: obj({ name: required(str({ pattern: STACK_NAME })), ...source, adopt_data: required(mapOf(json)), request_id: requestId }),
    idempotent: true,
    async run(ctx, b) {
      await checkStackCount(ctx);
      const src = sourceOf(b);
      await checkSourceQuotas(ctx, src);
      const g = await ctx.backend.adoptStack(ctx.tenant, {
        ...src,
        name: s(b, 'name'),
        adoptData: b.adopt_data as Record<string, unknown>,
        requestId: optS(b, 'request_id'),
      });
      return genOut(g);
    },
  }),
  op({
    name: 'stack.outputs',
    description: "A stack's outputs, or one of them with `output`",
    schema: obj({ stack: required(stackRef), output: str() }),
    idempotent: false,
    async run(ctx, b) {
      const stack = await ownedStackView(ctx, s(b, 'stack'));
      const key = optS(b, 'output');
      const outputs = key === undefined ? stack.outputs : stack.outputs.filter((o) => o.key === key);
      if (key !== undefined && outputs.length === 0) throw new KilnError('REQUEST_INVALID', `stack '${stack.name}' has no output '${key}'`, { path: 'body.output' });
      return { outputs: outputs.map(outputOut) };
    },
  }),
  op({
    name: 'stack.cancel',
    description: 'Cancel an in-flight update: a new generation re-targets the previous desired state',
    schema: obj({ stack: required(stackRef), request_id: requestId }),
    idempotent: true,
    async run(ctx, b) {
      const stack = await ownedStack(ctx, s(b, 'stack'));
      return genOut(ownedGen(await ctx.backend.cancelUpdate(ctx.tenant, stack.id), stack));
    },
  }),
  op({
    name: 'resource.list',
    description: "A stack's resources (nested members with `nested_depth`), paged and filtered",
    schema: obj({ stack: required(stackRef), nested_depth: int({ min: 0, max: 100 }), limit, cursor, filter: obj({ status: str(), type: str() }) }),
    idempotent: false,
    async run(ctx, b) {
      const stack = await ownedStack(ctx, s(b, 'stack'));
      const f = (b.filter ?? {}) as { status?: string; type?: string };
      const page = await ctx.backend.listResources(ctx.tenant, stack.id, {
        limit: (b.limit as number | undefined) ?? 1000,
        cursor: optS(b, 'cursor'),
        nestedDepth: (b.nested_depth as number | undefined) ?? 0,
        status: f.status,
        type: f.type,
      });
      return { resources: owned(ctx, page.items).filter((r) => r.stackId === stack.id).map(resourceOut), next_cursor: page.nextCursor };
    },
  }),
  op({
    name: 'resource.show',
    description: 'One resource (or nested member by path) with attributes',
    schema: obj({ stack: required(stackRef), resource: required(resourceRef) }),
    idempotent: false,
    async run(ctx, b) {
      const stack = await ownedStack(ctx, s(b, 'stack'));
      const r = await ctx.backend.getResource(ctx.tenant, stack.id, s(b, 'resource'));
      if (!r || r.tenant !== ctx.tenant || r.stackId !== stack.id) {
        throw new KilnError('RESOURCE_NOT_FOUND', `stack '${stack.name}' has no resource '${s(b, 'resource')}'`, { path: 'body.resource' });
      }
      return resourceDetailOut(r);
    },
  }),
  op({
    name: 'resource.mark-unhealthy',
    description: 'Mark a resource unhealthy (it is replaced on convergence) or clear the mark',
    schema: obj({ stack: required(stackRef), resource: required(resourceRef), unhealthy: bool, reason: str({ maxLength: 1024 }) }),
    idempotent: false,
    async run(ctx, b) {
      const stack = await ownedStack(ctx, s(b, 'stack'));
      await ctx.backend.markUnhealthy(ctx.tenant, stack.id, s(b, 'resource'), (b.unhealthy as boolean | undefined) ?? true, optS(b, 'reason'));
      return {};
    },
  }),
  op({
    name: 'resource.signal',
    description: 'Send a signal (wait condition, scaling policy) to a resource',
    schema: obj({ stack: required(stackRef), resource: required(resourceRef), data: json }),
    idempotent: false,
    async run(ctx, b) {
      const stack = await ownedStack(ctx, s(b, 'stack'));
      await ctx.backend.signal(ctx.tenant, stack.id, s(b, 'resource'), b.data ?? null);
      return {};
    },
  }),
  op({
    name: 'events.list',
    description: "The tenant's events from a sequence or time, paged, filtered by stack, resource, type, status",
    schema: obj({
      stack: stackRef,
      resource: resourceRef,
      type: str(),
      status: oneOf('a status or a list of statuses', str(), arrayOf(str(), 32)),
      since_seq: int({ min: 1 }),
      since_time: str({ pattern: /^\d{4}-\d\d-\d\dT/ }),
      limit,
    }),
    idempotent: false,
    async run(ctx, b) {
      const ref = optS(b, 'stack');
      // A stack filter must name one of the tenant's stacks; by name it is resolved to its id.
      const stackId = ref === undefined ? undefined : (await ownedStack(ctx, ref)).id;
      if (b.resource !== undefined && stackId === undefined) throw new KilnError('REQUEST_INVALID', 'a resource filter needs a stack', { path: 'body.resource' });
      const status = b.status === undefined ? undefined : Array.isArray(b.status) ? (b.status as string[]) : [b.status as string];
      return await readEventsPage(ctx.js, ctx.jsm, {
        stream: ctx.eventsStream,
        tenant: ctx.tenant,
        filter: { stack: stackId, resource: optS(b, 'resource'), type: optS(b, 'type'), status },
        sinceSeq: b.since_seq as number | undefined,
        sinceTime: optS(b, 'since_time'),
        limit: (b.limit as number | undefined) ?? 100,
        maxScan: ctx.maxEventScan,
        maxBytes: ctx.maxReplyBytes,
      });
    },
  }),
  op({
    name: 'events.subscribe',
    description: "Push the tenant's events (replay from a sequence or time, then live) to an inbox of the caller",
    schema: obj({
      deliver_subject: required(str({ pattern: /^_INBOX[A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)+$/, maxLength: 255 })),
      stack: stackRef,
      resource: resourceRef,
      since_seq: int({ min: 1 }),
      since_time: str({ pattern: /^\d{4}-\d\d-\d\dT/ }),
      heartbeat_ms: int({ min: 500, max: 60_000 }),
    }),
    idempotent: false,
    async run(ctx, b) {
      const deliver = s(b, 'deliver_subject');
      // Only the tenant's own inbox (or the shared one privileged users have): never an API subject.
      if (!deliver.startsWith(`_INBOX_${ctx.tenant}.`) && !deliver.startsWith('_INBOX.')) {
        throw new KilnError('REQUEST_INVALID', `must be under _INBOX_${ctx.tenant}. (the tenant's inbox prefix)`, { path: 'body.deliver_subject' });
      }
      const ref = optS(b, 'stack');
      const stackId = ref === undefined ? undefined : (await ownedStack(ctx, ref)).id;
      if (b.resource !== undefined && stackId === undefined) throw new KilnError('REQUEST_INVALID', 'a resource filter needs a stack', { path: 'body.resource' });
      const heartbeatMs = (b.heartbeat_ms as number | undefined) ?? 5_000;
      const c = await createEventConsumer(ctx.jsm, {
        stream: ctx.eventsStream,
        tenant: ctx.tenant,
        filter: { stack: stackId, resource: optS(b, 'resource') },
        sinceSeq: b.since_seq as number | undefined,
        sinceTime: optS(b, 'since_time'),
        deliverSubject: deliver,
        idleHeartbeatMs: heartbeatMs,
        // Removed by the server once nobody listens on the inbox for a few heartbeats.
        inactiveMs: Math.max(10_000, heartbeatMs * 3),
      });
      return { consumer: c.name, from_seq: c.lastSeq + 1, replay: c.pending, heartbeat_ms: heartbeatMs };
    },
  }),
  op({
    name: 'group.capacity.set',
    description: "Set a scaling group's desired capacity (a new generation of its stack)",
    schema: obj({ stack: required(stackRef), group: required(resourceRef), capacity: required(int({ min: 0 })), request_id: requestId }),
    idempotent: true,
    async run(ctx, b) {
      const stack = await ownedStack(ctx, s(b, 'stack'));
      const capacity = b.capacity as number;
      ctx.quotas.checkResources(ctx.tenant, capacity, 'body.capacity');
      const g = await ctx.backend.setCapacity(ctx.tenant, stack.id, s(b, 'group'), capacity, { requestId: optS(b, 'request_id') });
      return genOut(ownedGen(g, stack));
    },
  }),
  op({
    name: 'engine.status',
    description: 'Engine and cluster status (no tenant data)',
    schema: obj({}),
    idempotent: false,
    async run(ctx) {
      return await ctx.backend.status();
    },
  }),
];

/** Validates a decoded body against the operation's schema. */
export function checkBody(operation: Operation, body: unknown): Record<string, unknown> {
  return check<Record<string, unknown>>(operation.schema, body);
}
