/**
 * yaql: the expression language of Heat's `yaql` function, re-implemented for the subset Heat
 * templates use (every expression of the TripleO corpus parses and evaluates).
 *
 * Syntax: `$` (the context value; `{data: ...}` at the top of Heat's `yaql`), `$name` and
 * `$1`/`$2` (variables and lambda arguments), member access `.name` and null-safe `?.name`,
 * indexers `[n]` / `["key"]`, function calls `f(x)` and method calls `x.f()` (the receiver is the
 * first argument), keyword/pair arguments `a => b`, numbers, strings in '...', "..." and `...`,
 * `true`/`false`/`null`, lists `[a, b]`, dicts `{k => v}`, operators `+ - * / mod` (`+` joins
 * strings, lists and dicts; `*` repeats lists and strings; int/int is floor division),
 * `= != < > <= >=`, `in`, `=~ !~` (regex), `and or not`, and `->` (evaluate the right side with
 * `$` bound to the left, or inside the scope a `let` returned).
 *
 * Functions: where, select, selectMany, get, items, keys, values, first, last, len, count, sum,
 * contains, reduce, mergeWith, flatten, range, join, split, let, regex().search / .matches,
 * switch, coalesce, str, int, float, bool, format, list, toList, dict, any, all, distinct, toSet,
 * max, min, orderBy, orderByDescending, isEmpty, startsWith, endsWith, replace, toLower, toUpper,
 * trim, substring, indexOf, concat, skip, take, limit, isList, isDict, isString, isInteger,
 * isNumber, isBoolean.
 *
 * Limits (Heat's defaults): a collection is iterated only up to 200 items (limit_iterators),
 * produced values are bounded by a 10000-byte quota (memory_quota, estimated as Python's shallow
 * sys.getsizeof), and evaluation has a step budget, so a hostile expression cannot hang.
 */
import { YaqlError } from './error.js';
import { parseYaql, type YaqlNode } from './parser.js';
import { Evaluator, HEAT_LIMITS, type YaqlLimits } from './evaluate.js';

export { YaqlError } from './error.js';
export { HEAT_LIMITS, type YaqlLimits } from './evaluate.js';

export interface CompiledYaql {
  readonly source: string;
  /** Evaluates with `$` bound to `context`. Throws YaqlError. */
  evaluate(context: unknown, limits?: YaqlLimits): unknown;
}

const CACHE_LIMIT = 1000;
const cache = new Map<string, YaqlNode>();

/** Parses an expression (cached); throws YaqlError `Parse error: ...` / `Lexical error: ...`. */
export function compileYaql(source: string): CompiledYaql {
  let ast = cache.get(source);
  if (!ast) {
    ast = parseYaql(source);
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(source, ast);
  }
  const tree = ast;
  return {
    source,
    evaluate(context: unknown, limits: YaqlLimits = HEAT_LIMITS): unknown {
      try {
        return new Evaluator(limits).run(tree, context);
      } catch (e) {
        if (e instanceof YaqlError) throw e;
        if (e instanceof RangeError) throw new YaqlError(`Expression too deep: ${e.message}`);
        throw e;
      }
    },
  };
}
