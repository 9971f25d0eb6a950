import { KilnError } from '@kiln/core';
import type { HotVersion } from './contract.js';
import { asKilnError, guardStack } from './failure.js';
import { lookupFunction, type FunctionDef } from './table.js';
import { isMap } from './python.js';
import { versionAtLeast } from './versions.js';

export type ParseMode = 'value' | 'condition';

/** A parsed template value: plain data with function calls, resolved later against a host. */
export type Snippet = LiteralNode | ListNode | MapNode | CallNode | IfNode | RemovedNode | ErrorNode;

/** Data with no function call inside, kept as the raw value (shared, never copied: do not mutate). */
export interface LiteralNode {
  readonly kind: 'literal';
  readonly value: unknown;
}
export interface ListNode {
  readonly kind: 'list';
  readonly items: readonly Snippet[];
}
export interface MapNode {
  readonly kind: 'map';
  readonly entries: readonly (readonly [string, Snippet])[];
}
export interface CallNode {
  readonly kind: 'call';
  readonly fn: string;
  /** Path of the call, ending with the function name, e.g. `resources.x.properties.Value.get_attr`. */
  readonly path: string;
  readonly args: Snippet;
  readonly version: HotVersion;
  readonly def: FunctionDef;
}
/** `if` is a macro: only the chosen branch counts; construct errors in branches are deferred as ErrorNodes. */
export interface IfNode {
  readonly kind: 'if';
  readonly path: string;
  /** Parsed in condition mode. */
  readonly cond: Snippet;
  readonly then: Snippet;
  /** Undefined for the 2-argument form of 2021-04-16 (a false condition yields the null sentinel). */
  readonly otherwise: Snippet | undefined;
}
/** A function removed in this version: validation fails; resolution leaves the raw snippet as it is. */
export interface RemovedNode {
  readonly kind: 'removed';
  readonly fn: string;
  readonly path: string;
  readonly raw: unknown;
}
/** A construct-time error that matters only if this part of the tree is used (an `if` branch). */
export interface ErrorNode {
  readonly kind: 'error';
  readonly error: KilnError;
}

const IF_FORM = 'Arguments to "if" must be of the form: [condition_name, value_if_true, value_if_false]';

/**
 * Deeper data is refused: it bounds the recursion of every later walk (resolution, JSON
 * serialisation, equality), so no input can overflow the stack.
 */
export const MAX_NESTING = 1000;

class Parser {
  private depth = 0;
  /** YAML aliases share subtrees: each shared object is parsed once (an alias bomb stays linear). */
  private readonly parsed = new WeakMap<object, Snippet>();

  constructor(
    readonly version: HotVersion,
    readonly mode: ParseMode,
  ) {}

  parse(raw: unknown, path: string): Snippet {
    if (raw === null || typeof raw !== 'object') return { kind: 'literal', value: raw };
    if (this.depth >= MAX_NESTING) throw new KilnError('TEMPLATE_INVALID', `Value nested deeper than ${MAX_NESTING} levels`, { path });
    const known = this.parsed.get(raw);
    if (known) return known;
    this.depth++;
    try {
      const node = this.parseContainer(raw, path);
      this.parsed.set(raw, node);
      return node;
    } finally {
      this.depth--;
    }
  }

  private parseContainer(raw: object, path: string): Snippet {
    if (Array.isArray(raw)) {
      const items = raw.map((x, i) => this.parse(x, `${path}[${i}]`));
      return items.every((s) => s.kind === 'literal') ? { kind: 'literal', value: raw } : { kind: 'list', items };
    }
    if (isMap(raw)) {
      const keys = Object.keys(raw);
      if (keys.length === 1) {
        const fn = keys[0] as string;
        const node = this.call(fn, raw[fn], `${path}.${fn}`);
        if (node) return node;
      }
      const entries = keys.map((k) => [k, this.parse(raw[k], `${path}.${k}`)] as const);
      return entries.every(([, s]) => s.kind === 'literal') ? { kind: 'literal', value: raw } : { kind: 'map', entries };
    }
    return { kind: 'literal', value: raw };
  }

  /** The node for `{fn: args}`, or undefined when `fn` is not a function here (plain data). */
  private call(fn: string, rawArgs: unknown, path: string): Snippet | undefined {
    const entry = lookupFunction(fn, this.version, this.mode);
    if (!entry) return undefined;
    if (entry.kind === 'removed') return { kind: 'removed', fn, path, raw: { [fn]: rawArgs } };
    if (entry.kind === 'invalid') throw new KilnError('FUNCTION_INVALID', `The function "${fn}" is invalid in this context`, { path });
    if (entry.kind === 'if') return this.ifNode(rawArgs, path);
    const args = this.parse(rawArgs, path);
    const node: CallNode = { kind: 'call', fn, path, args, version: this.version, def: entry.def };
    try {
      entry.def.check?.(args, node);
    } catch (e) {
      throw asKilnError(e, path);
    }
    return node;
  }

  private ifNode(rawArgs: unknown, path: string): IfNode {
    const condParser = new Parser(this.version, 'condition');
    condParser.depth = this.depth;
    const nullable = versionAtLeast(this.version, '2021-04-16');
    if (!Array.isArray(rawArgs) || rawArgs.length === 0 || !(rawArgs.length === 3 || (nullable && rawArgs.length === 2))) {
      throw new KilnError('FUNCTION_INVALID', IF_FORM, { path });
    }
    const cond = condParser.parse(rawArgs[0], `${path}[0]`);
    return {
      kind: 'if',
      path,
      cond,
      then: this.deferred(rawArgs[1], `${path}[1]`),
      otherwise: rawArgs.length === 3 ? this.deferred(rawArgs[2], `${path}[2]`) : undefined,
    };
  }

  private deferred(raw: unknown, path: string): Snippet {
    try {
      return this.parse(raw, path);
    } catch (e) {
      return { kind: 'error', error: asKilnError(e, path) };
    }
  }
}

/**
 * Builds the function tree of a raw template value (§0 rules 1-2): a mapping is a call only with
 * exactly one key naming a function of this version. Construct-time errors are KilnErrors
 * (FUNCTION_INVALID) prefixed with the path of the call. In 'condition' mode only the version's
 * condition functions are calls; other functions are invalid there.
 */
export function parseSnippet(raw: unknown, version: HotVersion, path: string, mode: ParseMode = 'value'): Snippet {
  return guardStack(path, () => new Parser(version, mode).parse(raw, path));
}
