/**
 * Every failure Kiln reports to a user is a KilnError: a stable code a program can switch on,
 * a message a person can read, and where one exists a path into the template or request.
 */
export type ErrorCode =
  | 'TEMPLATE_INVALID'
  | 'TEMPLATE_TOO_LARGE'
  | 'TEMPLATE_VERSION'
  | 'YAML_SYNTAX'
  | 'ENVIRONMENT_INVALID'
  | 'PARAM_MISSING'
  | 'PARAM_TYPE'
  | 'PARAM_CONSTRAINT'
  | 'PARAM_UNKNOWN'
  | 'PARAM_IMMUTABLE'
  | 'FUNCTION_INVALID'
  | 'FUNCTION_UNKNOWN'
  | 'REFERENCE_UNKNOWN'
  | 'DEPENDENCY_CYCLE'
  | 'RESOURCE_TYPE_UNKNOWN'
  | 'PROPERTY_INVALID'
  | 'FILE_MISSING'
  | 'CONDITION_INVALID'
  | 'STACK_NOT_FOUND'
  | 'STACK_EXISTS'
  | 'RESOURCE_NOT_FOUND'
  | 'REQUEST_INVALID'
  | 'REQUEST_TOO_LARGE'
  | 'FORBIDDEN'
  | 'QUOTA_EXCEEDED'
  | 'RATE_LIMITED'
  | 'CONFLICT'
  | 'TIMEOUT'
  | 'UNAVAILABLE'
  | 'NATS_SERVER_MISSING'
  | 'NATS_SERVER_FAILED'
  | 'FENCED'
  | 'DECODE_FAILED'
  | 'INTERNAL';

/** HTTP-like status for each code, so API callers in any language can branch coarsely. */
const STATUS: Record<ErrorCode, number> = {
  TEMPLATE_INVALID: 400,
  TEMPLATE_TOO_LARGE: 413,
  TEMPLATE_VERSION: 400,
  YAML_SYNTAX: 400,
  ENVIRONMENT_INVALID: 400,
  PARAM_MISSING: 400,
  PARAM_TYPE: 400,
  PARAM_CONSTRAINT: 400,
  PARAM_UNKNOWN: 400,
  PARAM_IMMUTABLE: 400,
  FUNCTION_INVALID: 400,
  FUNCTION_UNKNOWN: 400,
  REFERENCE_UNKNOWN: 400,
  DEPENDENCY_CYCLE: 400,
  RESOURCE_TYPE_UNKNOWN: 400,
  PROPERTY_INVALID: 400,
  FILE_MISSING: 400,
  CONDITION_INVALID: 400,
  STACK_NOT_FOUND: 404,
  STACK_EXISTS: 409,
  RESOURCE_NOT_FOUND: 404,
  REQUEST_INVALID: 400,
  REQUEST_TOO_LARGE: 413,
  FORBIDDEN: 403,
  QUOTA_EXCEEDED: 403,
  RATE_LIMITED: 429,
  CONFLICT: 409,
  TIMEOUT: 504,
  UNAVAILABLE: 503,
  NATS_SERVER_MISSING: 500,
  NATS_SERVER_FAILED: 500,
  FENCED: 409,
  DECODE_FAILED: 400,
  INTERNAL: 500,
};

export interface KilnErrorJSON {
  code: ErrorCode;
  message: string;
  path?: string;
  status: number;
  details?: unknown;
}

export class KilnError extends Error {
  readonly code: ErrorCode;
  /** Where the problem is, e.g. `resources.web.properties.networks[0].port`. */
  readonly path: string | undefined;
  /** Structured data about the failure (e.g. a quota and its limit). Not named `details`: uvu reads that name as its own diff text. */
  readonly detail: unknown;

  constructor(code: ErrorCode, message: string, opts: { path?: string | undefined; detail?: unknown; cause?: unknown } = {}) {
    super(opts.path ? `${opts.path}: ${message}` : message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'KilnError';
    this.code = code;
    this.path = opts.path;
    this.detail = opts.detail;
  }

  get status(): number {
    return STATUS[this.code];
  }

  /** The message without the path prefix. */
  get reason(): string {
    return this.path && this.message.startsWith(`${this.path}: `) ? this.message.slice(this.path.length + 2) : this.message;
  }

  toJSON(): KilnErrorJSON {
    const out: KilnErrorJSON = { code: this.code, message: this.message, status: this.status };
    if (this.path !== undefined) out.path = this.path;
    if (this.detail !== undefined) out.details = this.detail;
    return out;
  }

  static fromJSON(j: KilnErrorJSON): KilnError {
    const e = new KilnError(j.code, j.path && j.message.startsWith(`${j.path}: `) ? j.message.slice(j.path.length + 2) : j.message, {
      path: j.path,
      detail: j.details,
    });
    return e;
  }
}

export function isKilnError(e: unknown): e is KilnError {
  return e instanceof KilnError;
}

/** Wraps anything thrown into a KilnError, keeping typed ones as they are. */
export function toKilnError(e: unknown, code: ErrorCode = 'INTERNAL'): KilnError {
  if (e instanceof KilnError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new KilnError(code, message, { cause: e });
}
