/**
 * What the request API needs from the engine. Every operation takes the tenant the request came
 * from (derived from the NATS subject the sender was permitted to publish on, never from the
 * body); the API additionally checks the `tenant` of every object a backend returns, so a backend
 * bug cannot leak another tenant's stack. The real implementation is a thin adapter over
 * `@kiln/engine`'s Engine.
 */

/** A template, environment and parameters: the desired state of a stack. */
export interface StackSource {
  /** HOT template as YAML/JSON text or as an already parsed object. */
  template: string | Record<string, unknown>;
  environment?: string | Record<string, unknown> | undefined;
  parameters?: Record<string, unknown> | undefined;
  /** Files referenced by `get_file` and nested templates, by name. */
  files?: Record<string, string> | undefined;
}

export interface CreateStackInput extends StackSource {
  name: string;
  tags?: string[] | undefined;
  /** The client's request id, when given: an engine may use it as an idempotency key. */
  requestId?: string | undefined;
}

export interface UpdateStackInput extends StackSource {
  requestId?: string | undefined;
}

/** PATCH semantics (Heat's `--existing`): only the given parts change; parameters are merged. */
export interface PatchStackInput {
  template?: string | Record<string, unknown> | undefined;
  environment?: string | Record<string, unknown> | undefined;
  parameters?: Record<string, unknown> | undefined;
  files?: Record<string, string> | undefined;
  /** Parameters to reset to their template default. */
  clearParameters?: string[] | undefined;
  requestId?: string | undefined;
}

export interface AdoptStackInput extends StackSource {
  name: string;
  /** The `abandon` output of a stack (resources with their physical ids). */
  adoptData: Record<string, unknown>;
  requestId?: string | undefined;
}

/** The answer to every desired-state write: which stack, which generation now wins. */
export interface GenerationRef {
  id: string;
  name: string;
  generation: number;
}

export interface OutputView {
  key: string;
  value?: unknown;
  description?: string | undefined;
  /** Set when the output cannot be resolved yet or failed. */
  error?: string | undefined;
}

export interface StackSummary {
  id: string;
  name: string;
  tenant: string;
  status: string;
  statusReason?: string | undefined;
  generation: number;
  createdAt: string;
  updatedAt: string;
  tags?: string[] | undefined;
}

export interface StackView extends StackSummary {
  outputs: OutputView[];
  resources: { total: number; byStatus: Record<string, number> };
  parameters?: Record<string, unknown> | undefined;
  description?: string | undefined;
}

export interface ResourceView {
  name: string;
  /** Path from the stack for nested members, e.g. `workers/3`; absent for top-level resources. */
  path?: string | undefined;
  type: string;
  status: string;
  statusReason?: string | undefined;
  physicalId?: string | undefined;
  generation: number;
  /** The stack the resource belongs to (checked against the request's tenant). */
  stackId: string;
  tenant: string;
  updatedAt?: string | undefined;
}

export interface ResourceDetail extends ResourceView {
  attributes?: Record<string, unknown> | undefined;
  properties?: Record<string, unknown> | undefined;
  requiredBy?: string[] | undefined;
  unhealthy?: boolean | undefined;
}

export interface Page<T> {
  items: T[];
  /** Opaque cursor for the next page; absent on the last page. */
  nextCursor?: string | undefined;
}

export interface ListStacksQuery {
  limit: number;
  cursor?: string | undefined;
  name?: string | undefined;
  status?: string | undefined;
}

export interface ListResourcesQuery {
  limit: number;
  cursor?: string | undefined;
  /** Include members of nested stacks and groups down to this depth (0 = top level only). */
  nestedDepth: number;
  status?: string | undefined;
  type?: string | undefined;
}

export interface ValidationResult {
  description?: string | undefined;
  parameters: Record<string, unknown>;
  resourceCount: number;
}

export interface PreviewResource {
  name: string;
  type: string;
  /** What converging to the new desired state would do to this resource. */
  action: 'create' | 'update' | 'replace' | 'delete' | 'unchanged';
}

export interface EngineStatus {
  version: string;
  nodes: Array<{ id: string; partitions?: number | undefined; lastSeen?: string | undefined }>;
  [key: string]: unknown;
}

/**
 * The engine operations behind the request API. A stack is named by `ref`: its id, or its name
 * within the tenant. Methods throw KilnError (STACK_NOT_FOUND, RESOURCE_NOT_FOUND, STACK_EXISTS,
 * TEMPLATE_INVALID, ...) for anything a caller can fix.
 */
export interface StackBackend {
  createStack(tenant: string, input: CreateStackInput): Promise<GenerationRef>;
  updateStack(tenant: string, ref: string, input: UpdateStackInput): Promise<GenerationRef>;
  patchStack(tenant: string, ref: string, input: PatchStackInput): Promise<GenerationRef>;
  deleteStack(tenant: string, ref: string, opts: { requestId?: string | undefined }): Promise<GenerationRef>;
  /** Identity and status only (cheap: every operation naming a stack checks its owner with it). Undefined when absent. */
  findStack(tenant: string, ref: string): Promise<StackSummary | undefined>;
  /** The full view (outputs, resource counts by status). Undefined when absent. */
  getStack(tenant: string, ref: string): Promise<StackView | undefined>;
  listStacks(tenant: string, query: ListStacksQuery): Promise<Page<StackSummary>>;
  countStacks(tenant: string): Promise<number>;
  validate(tenant: string, source: StackSource): Promise<ValidationResult>;
  preview(tenant: string, ref: string | undefined, source: StackSource): Promise<PreviewResource[]>;
  /** Forgets the stack without deleting its resources; returns data `adoptStack` accepts. */
  abandonStack(tenant: string, ref: string): Promise<Record<string, unknown>>;
  adoptStack(tenant: string, input: AdoptStackInput): Promise<GenerationRef>;
  listResources(tenant: string, ref: string, query: ListResourcesQuery): Promise<Page<ResourceView>>;
  /** `resource` is a name or a nested path (`workers/3`). Undefined when absent. */
  getResource(tenant: string, ref: string, resource: string): Promise<ResourceDetail | undefined>;
  markUnhealthy(tenant: string, ref: string, resource: string, unhealthy: boolean, reason: string | undefined): Promise<void>;
  signal(tenant: string, ref: string, resource: string, data: unknown): Promise<void>;
  /** Sets the desired size of a scaling group resource (a new generation of the stack). */
  setCapacity(tenant: string, ref: string, group: string, capacity: number, opts: { requestId?: string | undefined }): Promise<GenerationRef>;
  /** Re-targets an in-flight update to the previous generation's desired state. */
  cancelUpdate(tenant: string, ref: string): Promise<GenerationRef>;
  status(): Promise<EngineStatus>;
}
