/**
 * The provider plugin interface: one ResourceType per HOT resource type. Built-ins and the cloud
 * types of @kiln/providers implement the same interface.
 *
 * Three kinds, by where the work happens:
 * - `pure`: the action is a deterministic function of the request (None, Value, RandomString,
 *   TestResource, wait conditions). It runs inside the resource reducer: no task round trip, and
 *   a replayed step computes the same result. Waits become durable timers.
 * - `task`: the action is IO (a cloud API). It runs as a runtime task with an idempotency key
 *   that is identical when the step is replayed, so a create that may have happened before a crash
 *   is found again instead of repeated.
 * - `nested`: the resource is a child stack (OS::Heat::Stack, template resources, ResourceGroup);
 *   the resource actor drives the child stack's supervisor by messages.
 */
import type { TaskContext } from '@kiln/runtime';
import type { PlannedView } from './implicit-deps.js';
import type { DepData, GroupSpec, ResourceDef, StackSpec } from './types.js';

export interface PropertySchema {
  readonly type: 'string' | 'number' | 'integer' | 'boolean' | 'map' | 'list' | 'any';
  readonly required?: boolean;
  readonly default?: unknown;
  /** Heat's update_allowed: a change is applied in place; otherwise the resource is replaced. */
  readonly updateAllowed?: boolean;
}

/** What a provider action receives. */
export interface ActionRequest {
  readonly stackId: string;
  readonly stackName: string;
  /** Logical resource name. */
  readonly name: string;
  /** Heat-style physical name `<stack>-<name>-<suffix>`, stable per incarnation. */
  readonly physicalName: string;
  /** Identical for every replay of the same step; providers derive cloud idempotency tokens from it. */
  readonly idempotencyKey: string;
  readonly properties: Record<string, unknown>;
  /** Update: the properties currently applied. */
  readonly oldProperties?: Record<string, unknown>;
  /** Update/delete: the physical resource. */
  readonly physicalId?: string | null;
  /** Update/delete: the attributes stored by the last action. */
  readonly attrs?: Record<string, unknown>;
  /** Data of the resources this one references (wait conditions read their handle's signals). */
  readonly deps?: Readonly<Record<string, DepData>>;
  /** Whether anything reads this resource's attributes (a group collects member data only then). */
  readonly attributesRead: boolean;
  /** ResourceGroup: the member type after the resource_registry, with its template if it is one. */
  readonly groupMember?: ResourceDef['groupMember'];
  /** When the action (not counting provider waits) started, ms since epoch. */
  readonly now: number;
  /** Nested types: the resource's update_policy, resolved (groups read rolling_update / batch_create). */
  readonly updatePolicy?: unknown;
}

/** The classified failure of an action. Transient ones are retried with backoff; permanent ones are reported. */
export interface ProviderError {
  readonly code: string;
  readonly message: string;
  readonly transient: boolean;
  readonly retryAfterMs?: number;
}

export type ActionOutcome =
  | {
      readonly ok: true;
      readonly physicalId: string | null;
      readonly attrs: Record<string, unknown>;
      /** The action completes only after this delay (a durable timer); negative = never. */
      readonly waitMs?: number;
      /** Not complete yet: re-run the action when a dependency's data changes (wait conditions). */
      readonly awaitDeps?: { readonly timeoutMs: number };
    }
  | { readonly ok: false; readonly error: ProviderError; readonly waitMs?: number };

interface TypeBase {
  readonly name: string;
  readonly properties: Readonly<Record<string, PropertySchema>>;
  readonly attributes: readonly string[];
  /** Accept any property without validation (OS::Heat::None stubs out any type). */
  readonly anyProperties?: boolean;
  /** A replacement beyond the schema's update_allowed rule (TestResource's update_replace). */
  needsReplace?(oldProps: Record<string, unknown>, newProps: Record<string, unknown>): boolean;
  /** get_resource value; the physical id when absent. */
  reference?(physicalId: string | null, attrs: Record<string, unknown>): unknown;
  /**
   * Heat's `add_dependencies`: names of other resources of the stack this one must wait for
   * although it does not reference them (a server waits for its network's subnets). Properties
   * are unresolved expressions. Without it the engine's built-in rules apply (implicit-deps.ts).
   */
  implicitDependencies?(resource: PlannedView, stack: readonly PlannedView[]): string[];
  /** get_attr on a path the flat attribute map does not hold (group `resource.N`). */
  attribute?(attrs: Record<string, unknown>, attr: string, path: readonly unknown[]): unknown;
}

export interface PureType extends TypeBase {
  readonly kind: 'pure';
  create(req: ActionRequest): ActionOutcome;
  update(req: ActionRequest): ActionOutcome;
  delete(req: ActionRequest): ActionOutcome;
  /** Signals (WaitConditionHandle): fold a signal into the stored attributes. */
  signal?(attrs: Record<string, unknown>, data: unknown, signalId: string): Record<string, unknown>;
}

/** Task results: the physical id and attributes. Throw to fail; `classify` says transient or not. */
export interface TaskActionResult {
  readonly physicalId: string | null;
  readonly attrs: Record<string, unknown>;
}

/** What `observe` found: the attributes and, optionally, the resource's health. */
export interface ObservedResult extends TaskActionResult {
  readonly health?: {
    /** ok: as desired; pending: in transition (look again); error: broken; drifted: an update-allowed property differs. */
    readonly state: 'ok' | 'pending' | 'error' | 'drifted';
    readonly reason?: string;
    readonly drifted?: readonly string[];
    /** What repairs it: nothing, an update with the desired properties, or a replacement. */
    readonly repair: 'none' | 'update' | 'replace';
  };
}

/**
 * Types whose physical resource holds data (a volume): a broken one is replaced only inside a
 * group (a member is disposable); elsewhere the resource fails with the reason, since a new empty
 * one is not the same resource.
 */
export const DATA_HOLDING_TYPES: ReadonlySet<string> = new Set(['OS::Cinder::Volume']);

/**
 * A change the cloud reported for an object a resource made, named by the idempotency key it was
 * created with (`res/<stackId>/<name>#<incarnation>`, optionally followed by `:<suffix>` for
 * objects a resource makes on the side, e.g. a server's own ports). Only changes that may need a
 * repair are worth reporting: the object is gone, or went to an error state.
 */
export interface ObjectChange {
  readonly key: string;
  readonly change: 'deleted' | 'error';
}

export interface TaskType extends TypeBase {
  readonly kind: 'task';
  /**
   * Follows the cloud's change notifications (heal: the resource observes at once instead of at
   * its next poll); returns the unsubscribe. Types of one provider share one function: the engine
   * subscribes once per distinct function.
   */
  readonly changes?: (onChange: (c: ObjectChange) => void) => () => void;
  create(req: ActionRequest, ctx: TaskContext): Promise<TaskActionResult>;
  update(req: ActionRequest, ctx: TaskContext): Promise<TaskActionResult>;
  delete(req: ActionRequest, ctx: TaskContext): Promise<void>;
  /**
   * Reads the real resource (heal); null when it is gone. `health` says whether it is as desired;
   * without it the resource counts as healthy.
   */
  observe?(req: ActionRequest, ctx: TaskContext): Promise<ObservedResult | null>;
  classify(error: unknown): ProviderError;
}

/** The child a nested resource drives: a template stack or a group. */
export type ChildSpec = { readonly spec: StackSpec; readonly group?: undefined } | { readonly group: GroupSpec; readonly spec?: undefined };

export interface NestedType extends TypeBase {
  readonly kind: 'nested';
  child(req: ActionRequest, nestedTemplate?: { template: unknown; files: Record<string, string>; environment?: unknown }): ChildSpec | { readonly error: ProviderError };
  /** The resource's attributes from the child's outputs. */
  attrsFromOutputs(outputs: Record<string, unknown>): Record<string, unknown>;
}

export type ResourceType = PureType | TaskType | NestedType;

/** Resource types by name. */
export class TypeRegistry {
  private readonly types = new Map<string, ResourceType>();

  constructor(types: Iterable<ResourceType> = []) {
    for (const t of types) this.add(t);
  }

  add(t: ResourceType): this {
    this.types.set(t.name, t);
    return this;
  }

  get(name: string): ResourceType | undefined {
    return this.types.get(name);
  }

  names(): string[] {
    return [...this.types.keys()];
  }
}

/**
 * Task failure codes that mean "wait": the cloud (or the engine node) is unavailable for a while.
 * Retried without limit (capped backoff); an outage never fails a stack. `TRANSIENT` stands for a
 * provider's transient code the engine does not know.
 */
export const OUTAGE_CODES: ReadonlySet<string> = new Set(['UNAVAILABLE', 'RATE_LIMITED', 'TIMEOUT', 'CONFLICT', 'ABORTED', 'TRANSIENT']);

/**
 * Task failure codes that mean "this physical resource is broken: replace it" (a server that went
 * to ERROR, a volume in error). The retry is a new incarnation (new idempotency key), and only a
 * limited number of them are tried before the resource fails.
 */
export const REPLACE_CODES: ReadonlySet<string> = new Set(['RESOURCE_ERROR']);

/** Error codes of task failures that are worth retrying. */
export const TRANSIENT_CODES: ReadonlySet<string> = new Set([...OUTAGE_CODES, ...REPLACE_CODES]);

/**
 * The code a task failure carries to the reducer (the runtime passes code, message and
 * retryAfterMs only, so transience must be readable from the code): a transient error keeps its
 * code when the engine knows it, else `TRANSIENT`; a permanent one keeps its code unless that
 * code would read as transient.
 */
export function taskErrorCode(c: ProviderError): string {
  if (c.transient) return TRANSIENT_CODES.has(c.code) ? c.code : 'TRANSIENT';
  return TRANSIENT_CODES.has(c.code) ? 'PROVIDER_ERROR' : c.code;
}

/**
 * Validates properties against a schema: unknown names, required ones, scalar types; fills
 * defaults. Returns the normalised map or a message naming the property.
 */
export function checkProperties(
  type: ResourceType,
  props: unknown,
): { ok: true; value: Record<string, unknown> } | { ok: false; path: string; message: string } {
  const given = props === null || props === undefined ? {} : props;
  if (typeof given !== 'object' || Array.isArray(given)) return { ok: false, path: 'properties', message: 'Properties must be a map' };
  const value: Record<string, unknown> = { ...(given as Record<string, unknown>) };
  if (type.anyProperties) return { ok: true, value };
  for (const k of Object.keys(value)) {
    if (!(k in type.properties)) return { ok: false, path: k, message: `Unknown Property ${k}` };
  }
  for (const [k, s] of Object.entries(type.properties)) {
    let v = value[k];
    if (v === undefined || v === null) {
      if (s.default !== undefined) value[k] = s.default;
      else if (s.required) return { ok: false, path: k, message: `Property ${k} not assigned` };
      continue;
    }
    if (s.type === 'integer' || s.type === 'number') {
      const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
      if (typeof n !== 'number' || Number.isNaN(n) || (s.type === 'integer' && !Number.isInteger(n))) {
        return { ok: false, path: k, message: `Value '${String(v)}' is not an integer` };
      }
      v = n;
    } else if (s.type === 'boolean') {
      if (typeof v === 'string' && ['true', 'false'].includes(v.toLowerCase())) v = v.toLowerCase() === 'true';
      if (typeof v !== 'boolean') return { ok: false, path: k, message: `Value '${String(v)}' is not a boolean` };
    } else if (s.type === 'string') {
      if (typeof v === 'number' || typeof v === 'boolean') v = String(v);
      if (typeof v !== 'string') return { ok: false, path: k, message: `Value must be a string` };
    } else if (s.type === 'map') {
      if (typeof v !== 'object' || Array.isArray(v)) return { ok: false, path: k, message: `Value must be a map` };
    } else if (s.type === 'list') {
      if (!Array.isArray(v)) return { ok: false, path: k, message: `Value must be a list` };
    }
    value[k] = v;
  }
  return { ok: true, value };
}

/** Whether going from old to new properties needs a replacement under the type's rules. */
export function needsReplacement(type: ResourceType, oldProps: Record<string, unknown>, newProps: Record<string, unknown>): boolean {
  if (type.needsReplace?.(oldProps, newProps)) return true;
  if (type.anyProperties) return false;
  const keys = new Set([...Object.keys(oldProps), ...Object.keys(newProps)]);
  for (const k of keys) {
    if (!deepEqual(oldProps[k], newProps[k]) && !type.properties[k]?.updateAllowed) return true;
  }
  return false;
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => deepEqual(x, bb[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao).filter((k) => ao[k] !== undefined);
  const bk = Object.keys(bo).filter((k) => bo[k] !== undefined);
  return ak.length === bk.length && ak.every((k) => deepEqual(ao[k], bo[k]));
}
