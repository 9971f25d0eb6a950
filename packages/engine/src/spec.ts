/**
 * The engine's narrow view of the template layer. The stack supervisor needs a plan (resources,
 * their dependencies and policies, outputs) and resource actors need to resolve their property
 * expressions once their dependencies' data has arrived. `@kiln/template` implements this
 * (see template-adapter.ts); keeping the engine behind this interface keeps the actors testable
 * with plain data.
 */
import type { AttributesRead, ResolveScope, StackSpec } from './types.js';

export type { AttributesRead };

export interface PlannedResource {
  readonly name: string;
  readonly type: string;
  /** Property expressions; references to other resources stay unresolved. */
  readonly properties: unknown;
  /** Resources this one references (get_resource, get_attr, depends_on). */
  readonly requires: readonly string[];
  readonly deletionPolicy: 'Delete' | 'Retain' | 'Snapshot';
  readonly updatePolicy: unknown;
  readonly metadata: unknown;
  /** Which of this resource's attributes resources and outputs read (get_attr); false: none. */
  readonly attributesRead: AttributesRead | false;
  /** ResourceGroup: its member type after the resource_registry (and the member's template, if any). */
  readonly groupMember?: { readonly type: string; readonly nestedTemplate?: NestedTemplate };
  /** Set when the type maps to a template (template resource / provider template). */
  readonly nestedTemplate?: NestedTemplate;
}

export interface NestedTemplate {
  readonly template: unknown;
  readonly files: Record<string, string>;
  readonly environment?: unknown;
}

export interface StackPlan {
  /** Condition-filtered resources in template order. */
  readonly resources: readonly PlannedResource[];
  readonly scope: ResolveScope;
  /** Output expressions; an output whose condition is false has value null. */
  readonly outputs: Readonly<Record<string, { readonly value: unknown; readonly description?: string; readonly requires: readonly string[] }>>;
}

/** What a resolving resource can read about the resources it references. */
export interface DepView {
  has(name: string): boolean;
  /** get_resource; undefined when not known yet. */
  ref(name: string): unknown;
  /** get_attr; undefined when not known yet. */
  attr(name: string, attr: string, path: readonly unknown[]): unknown;
  allAttrs(name: string): Record<string, unknown> | undefined;
}

export type Resolved = { readonly value: unknown } | { readonly pending: string };

export interface TemplateAdapter {
  /** Parse, validate and plan a stack spec. Throws KilnError on bad input. Pure. */
  plan(spec: StackSpec, identity: { readonly stackId: string; readonly stackName: string }): StackPlan;
  /** Resolve an expression against a scope and dependency data. Throws KilnError on bad input. Pure. */
  resolve(expr: unknown, scope: ResolveScope, deps: DepView): Resolved;
}
