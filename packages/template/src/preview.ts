import { KilnError } from '@kiln/core';
import { coerceParam, type ParamType } from './parameters.js';
import { collectPending, pendingSource, selectPath, type GroupView, type ResourceDataSource, type StackDefinition } from './stack.js';

const VALUE_TYPES = ['string', 'number', 'json', 'comma_delimited_list', 'boolean'];

export interface PreviewResource {
  type: string;
  properties: Record<string, unknown>;
  /** ResourceGroup members, by index (up to `maxGroupMembers`). */
  members?: { type: string; properties: Record<string, unknown> }[];
  /** ResourceGroup size, when it is larger than the members listed. */
  member_count?: number;
}

export interface PreviewOptions {
  /**
   * Groups larger than this are not expanded: members are not listed and attributes that
   * list every member stay pending (a preview of a million members is not readable anyway).
   */
  maxGroupMembers?: number;
}

export const DEFAULT_PREVIEW_MAX_MEMBERS = 10_000;

export interface Preview {
  resources: Record<string, PreviewResource>;
  outputs: Record<string, unknown>;
}

/**
 * Resolution without a cloud: attributes of Heat's data-only resources are known from their
 * properties (OS::Heat::Value's `value`, OS::Heat::TestResource's `output`, anything of
 * OS::Heat::None is null, a ResourceGroup's member attributes); everything else is pending.
 */
class PreviewSource implements ResourceDataSource {
  private readonly props = new Map<string, Record<string, unknown>>();
  private readonly groups = new Map<string, GroupView>();
  /** Previewed outputs of template resources' nested stacks (null: not previewable). */
  private readonly nested = new Map<string, Record<string, unknown> | null>();
  readonly host;

  constructor(
    private readonly stack: StackDefinition,
    private readonly maxMembers: number,
  ) {
    this.host = stack.host(this);
  }

  properties(name: string): Record<string, unknown> {
    let p = this.props.get(name);
    if (!p) {
      p = this.stack.resolveResource(name, this, this.host).properties;
      this.props.set(name, p);
    }
    return p;
  }

  group(name: string): GroupView | undefined {
    let g = this.groups.get(name);
    if (!g) {
      g = this.stack.group(name, this.properties(name));
      if (g) this.groups.set(name, g);
    }
    return g;
  }

  ref(name: string): unknown {
    return pendingSource.ref(name);
  }

  attr(name: string, attr: string, path: readonly unknown[]): unknown {
    const def = this.stack.resources.get(name);
    if (!def) return pendingSource.attr(name, attr, path);
    const value = this.attrOf(def.resolved.type, name, attr, () => this.properties(name), path);
    return value === undefined ? pendingSource.attr(name, attr, path) : value;
  }

  /** undefined when the attribute needs a deployed resource. */
  private attrOf(type: string, name: string, attr: string, props: () => Record<string, unknown>, path: readonly unknown[]): unknown {
    switch (type) {
      case 'OS::Heat::None':
        return null;
      case 'OS::Heat::Value':
        if (attr !== 'value') return undefined;
        return selectPath(valueOf(props()), path);
      case 'OS::Heat::TestResource':
        if (attr !== 'output') return undefined;
        return selectPath(props().value ?? null, path);
      case 'OS::Heat::ResourceGroup': {
        const g = this.group(name);
        return g ? this.groupAttr(g, attr, path) : undefined;
      }
    }
    return this.nestedOutput(name, attr, path);
  }

  /** A template resource's attribute is its nested stack's output, previewed the same way. */
  private nestedOutput(name: string, attr: string, path: readonly unknown[]): unknown {
    if (!this.stack.resources.get(name)?.resolved.template) return undefined;
    let nested = this.nested.get(name);
    if (nested === undefined) {
      try {
        const child = this.stack.nestedStack(name, this.properties(name));
        nested = child ? previewStack(child, { maxGroupMembers: this.maxMembers }).outputs : null;
      } catch (e) {
        // A nested stack that cannot be built without deployed values stays pending.
        if (!(e instanceof KilnError) || e.code !== 'PARAM_MISSING') throw e;
        nested = null;
      }
      this.nested.set(name, nested);
    }
    if (nested === null || !(attr in nested)) return undefined;
    return selectPath(nested[attr], path);
  }

  private memberAttr(g: GroupView, index: number, attr: string, path: readonly unknown[]): unknown {
    const m = g.member(index);
    const v = m.resolved.template === undefined ? this.attrOf(m.resolved.type, `${g.name}.${index}`, attr, () => m.properties, path) : this.memberOutput(g, index, attr, path);
    return v === undefined ? pendingSource.attr(`${g.name}.resource.${index}`, attr, path) : v;
  }

  private memberOutput(g: GroupView, index: number, attr: string, path: readonly unknown[]): unknown {
    try {
      const child = g.memberStack(index);
      const outputs = child ? previewStack(child, { maxGroupMembers: this.maxMembers }).outputs : undefined;
      return outputs && attr in outputs ? selectPath(outputs[attr], path) : undefined;
    } catch (e) {
      if (!(e instanceof KilnError) || e.code !== 'PARAM_MISSING') throw e;
      return undefined;
    }
  }

  private groupAttr(g: GroupView, attr: string, path: readonly unknown[]): unknown {
    if (attr.startsWith('resource.')) {
      const [, idx, ...rest] = attr.split('.');
      const index = Number(idx);
      if (!Number.isInteger(index) || index < 0 || index >= g.count) return null;
      if (rest.length > 0) return this.memberAttr(g, index, rest.join('.'), path);
      const [memberAttr, ...memberPath] = path;
      return memberAttr === undefined ? pendingSource.ref(`${g.name}.resource.${index}`) : this.memberAttr(g, index, String(memberAttr), memberPath);
    }
    if (attr === 'refs' || attr === 'refs_map' || attr === 'removed_rsrc_list') return undefined;
    if (g.count > this.maxMembers) return undefined;
    // `attributes`: {member: value of the attribute named by the path}; any other attribute: the
    // list of every member's value, the path applied to each member (as Heat's ResourceGroup).
    if (attr === 'attributes') {
      const [memberAttr, ...memberPath] = path;
      if (memberAttr === undefined) return undefined;
      const out: Record<string, unknown> = {};
      for (let i = 0; i < g.count; i++) out[String(i)] = this.memberAttr(g, i, String(memberAttr), memberPath);
      return out;
    }
    const out: unknown[] = [];
    for (let i = 0; i < g.count; i++) out.push(this.memberAttr(g, i, attr, path));
    return out;
  }

  allAttrs(name: string): unknown {
    const def = this.stack.resources.get(name);
    if (def?.resolved.type === 'OS::Heat::Value') return { value: valueOf(this.properties(name)) };
    if (def?.resolved.type === 'OS::Heat::None') return {};
    return pendingSource.allAttrs(name);
  }
}

/** OS::Heat::Value's value, converted to its `type` like a parameter would be. */
function valueOf(props: Record<string, unknown>): unknown {
  const value = props.value ?? null;
  const type = props.type;
  if (typeof type !== 'string' || !VALUE_TYPES.includes(type) || value === null || collectPending(value).length > 0) return value;
  try {
    return coerceParam(type as ParamType, value);
  } catch {
    return value;
  }
}

/** Resolves every resource (in dependency order) and output of a stack, for `kiln preview`. */
export function previewStack(stack: StackDefinition, opts: PreviewOptions = {}): Preview {
  const maxMembers = opts.maxGroupMembers ?? DEFAULT_PREVIEW_MAX_MEMBERS;
  const source = new PreviewSource(stack, maxMembers);
  const resources: Record<string, PreviewResource> = {};
  for (const name of stack.graph.order()) {
    const def = stack.resources.get(name)!;
    const entry: PreviewResource = { type: def.type, properties: source.properties(name) };
    const g = source.group(name);
    if (g && g.count <= maxMembers) entry.members = Array.from(g.members(), (m) => ({ type: m.type, properties: m.properties }));
    else if (g) entry.member_count = g.count;
    resources[name] = entry;
  }
  // Keep the template's order in the output, not the creation order.
  const ordered: Record<string, PreviewResource> = {};
  for (const name of stack.resources.keys()) ordered[name] = resources[name]!;
  return { resources: ordered, outputs: stack.resolveOutputs(source, source.host) };
}

