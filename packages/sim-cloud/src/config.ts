import { KilnError } from '@kiln/core';

/** Every kind of object the simulated cloud holds. */
export type Kind =
  | 'server'
  | 'network'
  | 'subnet'
  | 'port'
  | 'router'
  | 'floatingip'
  | 'security_group'
  | 'volume'
  | 'loadbalancer'
  | 'listener'
  | 'pool'
  | 'member'
  | 'healthmonitor';

export const KINDS: readonly Kind[] = [
  'server',
  'network',
  'subnet',
  'port',
  'router',
  'floatingip',
  'security_group',
  'volume',
  'loadbalancer',
  'listener',
  'pool',
  'member',
  'healthmonitor',
];

/** A latency distribution in milliseconds. */
export type Distribution =
  | { dist: 'fixed'; ms: number }
  | { dist: 'uniform'; min: number; max: number }
  /** Log-normal around `median` with shape `sigma`, cut at `max` when given (long tails without absurd outliers). */
  | { dist: 'lognormal'; median: number; sigma: number; max?: number };

/**
 * Latency per transition. Kind names are the create (build) latency of that kind; `attach` and
 * `detach` are volume attachment changes, `reboot` a server reboot, `delete` every asynchronous
 * delete, `api` extra time before every API answer. `default` covers any key not given.
 */
export type LatencyKey = Kind | 'attach' | 'detach' | 'reboot' | 'delete' | 'api' | 'default';
export type LatencyConfig = Partial<Record<LatencyKey, Distribution>>;

/**
 * Fault knobs. Shares are probabilities in [0, 1] decided per object at creation (or per call);
 * rates are per object per hour (a Poisson process: 60 means about once a minute per object).
 */
export interface Faults {
  /** Share of servers that stay in BUILD forever. */
  serverBuildStuck: number;
  /** Share of servers that go to ERROR instead of ACTIVE at the end of the build. */
  serverBootError: number;
  /** Rate at which an ACTIVE server goes to ERROR later. */
  serverErrorRate: number;
  /** Rate at which an ACTIVE server vanishes (deleted behind everyone's back). */
  serverVanishRate: number;
  /** Share of ports that are unreachable from creation (status DOWN, binding failed). */
  portUnreachable: number;
  /** Rate at which a port becomes unreachable later. */
  portUnreachableRate: number;
  /** Share of volumes that go to `error` instead of `available` at creation. */
  volumeCreateError: number;
  /** Rate at which an available or in-use volume goes offline (status `error`). */
  volumeOfflineRate: number;
  /** Rate at which an ACTIVE load-balancer member stops forwarding (operating_status ERROR). */
  memberDownRate: number;
  /** Share of cloud API calls answered with a 5xx before doing anything. */
  apiErrorShare: number;
  /** Share of creates that DO happen but are answered with a 5xx (the ambiguous case idempotency keys exist for). */
  apiErrorAfterCreateShare: number;
  /** Share of volume attaches/detaches and router interface adds/removes that DO happen but are answered with a 5xx (a replayed action must find its effect). */
  apiErrorAfterActionShare: number;
  /** Share of cloud API calls answered 429 with Retry-After. */
  apiThrottleShare: number;
  /** Retry-After, in seconds, of injected 429s. */
  retryAfterSeconds: number;
  /** Share of cloud API calls delayed by `slowCallMs`. */
  slowCallShare: number;
  slowCallMs: number;
}

export const NO_FAULTS: Faults = {
  serverBuildStuck: 0,
  serverBootError: 0,
  serverErrorRate: 0,
  serverVanishRate: 0,
  portUnreachable: 0,
  portUnreachableRate: 0,
  volumeCreateError: 0,
  volumeOfflineRate: 0,
  memberDownRate: 0,
  apiErrorShare: 0,
  apiErrorAfterCreateShare: 0,
  apiErrorAfterActionShare: 0,
  apiThrottleShare: 0,
  retryAfterSeconds: 1,
  slowCallShare: 0,
  slowCallMs: 0,
};

/** Per-tenant limits; -1 (or absent) means unlimited. */
export interface Quota {
  instances: number;
  cores: number;
  ram: number;
  volumes: number;
  gigabytes: number;
  networks: number;
  subnets: number;
  ports: number;
  routers: number;
  floatingips: number;
  security_groups: number;
  loadbalancers: number;
  listeners: number;
  pools: number;
  members: number;
  healthmonitors: number;
}

export interface QuotaConfig {
  /** Limits for every tenant not named in `tenants`. */
  default?: Partial<Quota>;
  tenants?: Record<string, Partial<Quota>>;
}

/** Token bucket per tenant over cloud API calls (not /control, /inventory, /events). */
export interface RateLimitConfig {
  /** Calls per second refilled; 0 or absent disables limiting. */
  perSecond?: number;
  /** Bucket size (burst); defaults to perSecond. */
  burst?: number;
  /** Overrides per tenant. */
  tenants?: Record<string, { perSecond: number; burst?: number }>;
}

export const DEFAULT_LATENCY: LatencyConfig = {
  default: { dist: 'uniform', min: 50, max: 200 },
  server: { dist: 'uniform', min: 1000, max: 3000 },
  volume: { dist: 'uniform', min: 300, max: 1000 },
  loadbalancer: { dist: 'uniform', min: 1000, max: 3000 },
  delete: { dist: 'uniform', min: 20, max: 100 },
  api: { dist: 'fixed', ms: 0 },
};

const FAULT_KEYS = new Set(Object.keys(NO_FAULTS));

/** Checks a (partial) faults object from a user or the control API. */
export function validateFaults(input: unknown, path = 'faults'): Partial<Faults> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new KilnError('REQUEST_INVALID', 'faults must be an object', { path });
  }
  const out: Partial<Faults> = {};
  for (const [k, v] of Object.entries(input)) {
    if (!FAULT_KEYS.has(k)) throw new KilnError('REQUEST_INVALID', `unknown fault knob '${k}' (known: ${[...FAULT_KEYS].join(', ')})`, { path: `${path}.${k}` });
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new KilnError('REQUEST_INVALID', 'must be a non-negative number', { path: `${path}.${k}` });
    }
    const isShare = k.endsWith('Share') || k === 'serverBuildStuck' || k === 'serverBootError' || k === 'portUnreachable' || k === 'volumeCreateError';
    if (isShare && v > 1) throw new KilnError('REQUEST_INVALID', 'a share must be between 0 and 1', { path: `${path}.${k}` });
    (out as Record<string, number>)[k] = v;
  }
  const merged = { ...NO_FAULTS, ...out };
  if (merged.serverBuildStuck + merged.serverBootError > 1) {
    throw new KilnError('REQUEST_INVALID', 'serverBuildStuck + serverBootError must not exceed 1', { path });
  }
  return out;
}

export function validateDistribution(input: unknown, path: string): Distribution {
  const d = input as Record<string, unknown> | null;
  const num = (k: string): number => {
    const v = d?.[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new KilnError('REQUEST_INVALID', `${k} must be a non-negative number`, { path: `${path}.${k}` });
    return v;
  };
  switch (d?.dist) {
    case 'fixed':
      return { dist: 'fixed', ms: num('ms') };
    case 'uniform': {
      const min = num('min');
      const max = num('max');
      if (max < min) throw new KilnError('REQUEST_INVALID', 'max must be >= min', { path });
      return { dist: 'uniform', min, max };
    }
    case 'lognormal': {
      const out: Distribution = { dist: 'lognormal', median: num('median'), sigma: num('sigma') };
      if (d.max !== undefined) out.max = num('max');
      return out;
    }
    default:
      throw new KilnError('REQUEST_INVALID', "dist must be 'fixed', 'uniform' or 'lognormal'", { path: `${path}.dist` });
  }
}

const QUOTA_KEYS = new Set(['instances', 'cores', 'ram', 'volumes', 'gigabytes', 'networks', 'subnets', 'ports', 'routers', 'floatingips', 'security_groups', 'loadbalancers', 'listeners', 'pools', 'members', 'healthmonitors']);

function validateQuota(input: unknown, path: string): Partial<Quota> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new KilnError('REQUEST_INVALID', 'must be an object', { path });
  for (const [k, v] of Object.entries(input)) {
    if (!QUOTA_KEYS.has(k)) throw new KilnError('REQUEST_INVALID', `unknown quota '${k}' (known: ${[...QUOTA_KEYS].join(', ')})`, { path: `${path}.${k}` });
    if (typeof v !== 'number' || !Number.isInteger(v) || v < -1) throw new KilnError('REQUEST_INVALID', 'must be an integer >= -1 (-1 = unlimited)', { path: `${path}.${k}` });
  }
  return input as Partial<Quota>;
}

export function validateQuotas(input: unknown, path = 'quotas'): QuotaConfig {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new KilnError('REQUEST_INVALID', 'quotas must be an object', { path });
  const q = input as Record<string, unknown>;
  for (const k of Object.keys(q)) if (k !== 'default' && k !== 'tenants') throw new KilnError('REQUEST_INVALID', "expected 'default' and/or 'tenants'", { path: `${path}.${k}` });
  const out: QuotaConfig = {};
  if (q.default !== undefined) out.default = validateQuota(q.default, `${path}.default`);
  if (q.tenants !== undefined) {
    if (typeof q.tenants !== 'object' || q.tenants === null) throw new KilnError('REQUEST_INVALID', 'must be an object', { path: `${path}.tenants` });
    out.tenants = Object.fromEntries(Object.entries(q.tenants).map(([t, v]) => [t, validateQuota(v, `${path}.tenants.${t}`)]));
  }
  return out;
}

export function validateRateLimits(input: unknown, path = 'rateLimits'): RateLimitConfig {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new KilnError('REQUEST_INVALID', 'rateLimits must be an object', { path });
  const r = input as Record<string, unknown>;
  const rate = (o: Record<string, unknown>, p: string) => {
    for (const [k, v] of Object.entries(o)) {
      if (k === 'tenants' && p === path) continue;
      if (k !== 'perSecond' && k !== 'burst') throw new KilnError('REQUEST_INVALID', "expected 'perSecond' and/or 'burst'", { path: `${p}.${k}` });
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new KilnError('REQUEST_INVALID', 'must be a non-negative number', { path: `${p}.${k}` });
    }
  };
  rate(r, path);
  if (r.tenants !== undefined) {
    if (typeof r.tenants !== 'object' || r.tenants === null) throw new KilnError('REQUEST_INVALID', 'must be an object', { path: `${path}.tenants` });
    for (const [t, v] of Object.entries(r.tenants)) {
      if (typeof v !== 'object' || v === null || typeof (v as Record<string, unknown>).perSecond !== 'number') throw new KilnError('REQUEST_INVALID', 'needs perSecond', { path: `${path}.tenants.${t}` });
      rate(v as Record<string, unknown>, `${path}.tenants.${t}`);
    }
  }
  return r as RateLimitConfig;
}

const LATENCY_KEYS = new Set<string>([...KINDS, 'attach', 'detach', 'reboot', 'delete', 'api', 'default']);

export function validateLatency(input: unknown, path = 'latency'): LatencyConfig {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new KilnError('REQUEST_INVALID', 'latency must be an object', { path });
  const out: LatencyConfig = {};
  for (const [k, v] of Object.entries(input)) {
    if (!LATENCY_KEYS.has(k)) throw new KilnError('REQUEST_INVALID', `unknown latency key '${k}'`, { path: `${path}.${k}` });
    out[k as LatencyKey] = validateDistribution(v, `${path}.${k}`);
  }
  return out;
}

/**
 * Parses a CLI value that is either JSON or a `key=value,key=value` list. For latency, a value
 * `a..b` is uniform a..b ms, `a` is fixed, `ln:median:sigma[:max]` is lognormal.
 */
export function parseFaultsArg(text: string): Partial<Faults> {
  const t = text.trim();
  if (t.startsWith('{')) return validateFaults(parseJsonArg(t, '--faults'), '--faults');
  const obj: Record<string, number> = {};
  for (const [k, v] of splitPairs(t, '--faults')) obj[k] = Number(v);
  return validateFaults(obj, '--faults');
}

export function parseLatencyArg(text: string): LatencyConfig {
  const t = text.trim();
  if (t.startsWith('{')) return validateLatency(parseJsonArg(t, '--latency'), '--latency');
  const obj: Record<string, Distribution> = {};
  for (const [k, v] of splitPairs(t, '--latency')) {
    const range = /^(\d+(?:\.\d+)?)\.\.(\d+(?:\.\d+)?)$/.exec(v);
    const ln = /^ln:(\d+(?:\.\d+)?):(\d+(?:\.\d+)?)(?::(\d+(?:\.\d+)?))?$/.exec(v);
    if (range) obj[k] = { dist: 'uniform', min: Number(range[1]), max: Number(range[2]) };
    else if (ln) obj[k] = ln[3] ? { dist: 'lognormal', median: Number(ln[1]), sigma: Number(ln[2]), max: Number(ln[3]) } : { dist: 'lognormal', median: Number(ln[1]), sigma: Number(ln[2]) };
    else if (/^\d+(?:\.\d+)?$/.test(v)) obj[k] = { dist: 'fixed', ms: Number(v) };
    else throw new KilnError('REQUEST_INVALID', `cannot read latency '${v}' (use 500, 100..900 or ln:median:sigma[:max])`, { path: `--latency.${k}` });
  }
  return validateLatency(obj, '--latency');
}

function parseJsonArg(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new KilnError('REQUEST_INVALID', `not valid JSON: ${(e as Error).message}`, { path });
  }
}

function splitPairs(text: string, path: string): [string, string][] {
  if (text === '') return [];
  return text.split(',').map((pair) => {
    const i = pair.indexOf('=');
    if (i <= 0) throw new KilnError('REQUEST_INVALID', `expected key=value, got '${pair}'`, { path });
    return [pair.slice(0, i).trim(), pair.slice(i + 1).trim()];
  });
}
