/**
 * Contract between the template core (parser, parameters, graph, resolver) and the intrinsic
 * function layer (`functions/`). The function layer owns function tables, construct-time
 * validation, resolution, conditions and yaql; the core owns everything about the stack.
 */

/** Canonical HOT versions (release names map onto these dates). */
export type HotVersion =
  | '2013-05-23'
  | '2014-10-16'
  | '2015-04-30'
  | '2015-10-15'
  | '2016-04-08'
  | '2016-10-14'
  | '2017-02-24'
  | '2017-09-01'
  | '2018-03-02'
  | '2018-08-31'
  | '2021-04-16';

/** Marks a value that cannot be known yet (an attribute of a resource that is not deployed). */
export interface Pending {
  readonly pending: string; // the reference, e.g. "get_attr: [server, first_address]"
}

/**
 * What functions read from the stack being resolved. Implemented by the resolver (core) and,
 * later, by the engine with real attributes.
 */
export interface FunctionHost {
  readonly version: HotVersion;
  /** Parameter value (incl. pseudo parameters OS::stack_id, OS::stack_name, OS::project_id, OS::region); throws KilnError PARAM_MISSING "The Parameter (x) was not provided." */
  param(name: string): unknown;
  /** Whether a resource of that name exists in the (condition-filtered) stack. */
  hasResource(name: string): boolean;
  /** get_resource: the reference id, or Pending when not yet known. */
  resourceRef(name: string): unknown | Pending;
  /** get_attr [name, attr, ...path] (version-specific path handling is the function layer's job; the host receives the path only for 2014-10-16+). Pending when unknown; null when the resource holds no data. */
  resourceAttr(name: string, attr: string, path: readonly unknown[]): unknown | Pending;
  /** get_attr [name] (2015-10-15+): all attributes. */
  resourceAllAttrs(name: string): Record<string, unknown> | Pending;
  /** get_file: the content of the `files` map entry, or undefined when missing. */
  file(key: string): string | undefined;
  /** Whether the named condition of the `conditions` section is true; throws KilnError CONDITION_INVALID `Invalid condition "x"` when unknown. */
  condition(name: string): boolean;
  /** resource_facade: the parent resource's metadata / deletion_policy / update_policy. */
  facade(kind: 'metadata' | 'deletion_policy' | 'update_policy'): unknown;
}
