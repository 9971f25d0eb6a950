/**
 * The request and reply bodies of every operation of the Kiln request API v1 (docs/api.md), as
 * they travel on the wire (snake_case), so that what a program sends is exactly what the API
 * validates and error paths (`body.parameters.flavor`) name the fields a caller wrote.
 */
import type { KilnEvent } from '@kiln/api';

export type { KilnEvent };

/** HOT template, environment: YAML/JSON text or an already parsed object. */
export type Document = string | Record<string, unknown>;

export interface StackSource {
  template: Document;
  environment?: Document;
  parameters?: Record<string, unknown>;
  /** Files referenced by `get_file` and nested templates, by name. */
  files?: Record<string, string>;
}

/** Writes take an optional client request id; the SDK generates one when absent (safe retries). */
export interface Idempotent {
  request_id?: string;
}

/** The answer to every desired-state write: which stack, which generation now wins. */
export interface GenerationRef {
  id: string;
  name: string;
  generation: number;
}

export interface StackSummary {
  id: string;
  name: string;
  status: string;
  status_reason?: string;
  generation: number;
  created_at: string;
  updated_at: string;
  tags?: string[];
}

export interface Output {
  key: string;
  value?: unknown;
  description?: string;
  error?: string;
}

export interface StackView extends StackSummary {
  description?: string;
  parameters?: Record<string, unknown>;
  outputs: Output[];
  resources: { total: number; by_status: Record<string, number> };
}

export interface ResourceView {
  name: string;
  /** Nested members: `group/3`; absent for the stack's own resources. */
  path?: string;
  type: string;
  status: string;
  status_reason?: string;
  physical_id?: string;
  generation: number;
  updated_at?: string;
}

export interface ResourceDetail extends ResourceView {
  attributes?: Record<string, unknown>;
  properties?: Record<string, unknown>;
  required_by?: string[];
  unhealthy?: boolean;
}

export interface EventsPage {
  events: KilnEvent[];
  /** Pass as `since_seq` for the next page. */
  next_seq: number;
  more: boolean;
}

export interface EngineStatus {
  version: string;
  nodes: Array<{ id: string; partitions: number }>;
  [k: string]: unknown;
}

/** Every operation: its request body and its result. */
export interface Operations {
  'stack.create': [StackSource & Idempotent & { name: string; tags?: string[] }, GenerationRef];
  'stack.update': [StackSource & Idempotent & { stack: string }, GenerationRef];
  'stack.patch': [Partial<StackSource> & Idempotent & { stack: string; clear_parameters?: string[] }, GenerationRef];
  'stack.delete': [Idempotent & { stack: string }, GenerationRef];
  'stack.show': [{ stack: string }, StackView];
  'stack.list': [{ limit?: number; cursor?: string; filter?: { name?: string; status?: string } }, { stacks: StackSummary[]; next_cursor?: string }];
  'stack.validate': [StackSource, { valid: boolean; description?: string; parameters: Record<string, unknown>; resource_count: number }];
  'stack.preview': [StackSource & { stack?: string }, { resources: Array<{ name: string; type: string; action: string }> }];
  'stack.abandon': [{ stack: string }, { adopt_data: Record<string, unknown> }];
  'stack.adopt': [StackSource & Idempotent & { name: string; adopt_data: Record<string, unknown> }, GenerationRef];
  'stack.outputs': [{ stack: string; output?: string }, { outputs: Output[] }];
  'stack.cancel': [Idempotent & { stack: string }, GenerationRef];
  'resource.list': [
    { stack: string; nested_depth?: number; limit?: number; cursor?: string; filter?: { status?: string; type?: string } },
    { resources: ResourceView[]; next_cursor?: string },
  ];
  'resource.show': [{ stack: string; resource: string }, ResourceDetail];
  'resource.mark-unhealthy': [{ stack: string; resource: string; unhealthy?: boolean; reason?: string }, Record<string, never>];
  'resource.signal': [{ stack: string; resource: string; data?: unknown }, Record<string, never>];
  'events.list': [
    { stack?: string; resource?: string; type?: string; status?: string | string[]; since_seq?: number; since_time?: string; limit?: number },
    EventsPage,
  ];
  'events.subscribe': [
    { deliver_subject: string; stack?: string; resource?: string; since_seq?: number; since_time?: string; heartbeat_ms?: number },
    { consumer: string; from_seq: number; replay: number; heartbeat_ms: number },
  ];
  'group.capacity.set': [Idempotent & { stack: string; group: string; capacity: number }, GenerationRef];
  'engine.status': [Record<string, never>, EngineStatus];
}

export type OperationName = keyof Operations;
export type RequestOf<O extends OperationName> = Operations[O][0];
export type ResultOf<O extends OperationName> = Operations[O][1];

/**
 * How a call may be retried after a transport failure (timeout, no responder):
 * - `idempotent`: a write carrying a request id; the same id on every attempt, so the API runs it once;
 * - `read`: no side effect;
 * - `once`: never retried automatically (a signal would be delivered twice, a subscription would
 *   create a second consumer; `watch` re-subscribes on its own terms).
 */
export const RETRY_CLASS: Record<OperationName, 'idempotent' | 'read' | 'once'> = {
  'stack.create': 'idempotent',
  'stack.update': 'idempotent',
  'stack.patch': 'idempotent',
  'stack.delete': 'idempotent',
  'stack.adopt': 'idempotent',
  'stack.cancel': 'idempotent',
  'group.capacity.set': 'idempotent',
  'stack.show': 'read',
  'stack.list': 'read',
  'stack.validate': 'read',
  'stack.preview': 'read',
  'stack.outputs': 'read',
  'resource.list': 'read',
  'resource.show': 'read',
  'events.list': 'read',
  'engine.status': 'read',
  // Setting a flag to the same value twice is harmless.
  'resource.mark-unhealthy': 'read',
  'stack.abandon': 'once',
  'resource.signal': 'once',
  'events.subscribe': 'once',
};
