import { KilnError } from '@kiln/core';
import type { StackSource } from './backend.js';

/** Limits of one tenant; an absent limit is unlimited (up to the storage and payload limits). */
export interface TenantQuota {
  maxStacks?: number | undefined;
  maxResourcesPerStack?: number | undefined;
  /** UTF-8 bytes of template + environment + files of one request. */
  maxTemplateBytes?: number | undefined;
  /** Sustained requests per second (token bucket refill). */
  requestsPerSecond?: number | undefined;
  /** Bucket size: requests allowed in a burst; defaults to requestsPerSecond. */
  burst?: number | undefined;
}

export interface QuotaConfig {
  /** Applies to tenants without their own entry. */
  defaults?: TenantQuota;
  tenants?: Record<string, TenantQuota>;
}

function sizeOf(doc: unknown): number {
  if (doc === undefined) return 0;
  return Buffer.byteLength(typeof doc === 'string' ? doc : JSON.stringify(doc));
}

/**
 * Per-tenant quotas. Counting limits (stacks, resources) are checked against the backend before
 * the write; two concurrent creates may both pass the check (a soft limit, documented). The rate
 * limit is a token bucket per tenant held by each API instance.
 */
export class Quotas {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly config: QuotaConfig = {}) {}

  limitOf(tenant: string): TenantQuota {
    return this.config.tenants?.[tenant] ?? this.config.defaults ?? {};
  }

  /** Takes one token from the tenant's bucket or throws RATE_LIMITED with a retry hint. */
  takeRequest(tenant: string, now = Date.now()): void {
    const q = this.limitOf(tenant);
    if (q.requestsPerSecond === undefined) return;
    const burst = q.burst ?? Math.max(1, q.requestsPerSecond);
    const b = this.buckets.get(tenant) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * q.requestsPerSecond);
    b.at = now;
    this.buckets.set(tenant, b);
    if (b.tokens < 1) {
      const retryAfterMs = Math.ceil(((1 - b.tokens) / q.requestsPerSecond) * 1000);
      throw new KilnError('RATE_LIMITED', `tenant '${tenant}' exceeds ${q.requestsPerSecond} requests/s`, { detail: { retry_after_ms: retryAfterMs } });
    }
    b.tokens -= 1;
  }

  checkTemplateSize(tenant: string, src: Partial<StackSource>): void {
    const max = this.limitOf(tenant).maxTemplateBytes;
    if (max === undefined) return;
    const files = Object.values(src.files ?? {}).reduce((n, f) => n + sizeOf(f), 0);
    const size = sizeOf(src.template) + sizeOf(src.environment) + files;
    if (size > max) {
      throw new KilnError('QUOTA_EXCEEDED', `template, environment and files take ${size} bytes, the tenant's limit is ${max}`, {
        path: 'body.template',
        detail: { quota: 'template_bytes', limit: max, actual: size },
      });
    }
  }

  checkStacks(tenant: string, existing: number): void {
    const max = this.limitOf(tenant).maxStacks;
    if (max !== undefined && existing >= max) {
      throw new KilnError('QUOTA_EXCEEDED', `tenant '${tenant}' already has ${existing} stacks, the limit is ${max}`, {
        detail: { quota: 'stacks', limit: max, actual: existing },
      });
    }
  }

  checkResources(tenant: string, count: number, path = 'body.template'): void {
    const max = this.limitOf(tenant).maxResourcesPerStack;
    if (max !== undefined && count > max) {
      throw new KilnError('QUOTA_EXCEEDED', `${count} resources exceed the tenant's limit of ${max} per stack`, {
        path,
        detail: { quota: 'resources_per_stack', limit: max, actual: count },
      });
    }
  }
}
