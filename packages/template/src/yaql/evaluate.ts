import { YaqlError } from './error.js';
import type { YaqlNode } from './parser.js';
import { isMap, mergeInto, setKey, pyEquals, pyNumber, pyStr, pyTruthy, compareStrings } from '../functions/python.js';

/** Heat's engine limits: `yaql.limitIterators` and `yaql.memoryQuota` (bytes, as Python's sys.getsizeof). */
export interface YaqlLimits {
  limitIterators: number;
  memoryQuota: number;
  /** Node evaluations before giving up, so a nested expression cannot run for minutes. */
  maxSteps: number;
}

export const HEAT_LIMITS: YaqlLimits = { limitIterators: 200, memoryQuota: 10_000, maxSteps: 200_000 };

/** Variables: `$` is stored as '', `$1` as '1', `$name` as 'name'. */
class Scope {
  constructor(
    private readonly vars: Map<string, unknown>,
    private readonly parent?: Scope,
  ) {}
  get(name: string): unknown {
    if (this.vars.has(name)) return this.vars.get(name);
    return this.parent ? this.parent.get(name) : null;
  }
  child(vars: Map<string, unknown>): Scope {
    return new Scope(vars, this);
  }
}

/** What `let` returns: the scope that `->` evaluates its right side in. */
class LetScope {
  constructor(readonly scope: Scope) {}
}

class Regex {
  constructor(readonly re: RegExp) {}
}

type Lambda = (...args: unknown[]) => unknown;

/** One function call: positional arguments (the receiver first for method calls) and `name => value` pairs. */
class Call {
  constructor(
    readonly ev: Evaluator,
    readonly scope: Scope,
    readonly name: string,
    readonly positional: YaqlNode[],
    readonly pairs: [YaqlNode, YaqlNode][],
  ) {}
  get count(): number {
    return this.positional.length;
  }
  has(i: number): boolean {
    return i < this.positional.length;
  }
  value(i: number): unknown {
    const n = this.positional[i];
    if (!n) throw this.ev.noMatch(this.name);
    return this.ev.eval(n, this.scope);
  }
  values(): unknown[] {
    return this.positional.map((n) => this.ev.eval(n, this.scope));
  }
  /** Argument `i` as a function of `$` (and `$1`, `$2`, ...). */
  lambda(i: number): Lambda {
    const n = this.positional[i];
    if (!n) throw this.ev.noMatch(this.name);
    return (...args: unknown[]) => {
      const vars = new Map<string, unknown>([['', args[0] ?? null]]);
      args.forEach((a, k) => vars.set(String(k + 1), a));
      return this.ev.eval(n, this.scope.child(vars));
    };
  }
}

function typeName(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return 'list';
  if (isMap(v)) return 'dict';
  return typeof v;
}

/** yaql's `str()`: null, true and false are written the yaql way. */
export function yaqlStr(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return pyNumber(v);
  return JSON.stringify(v);
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

function num(v: unknown, fn: string): number {
  if (typeof v !== 'number') throw new YaqlError(`No function "${fn}" matches supplied arguments (got ${typeName(v)})`);
  return v;
}

function compare(a: unknown, b: unknown, op: string): boolean {
  if (typeof a === 'number' && typeof b === 'number') {
    return op === '<' ? a < b : op === '>' ? a > b : op === '<=' ? a <= b : a >= b;
  }
  if (typeof a === 'string' && typeof b === 'string') {
    const c = compareStrings(a, b);
    return op === '<' ? c < 0 : op === '>' ? c > 0 : op === '<=' ? c <= 0 : c >= 0;
  }
  throw new YaqlError(`No function "#operator_${op}" matches supplied arguments`);
}

function sortKey(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'string' && typeof b === 'string') return compareStrings(a, b);
  if (a === null || a === undefined) return b === null || b === undefined ? 0 : -1;
  if (b === null || b === undefined) return 1;
  throw new YaqlError(`Cannot compare ${typeName(a)} and ${typeName(b)}`);
}

/** Python str.format with {} / {0} / {name} fields. */
function pyFormat(fmt: string, args: unknown[], named: Map<string, unknown>): string {
  let auto = 0;
  return fmt.replace(/\{\{|\}\}|\{([^{}]*)\}/g, (m, field: string | undefined) => {
    if (m === '{{') return '{';
    if (m === '}}') return '}';
    const key = (field ?? '').split(/[!:]/)[0] as string;
    let v: unknown;
    if (key === '') v = args[auto++];
    else if (/^\d+$/.test(key)) v = args[Number(key)];
    else v = named.get(key);
    if (v === undefined) throw new YaqlError(`format: no value for field {${key}}`);
    return pyStr(v);
  });
}

function mergeWith(a: unknown, b: unknown): unknown {
  if (isMap(a) && isMap(b)) {
    const out = mergeInto({}, a);
    for (const [k, v] of Object.entries(b)) setKey(out, k, Object.prototype.hasOwnProperty.call(out, k) ? mergeWith(out[k], v) : v);
    return out;
  }
  if (Array.isArray(a) && Array.isArray(b)) return distinct([...a, ...b]);
  return b;
}

function distinct(items: readonly unknown[]): unknown[] {
  const out: unknown[] = [];
  for (const x of items) if (!out.some((y) => pyEquals(x, y))) out.push(x);
  return out;
}

function flatten(items: readonly unknown[], out: unknown[] = []): unknown[] {
  for (const x of items) {
    if (Array.isArray(x)) flatten(x, out);
    else out.push(x);
  }
  return out;
}

function toRegex(pattern: unknown): RegExp {
  if (typeof pattern !== 'string') throw new YaqlError('regex() expects a string pattern');
  try {
    return new RegExp(pattern, 'u');
  } catch {
    try {
      return new RegExp(pattern);
    } catch (e) {
      throw new YaqlError(`Invalid regular expression: ${(e as Error).message}`);
    }
  }
}

type Builtin = (c: Call) => unknown;

export class Evaluator {
  private steps = 0;

  constructor(readonly limits: YaqlLimits) {}

  noMatch(name: string): YaqlError {
    return new YaqlError(`No function "${name}" matches supplied arguments`);
  }

  /** A collection to iterate, bounded by limitIterators. Dicts iterate their keys, as Python does. */
  iter(v: unknown, fn: string): unknown[] {
    let items: unknown[];
    if (Array.isArray(v)) items = v;
    else if (isMap(v)) items = Object.keys(v);
    else if (typeof v === 'string') items = [...v];
    else throw new YaqlError(`No function "${fn}" matches supplied arguments (${typeName(v)} is not a collection)`);
    if (items.length > this.limits.limitIterators) throw new YaqlError(`Collection length exceeds ${this.limits.limitIterators} elements`);
    return items;
  }

  /** Rough sys.getsizeof of a produced value (shallow, as Python's quota check). */
  checkMemory<T>(v: T): T {
    let size = 0;
    if (typeof v === 'string') size = 49 + v.length;
    else if (Array.isArray(v)) size = 56 + 8 * v.length;
    else if (isMap(v)) size = 232 + 48 * Object.keys(v).length;
    this.checkSize(size);
    return v;
  }

  private checkSize(size: number): void {
    if (size > this.limits.memoryQuota) throw new YaqlError(`Expression consumed too much memory (over ${this.limits.memoryQuota} bytes)`);
  }

  eval(n: YaqlNode, scope: Scope): unknown {
    if (++this.steps > this.limits.maxSteps) throw new YaqlError('Expression evaluation exceeded its step budget');
    switch (n.t) {
      case 'lit':
        return n.v;
      case 'var':
        return scope.get(n.name);
      case 'ident':
        return n.name;
      case 'list':
        return this.checkMemory(n.items.map((x) => this.eval(x, scope)));
      case 'dict': {
        const out: Record<string, unknown> = {};
        for (const [k, v] of n.pairs) setKey(out, this.key(this.eval(k, scope)), this.eval(v, scope));
        return this.checkMemory(out);
      }
      case 'member': {
        const obj = this.eval(n.obj, scope);
        if ((obj === null || obj === undefined) && n.nullSafe) return null;
        return this.member(obj, n.name);
      }
      case 'index':
        return this.index(this.eval(n.obj, scope), this.eval(n.index, scope));
      case 'call': {
        let positional = n.args.filter((a) => a.t !== 'pair');
        const pairs = n.args.filter((a): a is Extract<YaqlNode, { t: 'pair' }> => a.t === 'pair').map((p) => [p.l, p.r] as [YaqlNode, YaqlNode]);
        if (n.recv) {
          const recv = this.eval(n.recv, scope);
          if ((recv === null || recv === undefined) && n.nullSafe) return null;
          positional = [{ t: 'lit', v: recv }, ...positional];
        }
        const fn = BUILTINS[n.name];
        if (!fn || !Object.prototype.hasOwnProperty.call(BUILTINS, n.name)) throw new YaqlError(`Unknown function "${n.name}"`);
        return this.checkMemory(fn(new Call(this, scope, n.name, positional, pairs)));
      }
      case 'un': {
        const v = this.eval(n.e, scope);
        if (n.op === 'not') return !pyTruthy(v);
        const x = num(v, `#unary_operator_${n.op}`);
        return n.op === '-' ? -x : x;
      }
      case 'pair':
        throw new YaqlError('Parse error: unexpected "=>"');
      case 'bin':
        return this.binary(n.op, n.l, n.r, scope);
    }
  }

  private key(k: unknown): string {
    if (typeof k === 'string') return k;
    if (typeof k === 'number' || typeof k === 'boolean' || k === null) return yaqlStr(k);
    throw new YaqlError(`Unhashable dictionary key of type ${typeName(k)}`);
  }

  member(obj: unknown, name: string): unknown {
    if (isMap(obj)) return Object.prototype.hasOwnProperty.call(obj, name) ? obj[name] : null;
    if (Array.isArray(obj)) return this.iter(obj, `#operator_.`).map((x) => this.member(x, name));
    throw new YaqlError(`No function "#operator_." matches supplied arguments (${typeName(obj)} has no attribute "${name}")`);
  }

  index(obj: unknown, idx: unknown): unknown {
    if (isMap(obj)) return Object.prototype.hasOwnProperty.call(obj, this.key(idx)) ? obj[this.key(idx)] : null;
    if ((Array.isArray(obj) || typeof obj === 'string') && isInt(idx)) {
      const i = idx < 0 ? obj.length + idx : idx;
      if (i < 0 || i >= obj.length) throw new YaqlError('Index out of range');
      return obj[i];
    }
    throw new YaqlError(`No function "#indexer" matches supplied arguments`);
  }

  private binary(op: string, ln: YaqlNode, rn: YaqlNode, scope: Scope): unknown {
    if (op === 'and') {
      const l = this.eval(ln, scope);
      return pyTruthy(l) ? this.eval(rn, scope) : l;
    }
    if (op === 'or') {
      const l = this.eval(ln, scope);
      return pyTruthy(l) ? l : this.eval(rn, scope);
    }
    if (op === '->') {
      const l = this.eval(ln, scope);
      if (l instanceof LetScope) return this.eval(rn, l.scope);
      return this.eval(rn, scope.child(new Map([['', l]])));
    }
    const l = this.eval(ln, scope);
    const r = this.eval(rn, scope);
    switch (op) {
      case '=':
        return pyEquals(l, r);
      case '!=':
        return !pyEquals(l, r);
      case '<':
      case '>':
      case '<=':
      case '>=':
        return compare(l, r, op);
      case 'in':
        if (typeof r === 'string' && typeof l === 'string') return r.includes(l);
        if (isMap(r)) return typeof l === 'string' && Object.prototype.hasOwnProperty.call(r, l);
        return this.iter(r, '#operator_in').some((x) => pyEquals(x, l));
      case '=~':
      case '!~': {
        if (typeof l !== 'string') throw this.noMatch(`#operator_${op}`);
        const m = (r instanceof Regex ? r.re : toRegex(r)).test(l);
        return op === '=~' ? m : !m;
      }
      case '+':
        if (typeof l === 'number' && typeof r === 'number') return l + r;
        if (typeof l === 'string' && typeof r === 'string') return this.checkMemory(l + r);
        if (Array.isArray(l) && Array.isArray(r)) return this.checkMemory([...l, ...r]);
        if (isMap(l) && isMap(r)) return this.checkMemory(mergeInto(mergeInto({}, l), r));
        throw this.noMatch('#operator_+');
      case '-':
        return num(l, '#operator_-') - num(r, '#operator_-');
      case '*':
        if (typeof l === 'number' && typeof r === 'number') return l * r;
        if ((Array.isArray(l) || typeof l === 'string') && isInt(r)) return this.repeat(l, r);
        if (isInt(l) && (Array.isArray(r) || typeof r === 'string')) return this.repeat(r, l);
        throw this.noMatch('#operator_*');
      case '/': {
        const a = num(l, '#operator_/');
        const b = num(r, '#operator_/');
        if (b === 0) throw new YaqlError('division by zero');
        return isInt(a) && isInt(b) ? Math.floor(a / b) : a / b;
      }
      case 'mod': {
        const a = num(l, '#operator_mod');
        const b = num(r, '#operator_mod');
        if (b === 0) throw new YaqlError('modulo by zero');
        return ((a % b) + b) % b;
      }
      default:
        throw new YaqlError(`Unknown operator ${op}`);
    }
  }

  /** `list * n` / `string * n`, refused before allocating when over the memory quota. */
  private repeat(v: unknown[] | string, times: number): unknown[] | string {
    const n = Math.max(0, times);
    this.checkSize(typeof v === 'string' ? 49 + v.length * n : 56 + 8 * v.length * n);
    if (typeof v === 'string') return v.repeat(n);
    const out: unknown[] = [];
    for (let i = 0; i < n; i++) out.push(...v);
    return out;
  }

  run(node: YaqlNode, root: unknown): unknown {
    this.steps = 0;
    const result = this.eval(node, new Scope(new Map([['', root]])));
    if (result instanceof LetScope) return result.scope.get('');
    if (result instanceof Regex) return result.re.source;
    return result;
  }
}

const str = (v: unknown): string => {
  if (typeof v !== 'string') throw new YaqlError(`Expected a string, got ${typeName(v)}`);
  return v;
};

const dict = (v: unknown, fn: string): Record<string, unknown> => {
  if (!isMap(v)) throw new YaqlError(`No function "${fn}" matches supplied arguments (${typeName(v)} is not a dict)`);
  return v;
};

function minMax(c: Call, sign: 1 | -1): unknown {
  const items = c.count === 1 ? c.ev.iter(c.value(0), c.name) : c.values();
  if (items.length === 0) throw new YaqlError(`${c.name}() of an empty collection`);
  return items.reduce((a, b) => (sortKey(b, a) * sign > 0 ? b : a));
}

/** The yaql standard-library subset (see index.ts for the list). Methods receive the receiver as argument 0. */
const BUILTINS: Record<string, Builtin> = {
  where: (c) => {
    const f = c.lambda(1);
    return c.ev.iter(c.value(0), c.name).filter((x) => pyTruthy(f(x)));
  },
  select: (c) => {
    const f = c.lambda(1);
    return c.ev.iter(c.value(0), c.name).map((x) => f(x));
  },
  selectMany: (c) => {
    const f = c.lambda(1);
    return c.ev.iter(c.value(0), c.name).flatMap((x) => c.ev.iter(f(x), c.name));
  },
  get: (c) => {
    const d = c.value(0);
    const key = c.value(1);
    const dflt = c.has(2) ? c.value(2) : null;
    if (!isMap(d)) throw c.ev.noMatch('get');
    return typeof key === 'string' && Object.prototype.hasOwnProperty.call(d, key) ? d[key] : dflt;
  },
  items: (c) => Object.entries(dict(c.value(0), 'items')).map(([k, v]) => [k, v]),
  keys: (c) => Object.keys(dict(c.value(0), 'keys')),
  values: (c) => Object.values(dict(c.value(0), 'values')),
  first: (c) => {
    const items = c.ev.iter(c.value(0), c.name);
    if (items.length > 0) return items[0];
    if (c.has(1)) return c.value(1);
    throw new YaqlError('first() of an empty collection');
  },
  last: (c) => {
    const items = c.ev.iter(c.value(0), c.name);
    if (items.length > 0) return items[items.length - 1];
    if (c.has(1)) return c.value(1);
    throw new YaqlError('last() of an empty collection');
  },
  len: (c) => {
    const v = c.value(0);
    if (typeof v === 'string' || Array.isArray(v)) return v.length;
    if (isMap(v)) return Object.keys(v).length;
    throw c.ev.noMatch('len');
  },
  count: (c) => {
    const v = c.value(0);
    if (isMap(v)) return Object.keys(v).length;
    return c.ev.iter(v, c.name).length;
  },
  sum: (c) => c.ev.iter(c.value(0), c.name).reduce((a: number, b) => a + num(b, 'sum'), c.has(1) ? num(c.value(1), 'sum') : 0),
  contains: (c) => {
    const coll = c.value(0);
    const v = c.value(1);
    if (typeof coll === 'string') return typeof v === 'string' && coll.includes(v);
    if (isMap(coll)) return typeof v === 'string' && Object.prototype.hasOwnProperty.call(coll, v);
    return c.ev.iter(coll, c.name).some((x) => pyEquals(x, v));
  },
  reduce: (c) => {
    const items = c.ev.iter(c.value(0), c.name);
    const f = c.lambda(1);
    let acc: unknown;
    let start = 0;
    if (c.has(2)) acc = c.value(2);
    else {
      if (items.length === 0) throw new YaqlError('reduce() of an empty collection with no initial value');
      acc = items[0];
      start = 1;
    }
    for (let i = start; i < items.length; i++) acc = f(acc, items[i]);
    return acc;
  },
  mergeWith: (c) => mergeWith(dict(c.value(0), 'mergeWith'), dict(c.value(1), 'mergeWith')),
  flatten: (c) => flatten(c.ev.iter(c.value(0), c.name)),
  range: (c) => {
    const a = num(c.value(0), 'range');
    const [start, stop] = c.has(1) ? [a, num(c.value(1), 'range')] : [0, a];
    const step = c.has(2) ? num(c.value(2), 'range') : 1;
    if (step === 0) throw new YaqlError('range() step must not be zero');
    const out: number[] = [];
    for (let i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (out.length >= c.ev.limits.limitIterators) throw new YaqlError(`Collection length exceeds ${c.ev.limits.limitIterators} elements`);
      out.push(i);
    }
    return out;
  },
  join: (c) => {
    const a = c.value(0);
    const b = c.value(1);
    // Both `sep.join(collection)` and `collection.join(sep)` exist in yaql.
    if (typeof a === 'string' && typeof b !== 'string') return c.ev.iter(b, c.name).map(yaqlStr).join(a);
    return c.ev.iter(a, c.name).map(yaqlStr).join(str(b));
  },
  split: (c) => {
    const s = str(c.value(0));
    const sep = c.has(1) ? c.value(1) : null;
    const max = c.has(2) ? num(c.value(2), 'split') : -1;
    const parts = sep === null ? s.trim().split(/\s+/).filter((x) => x !== '') : s.split(str(sep));
    if (max >= 0 && parts.length > max + 1 && sep !== null) return [...parts.slice(0, max), parts.slice(max).join(str(sep))];
    return parts;
  },
  let: (c) => {
    const vars = new Map<string, unknown>();
    c.values().forEach((v, i) => vars.set(String(i + 1), v));
    for (const [k, v] of c.pairs) {
      if (k.t !== 'ident') throw new YaqlError('let() keyword argument names must be identifiers');
      vars.set(k.name, c.ev.eval(v, c.scope));
    }
    return new LetScope(c.scope.child(vars));
  },
  regex: (c) => new Regex(toRegex(c.value(0))),
  search: (c) => {
    const r = c.value(0);
    const s = str(c.value(1));
    const m = (r instanceof Regex ? r.re : toRegex(r)).exec(s);
    return m ? m[0] : null;
  },
  matches: (c) => {
    const a = c.value(0);
    const b = c.value(1);
    if (a instanceof Regex) return a.re.test(str(b));
    return toRegex(b).test(str(a));
  },
  switch: (c) => {
    for (const [cond, value] of c.pairs) if (pyTruthy(c.ev.eval(cond, c.scope))) return c.ev.eval(value, c.scope);
    return null;
  },
  coalesce: (c) => {
    for (let i = 0; i < c.count; i++) {
      const v = c.value(i);
      if (v !== null && v !== undefined) return v;
    }
    return null;
  },
  str: (c) => yaqlStr(c.value(0)),
  int: (c) => {
    const v = c.value(0);
    if (v === null) return 0;
    if (typeof v === 'number') return Math.trunc(v);
    if (typeof v === 'boolean') return v ? 1 : 0;
    if (typeof v === 'string' && /^\s*[+-]?\d+\s*$/.test(v)) return Number.parseInt(v, 10);
    throw new YaqlError(`invalid literal for int(): ${yaqlStr(v)}`);
  },
  float: (c) => {
    const v = c.value(0);
    if (v === null) return 0;
    const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
    if (Number.isNaN(n)) throw new YaqlError(`could not convert to float: ${yaqlStr(v)}`);
    return n;
  },
  bool: (c) => pyTruthy(c.value(0)),
  format: (c) => {
    const [fmt, ...args] = c.values();
    const named = new Map(c.pairs.map(([k, v]) => [k.t === 'ident' ? k.name : yaqlStr(c.ev.eval(k, c.scope)), c.ev.eval(v, c.scope)]));
    return pyFormat(str(fmt), args, named);
  },
  list: (c) => c.values(),
  toList: (c) => [...c.ev.iter(c.value(0), c.name)],
  dict: (c) => {
    const out: Record<string, unknown> = {};
    if (c.count === 1) {
      for (const item of c.ev.iter(c.value(0), c.name)) {
        if (!Array.isArray(item) || item.length !== 2) throw new YaqlError('dict() items must be [key, value] pairs');
        setKey(out, yaqlStr(item[0]), item[1]);
      }
    }
    for (const [k, v] of c.pairs) setKey(out, k.t === 'ident' ? k.name : yaqlStr(c.ev.eval(k, c.scope)), c.ev.eval(v, c.scope));
    return out;
  },
  any: (c) => {
    const items = c.ev.iter(c.value(0), c.name);
    const f = c.has(1) ? c.lambda(1) : (x: unknown) => x;
    return items.some((x) => pyTruthy(f(x)));
  },
  all: (c) => {
    const items = c.ev.iter(c.value(0), c.name);
    const f = c.has(1) ? c.lambda(1) : (x: unknown) => x;
    return items.every((x) => pyTruthy(f(x)));
  },
  distinct: (c) => distinct(c.ev.iter(c.value(0), c.name)),
  toSet: (c) => distinct(c.ev.iter(c.value(0), c.name)),
  max: (c) => minMax(c, 1),
  min: (c) => minMax(c, -1),
  orderBy: (c) => {
    const f = c.lambda(1);
    return c.ev
      .iter(c.value(0), c.name)
      .map((x) => [f(x), x] as const)
      .sort((a, b) => sortKey(a[0], b[0]))
      .map(([, x]) => x);
  },
  orderByDescending: (c) => {
    const f = c.lambda(1);
    return c.ev
      .iter(c.value(0), c.name)
      .map((x) => [f(x), x] as const)
      .sort((a, b) => sortKey(b[0], a[0]))
      .map(([, x]) => x);
  },
  isEmpty: (c) => {
    const v = c.value(0);
    return v === null || (isMap(v) ? Object.keys(v).length === 0 : c.ev.iter(v, c.name).length === 0);
  },
  startsWith: (c) => str(c.value(0)).startsWith(str(c.value(1))),
  endsWith: (c) => str(c.value(0)).endsWith(str(c.value(1))),
  replace: (c) => c.ev.checkMemory(str(c.value(0)).split(str(c.value(1))).join(str(c.value(2)))),
  toLower: (c) => str(c.value(0)).toLowerCase(),
  toUpper: (c) => str(c.value(0)).toUpperCase(),
  trim: (c) => str(c.value(0)).trim(),
  substring: (c) => {
    const s = str(c.value(0));
    const start = num(c.value(1), 'substring');
    const len = c.has(2) ? num(c.value(2), 'substring') : undefined;
    const from = start < 0 ? Math.max(0, s.length + start) : start;
    return len === undefined || len < 0 ? s.slice(from) : s.slice(from, from + len);
  },
  indexOf: (c) => {
    const coll = c.value(0);
    const v = c.value(1);
    if (typeof coll === 'string') return coll.indexOf(str(v));
    return c.ev.iter(coll, c.name).findIndex((x) => pyEquals(x, v));
  },
  concat: (c) => {
    const vals = c.values();
    if (vals.every((v) => typeof v === 'string')) return vals.join('');
    return vals.flatMap((v) => c.ev.iter(v, c.name));
  },
  skip: (c) => c.ev.iter(c.value(0), c.name).slice(num(c.value(1), 'skip')),
  take: (c) => c.ev.iter(c.value(0), c.name).slice(0, num(c.value(1), 'take')),
  limit: (c) => c.ev.iter(c.value(0), c.name).slice(0, num(c.value(1), 'limit')),
  isList: (c) => Array.isArray(c.value(0)),
  isDict: (c) => isMap(c.value(0)),
  isString: (c) => typeof c.value(0) === 'string',
  isInteger: (c) => isInt(c.value(0)),
  isNumber: (c) => typeof c.value(0) === 'number',
  isBoolean: (c) => typeof c.value(0) === 'boolean',
};
