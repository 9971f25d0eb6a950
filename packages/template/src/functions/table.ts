import type { FunctionHost, HotVersion } from './contract.js';
import type { CallNode, ParseMode, Snippet } from './snippet.js';
import { BUILTINS } from './builtins.js';
import { versionAtLeast } from './versions.js';

/** What a function reads while resolving. */
export interface ResolveContext {
  readonly host: FunctionHost;
  /** Heat's `Conditions.is_enabled`: a bool as it is, null true, a name looked up; anything else is an invalid condition. */
  isEnabled(cond: unknown): boolean;
}

/** One intrinsic function; version differences live inside, keyed on `call.version`. */
export interface FunctionDef {
  /** Construct/validation-time checks on the parsed (unresolved) arguments. Throws FunctionFailure. */
  check?(args: Snippet, call: CallNode): void;
  /** The result from fully resolved arguments (never Pending: the resolver short-circuits those). */
  apply(args: unknown, call: CallNode, ctx: ResolveContext): unknown;
}

export type TableEntry = { kind: 'fn'; def: FunctionDef } | { kind: 'removed' } | { kind: 'invalid' } | { kind: 'if' };

/** [first version, version that removed it]. Removed functions stay recognised, as Heat's `Removed`. */
const AVAILABILITY = new Map<string, readonly [HotVersion, HotVersion?]>([
  ['get_param', ['2013-05-23']],
  ['get_resource', ['2013-05-23']],
  ['get_attr', ['2013-05-23']],
  ['get_file', ['2013-05-23']],
  ['list_join', ['2013-05-23']],
  ['resource_facade', ['2013-05-23']],
  ['str_replace', ['2013-05-23']],
  ['Ref', ['2013-05-23', '2014-10-16']],
  ['Fn::Join', ['2013-05-23', '2014-10-16']],
  ['Fn::Split', ['2013-05-23', '2014-10-16']],
  ['Fn::Replace', ['2013-05-23', '2014-10-16']],
  ['Fn::Base64', ['2013-05-23', '2014-10-16']],
  ['Fn::GetAZs', ['2013-05-23', '2014-10-16']],
  ['Fn::MemberListToMap', ['2013-05-23', '2014-10-16']],
  ['Fn::ResourceFacade', ['2013-05-23', '2014-10-16']],
  ['Fn::Select', ['2013-05-23', '2015-10-15']],
  ['repeat', ['2015-04-30']],
  ['digest', ['2015-04-30']],
  ['str_split', ['2015-10-15']],
  ['map_merge', ['2016-04-08']],
  ['yaql', ['2016-10-14']],
  ['map_replace', ['2016-10-14']],
  ['if', ['2016-10-14']],
  ['filter', ['2017-02-24']],
  ['str_replace_strict', ['2017-02-24']],
  ['make_url', ['2017-09-01']],
  ['list_concat', ['2017-09-01']],
  ['list_concat_unique', ['2017-09-01']],
  ['str_replace_vstrict', ['2017-09-01']],
  ['contains', ['2017-09-01']],
]);

/** Functions allowed inside conditions (the `conditions` section, `condition:` keys, the first argument of `if`). */
const CONDITION_AVAILABILITY = new Map<string, HotVersion>([
  ['get_param', '2016-10-14'],
  ['equals', '2016-10-14'],
  ['not', '2016-10-14'],
  ['and', '2016-10-14'],
  ['or', '2016-10-14'],
  ['yaql', '2017-09-01'],
  ['contains', '2017-09-01'],
]);

function builtin(fn: string): TableEntry {
  const def = BUILTINS.get(fn);
  if (!def) throw new Error(`no implementation for ${fn}`);
  return { kind: 'fn', def };
}

function valueEntry(fn: string, version: HotVersion): TableEntry | undefined {
  const avail = AVAILABILITY.get(fn);
  if (!avail || !versionAtLeast(version, avail[0])) return undefined;
  if (avail[1] && versionAtLeast(version, avail[1])) return { kind: 'removed' };
  return fn === 'if' ? { kind: 'if' } : builtin(fn);
}

/** The table entry of `fn` in `version` and `mode`, or undefined when `{fn: ...}` is plain data. */
export function lookupFunction(fn: string, version: HotVersion, mode: ParseMode): TableEntry | undefined {
  if (mode === 'value') return valueEntry(fn, version);
  const since = CONDITION_AVAILABILITY.get(fn);
  if (since && versionAtLeast(version, since)) return builtin(fn);
  const entry = valueEntry(fn, version);
  if (!entry) return undefined;
  return entry.kind === 'removed' ? entry : { kind: 'invalid' };
}
