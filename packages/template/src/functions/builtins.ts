import { createHash } from 'node:crypto';
import type { Snippet } from './snippet.js';
import type { FunctionDef } from './table.js';
import { isFunctionNode, listItems, mapEntries } from './args.js';
import { fail } from './failure.js';
import { isPending } from './values.js';
import { isMap, mergeInto, setKey, pyEquals, pyInt, pyJson, pyQuotePlus, pyQuoteUrl, pyRepr, pySplit, pyStr, pyTruthy, compareStrings } from './python.js';
import { versionAtLeast } from './versions.js';
import { compileYaql, YaqlError } from '../yaql/index.js';

/*
 * Every intrinsic function with Heat's semantics (heat/engine/hot/functions.py and
 * heat/engine/cfn/functions.py). Messages are Heat's, word for word, because users and tests
 * match on them.
 */

type Def = FunctionDef;

function isSequence(v: unknown): v is unknown[] | string {
  return Array.isArray(v) || typeof v === 'string';
}

function unknownReference(name: unknown): never {
  return fail(`The specified reference "${pyStr(name)}" (in unknown) is incorrect.`, 'REFERENCE_UNKNOWN');
}

/** Python `collection[key]` along a path; undefined when Python would raise KeyError/IndexError/TypeError. */
function pathStep(collection: unknown, key: unknown, numericStrings: boolean): { ok: true; value: unknown } | { ok: false } {
  if (typeof key !== 'string' && !(typeof key === 'number' && Number.isInteger(key)) && typeof key !== 'boolean') return { ok: false };
  if (isMap(collection)) {
    if (typeof key !== 'string' || !Object.prototype.hasOwnProperty.call(collection, key)) return { ok: false };
    return { ok: true, value: collection[key] };
  }
  if (isSequence(collection)) {
    let index: number | undefined;
    if (typeof key === 'string') index = numericStrings ? pyInt(key) : undefined;
    else index = Number(key);
    if (index === undefined) return { ok: false };
    const len = collection.length;
    const i = index < 0 ? len + index : index;
    if (i < 0 || i >= len) return { ok: false };
    return { ok: true, value: typeof collection === 'string' ? collection[i] : collection[i] };
  }
  return { ok: false };
}

// ---------------------------------------------------------------------------------------------
// Parameters and resources

const getParam: Def = {
  apply(args, call, { host }) {
    if (!pyTruthy(args)) fail(`Function "${call.fn}" must have arguments`);
    let name: unknown;
    let path: unknown[];
    if (typeof args === 'string') {
      name = args;
      path = [];
    } else if (Array.isArray(args)) {
      name = args[0];
      path = args.slice(1);
    } else {
      fail(`Argument to "${call.fn}" must be string or list`);
    }
    if (typeof name !== 'string') fail(`Parameter name in "${call.fn}" must be string`);
    let value = host.param(name);
    for (const key of path) {
      const step = pathStep(value, key, true);
      if (!step.ok) return '';
      value = step.value;
    }
    return value;
  },
};

const getResource: Def = {
  apply(name, _call, { host }) {
    if (typeof name !== 'string' || !host.hasResource(name)) unknownReference(name);
    return host.resourceRef(name) ?? null;
  },
};

const GET_ATTR_FORMS = 'can be of the next forms: [resource_name] or [resource_name, attribute, (path), ...]';

const getAttr: Def = {
  check(args, call) {
    const items = listItems(args);
    if (versionAtLeast(call.version, '2015-10-15')) {
      if (args.kind === 'literal' && !pyTruthy(args.value)) fail(`Arguments to "${call.fn}" ${GET_ATTR_FORMS}`);
      if (!items) fail(`Argument to "${call.fn}" must be a list`);
      return;
    }
    if (!items) fail(`Argument to "${call.fn}" must be a list`);
    if (items.length < 2) fail(`Arguments to "${call.fn}" must be of the form [resource_name, attribute, (path), ...]`);
  },
  apply(args, call, { host }) {
    const list = args as unknown[];
    const name = list[0];
    if (typeof name !== 'string' || !host.hasResource(name)) unknownReference(name);
    if (list.length === 1) return host.resourceAllAttrs(name) ?? null;
    const attr = list[1];
    if (typeof attr !== 'string') fail(`Attribute name in "${call.fn}" must be a string, not ${pyRepr(attr)}`);
    const path = list.slice(2);
    if (versionAtLeast(call.version, '2014-10-16')) return host.resourceAttr(name, attr, path) ?? null;
    // 2013-05-23 selects along the path itself; any failing step gives None.
    let value = host.resourceAttr(name, attr, []);
    for (const key of path) {
      if (value === null || value === undefined) return null;
      if (isPending(value)) return value;
      const step = pathStep(value, key, false);
      if (!step.ok) return null;
      value = step.value;
    }
    return value;
  },
};

const getFile: Def = {
  apply(key, call, { host }) {
    if (typeof key !== 'string') fail(`Argument to "${call.fn}" must be a string`);
    const content = host.file(key);
    if (content === undefined) fail(`No content found in the "files" section for ${call.fn} path: ${key}`, 'FILE_MISSING');
    return content;
  },
};

const FACADE_HOT = ['metadata', 'deletion_policy', 'update_policy'] as const;
const FACADE_CFN = ['Metadata', 'DeletionPolicy', 'UpdatePolicy'] as const;

function facadeDef(names: readonly string[]): Def {
  return {
    check(args, call) {
      if (args.kind !== 'literal' || typeof args.value !== 'string' || !names.includes(args.value)) {
        fail(`Incorrect arguments to "${call.fn}" should be one of: ${names.join(', ')}`);
      }
    },
    apply(args, _call, { host }) {
      return host.facade(FACADE_HOT[names.indexOf(args as string)] ?? 'metadata');
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Strings

function replaceSyntax(fn: string): string {
  return `"${fn}" syntax should be ${fn}:
              template: This is var1 template var2
              params:
                var1: a
                var2: string`;
}

const CFN_REPLACE_EXAMPLE = '{"Fn::Replace": [ {"$var1": "foo", "%var2%": "bar"}, "$var1 is %var2%"]}';

function replaceDef(kind: 'plain' | 'strict' | 'vstrict' | 'cfn'): Def {
  return {
    check(args, call) {
      let params: Snippet | undefined;
      if (kind === 'cfn') {
        const items = listItems(args);
        if (!items || items.length !== 2) fail(`Incorrect arguments to "${call.fn}" should be: ${CFN_REPLACE_EXAMPLE}`);
        params = items[0];
      } else {
        const entries = mapEntries(args);
        if (!entries) fail(`Arguments to "${call.fn}" must be a map`);
        params = entries.get('params');
        if (!params || !entries.has('template')) fail(replaceSyntax(call.fn));
      }
      if (params && !mapEntries(params) && !isFunctionNode(params)) fail(`"${call.fn}" parameters must be a mapping`);
    },
    apply(args, call) {
      let template: unknown;
      let mapping: unknown;
      if (kind === 'cfn') [mapping, template] = args as unknown[];
      else ({ template, params: mapping } = args as Record<string, unknown>);
      if (typeof template !== 'string') fail(`"${call.fn}" template must be a string`);
      if (!isMap(mapping)) fail(`"${call.fn}" params must be a map`);
      const json = kind !== 'cfn' && versionAtLeast(call.version, '2015-10-15');
      return strReplace(call.fn, template, mapping, { json, strict: kind === 'strict' || kind === 'vstrict', allowEmpty: kind !== 'vstrict' });
    },
  };
}

/** Longest keys first (then lexicographic); text already substituted is never scanned again. */
function strReplace(
  fn: string,
  template: string,
  mapping: Record<string, unknown>,
  opts: { json: boolean; strict: boolean; allowEmpty: boolean },
): string {
  const keys = Object.keys(mapping).sort(compareStrings);
  keys.sort((a, b) => b.length - a.length);
  const unreplaced = new Set(opts.strict ? keys : []);
  const emptyValue = (param: string): never =>
    fail(`${fn} has an undefined or empty value for param ${param}, must be a defined non-empty value`);
  const replacement = (value: unknown, param: string): string => {
    if (value === null || value === undefined) return opts.allowEmpty ? '' : emptyValue(param);
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
      const s = pyStr(value);
      if (!opts.allowEmpty && s === '') emptyValue(param);
      return s;
    }
    if (!opts.json) fail(`"${fn}" params must be strings or numbers, param ${param} is not valid`);
    if (Array.isArray(value) || isMap(value)) {
      if (!opts.allowEmpty && (Array.isArray(value) ? value.length : Object.keys(value).length) === 0) emptyValue(param);
      try {
        return pyJson(value);
      } catch {
        return fail(`"${fn}" params must be strings, numbers, list or map. Failed to json serialize ${pyRepr(value)}`);
      }
    }
    return fail(`"${fn}" params must be strings, numbers, list or map.`);
  };
  const replace = (strings: string[], index: number): string[] => {
    if (index >= keys.length) return strings;
    const placeholder = keys[index] as string;
    if (placeholder === '') fail(`"${fn}" param placeholders must not be empty: empty separator`);
    const value = replacement(mapping[placeholder], placeholder);
    return strings.map((s) => {
      const parts = s.split(placeholder);
      if (parts.length > 1) unreplaced.delete(placeholder);
      return replace(parts, index + 1).join(value);
    });
  };
  const result = replace([template], 0)[0] as string;
  if (unreplaced.size > 0) {
    const missing = [...unreplaced].sort(compareStrings).sort((a, b) => b.length - a.length);
    fail(`The following params were not found in the template: ${missing.join(',')}`);
  }
  return result;
}

function joinDef(): Def {
  return {
    check(args, call) {
      const multi = call.fn === 'list_join' && versionAtLeast(call.version, '2015-10-15');
      const example = multi ? `"${call.fn}" : [ " ", [ "str1", "str2"] ...]` : `"${call.fn}" : [ " ", [ "str1", "str2"]]`;
      const items = listItems(args);
      if (!items || (multi ? items.length < 2 : items.length !== 2)) fail(`Incorrect arguments to "${call.fn}" should be: ${example}`);
    },
    apply(args, call) {
      const [delim, ...lists] = args as unknown[];
      const multi = call.fn === 'list_join' && versionAtLeast(call.version, '2015-10-15');
      const strings: unknown[] = [];
      for (const list of lists) {
        if (multi ? !pyTruthy(list) : list === null || list === undefined) continue;
        if (!Array.isArray(list)) fail(`"${call.fn}" must operate on a list`);
        strings.push(...list);
      }
      if (typeof delim !== 'string') fail(`"${call.fn}" delimiter must be a string`);
      return strings
        .map((s) => {
          if (s === null || s === undefined) return '';
          if (typeof s === 'string') return s;
          if (multi) {
            if (Array.isArray(s) || isMap(s)) return pyJson(s);
            return fail(`Items to join must be string, map or list not ${pyRepr(s).slice(0, 200)}`);
          }
          return fail(`Items to join must be strings not ${pyRepr(s).slice(0, 200)}`);
        })
        .join(delim);
    },
  };
}

const STR_SPLIT_EXAMPLE = '"str_split" : [ ",", "apples,pears", <index>]';

const strSplit: Def = {
  check(args, call) {
    if ((args.kind === 'literal' && typeof args.value === 'string') || mapEntries(args)) {
      fail(`Incorrect arguments to "${call.fn}" should be: ${STR_SPLIT_EXAMPLE}`);
    }
  },
  apply(args, call) {
    if (!Array.isArray(args) || args.length < 2) fail(`Incorrect arguments to "${call.fn}" should be: ${STR_SPLIT_EXAMPLE}`);
    const [delim, str] = args;
    if (str === null || str === undefined) return null;
    if (typeof str !== 'string' || (delim !== null && typeof delim !== 'string')) {
      fail(`Incorrect arguments to "${call.fn}" should be: ${STR_SPLIT_EXAMPLE}`);
    }
    if (delim === '') fail(`Incorrect arguments to "${call.fn}": empty separator`);
    const parts = pySplit(str, delim as string | null);
    if (args.length < 3) return parts;
    const index = pyInt(args[2]);
    if (index === undefined) fail(`Incorrect index to "${call.fn}" should be: ${STR_SPLIT_EXAMPLE}`);
    const i = index < 0 ? parts.length + index : index;
    if (i < 0 || i >= parts.length) fail(`Incorrect index to "${call.fn}" should be between 0 and ${parts.length - 1}`);
    return parts[i];
  },
};

const DIGESTS = new Map([
  ['md5', 'md5'],
  ['sha1', 'sha1'],
  ['sha224', 'sha224'],
  ['sha256', 'sha256'],
  ['sha384', 'sha384'],
  ['sha512', 'sha512'],
  ['sha3_224', 'sha3-224'],
  ['sha3_256', 'sha3-256'],
  ['sha3_384', 'sha3-384'],
  ['sha3_512', 'sha3-512'],
  ['blake2b', 'blake2b512'],
  ['blake2s', 'blake2s256'],
]);

const digest: Def = {
  apply(args, call) {
    if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) fail(`Argument to function "${call.fn}" must be a list of strings`);
    if (args.length !== 2) fail(`Function "${call.fn}" usage: ["<algorithm>", "<value>"]`);
    const [algorithm, value] = args as [string, string];
    const hash = DIGESTS.get(algorithm.toLowerCase());
    if (!hash) fail(`Algorithm must be one of {${[...DIGESTS.keys()].map((k) => `'${k}'`).join(', ')}}`);
    if (/[^\u0000-\u00ff]/.test(value)) fail(`'latin-1' codec can't encode the value of "${call.fn}"`);
    return createHash(hash).update(Buffer.from(value, 'latin1')).digest('hex');
  },
};

// ---------------------------------------------------------------------------------------------
// make_url

const URL_KEYS = ['scheme', 'username', 'password', 'host', 'port', 'path', 'query', 'fragment'];
const USES_NETLOC = new Set(['', 'ftp', 'http', 'gopher', 'nntp', 'telnet', 'imap', 'wais', 'file', 'mms', 'https', 'shttp', 'snews', 'prospero', 'rtsp', 'rtspu', 'rsync', 'svn', 'svn+ssh', 'sftp', 'nfs', 'git', 'git+ssh', 'ws', 'wss']);

/** Heat checks the components in this order and stops at `query`. */
function checkUrlArgs(fn: string, get: (key: string) => { isFunction: boolean; value: unknown } | undefined): void {
  for (const key of URL_KEYS) {
    const arg = get(key);
    if (!arg) continue;
    if (key === 'query') {
      if (!arg.isFunction && !isMap(arg.value)) fail(`The "${key}" argument to "${fn}" must be a map`);
      return;
    }
    if (key === 'port') {
      if (arg.isFunction) continue;
      const port = typeof arg.value === 'number' && Number.isInteger(arg.value) ? arg.value : pyInt(arg.value);
      if (port === undefined) fail(`Invalid URL port "${pyStr(arg.value)}" for ${fn}`);
      if (!(port > 0 && port <= 65535)) fail(`Invalid URL port ${port}, must be in range 1-65535`);
    } else if (!arg.isFunction && typeof arg.value !== 'string') {
      fail(`The "${key}" argument to "${fn}" must be a string`);
    }
  }
}

const makeUrl: Def = {
  check(args, call) {
    const entries = mapEntries(args);
    if (!entries) fail(`The arguments to "${call.fn}" must be a map`);
    const invalid = [...entries.keys()].filter((k) => !URL_KEYS.includes(k));
    if (invalid.length > 0) fail(`Invalid arguments to "${call.fn}": ${invalid.join(', ')}`);
    checkUrlArgs(call.fn, (key) => {
      const s = entries.get(key);
      if (!s) return undefined;
      return s.kind === 'literal' ? { isFunction: false, value: s.value } : { isFunction: isFunctionNode(s), value: isFunctionNode(s) ? undefined : {} };
    });
  },
  apply(args, call) {
    if (!isMap(args)) fail(`The arguments to "${call.fn}" must be a map`);
    checkUrlArgs(call.fn, (key) => (key in args ? { isFunction: false, value: args[key] } : undefined));
    const str = (key: string): string => (typeof args[key] === 'string' ? (args[key] as string) : '');
    const scheme = str('scheme');
    if (scheme.includes(':')) fail(`URL "scheme" should not contain ':'`);
    let netloc = '';
    const username = pyQuoteUrl(str('username'), '');
    const password = pyQuoteUrl(str('password'), '');
    if (username || password) netloc += username + (password ? `:${password}` : '') + '@';
    let host = str('host');
    if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
    host = pyQuoteUrl(host, ':');
    netloc += host.includes(':') ? `[${host}]` : host;
    const port = args['port'];
    if (pyTruthy(port)) netloc += `:${pyStr(port)}`;
    let url = pyQuoteUrl(str('path'));
    const query = isMap(args['query']) ? args['query'] : {};
    const queryText = Object.entries(query)
      .map(([k, v]) => `${pyQuotePlus(k)}=${pyQuotePlus(pyStr(v))}`)
      .join('&')
      .replace(/%2F/g, '/');
    const fragment = pyQuoteUrl(str('fragment'));
    // urllib.parse.urlunsplit (Python 3.11)
    if (netloc || (scheme && USES_NETLOC.has(scheme) && url.slice(0, 2) !== '//')) {
      if (url && !url.startsWith('/')) url = `/${url}`;
      url = `//${netloc}${url}`;
    }
    if (scheme) url = `${scheme}:${url}`;
    if (queryText) url += `?${queryText}`;
    if (fragment) url += `#${fragment}`;
    return url;
  },
};

// ---------------------------------------------------------------------------------------------
// Collections

function repeatSyntax(): string {
  return `"repeat" syntax should be repeat:
              template: This is %var%
              for_each:
                %var%: ['a', 'b', 'c']`;
}

function replaceDeep(keys: readonly string[], values: readonly string[], template: unknown): unknown {
  if (typeof template === 'string') {
    let s = template;
    for (let i = 0; i < keys.length; i++) s = s.split(keys[i] as string).join(values[i] as string);
    return s;
  }
  if (Array.isArray(template)) return template.map((t) => replaceDeep(keys, values, t));
  if (isMap(template)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(template)) setKey(out, replaceDeep(keys, values, k) as string, replaceDeep(keys, values, v));
    return out;
  }
  return template;
}

function* product(lists: readonly (readonly unknown[])[]): Generator<unknown[]> {
  if (lists.length === 0) {
    yield [];
    return;
  }
  const [head, ...rest] = lists as [readonly unknown[], ...(readonly unknown[])[]];
  for (const x of head) for (const tail of product(rest)) yield [x, ...tail];
}

const REPEAT_LIMIT = 1_000_000;

const repeat: Def = {
  check(args, call) {
    const entries = mapEntries(args);
    if (!entries) fail(`Arguments to "${call.fn}" must be a map`);
    const forEach = entries.get('for_each');
    if (!forEach || !entries.has('template')) fail(repeatSyntax());
    if (versionAtLeast(call.version, '2017-09-01')) {
      const perm = entries.get('permutations');
      if (perm && (perm.kind !== 'literal' || typeof perm.value !== 'boolean')) fail(`"permutations" should be boolean type for ${call.fn} function.`);
    }
    if (!isFunctionNode(forEach) && !mapEntries(forEach)) fail(`The "for_each" argument to "${call.fn}" must contain a map`);
  },
  apply(args, call) {
    const { for_each: forEach, template } = args as Record<string, unknown>;
    const nested = versionAtLeast(call.version, '2017-09-01') ? (args as Record<string, unknown>)['permutations'] !== false : true;
    const allowMaps = versionAtLeast(call.version, '2016-10-14') && nested;
    if (!isMap(forEach) || Object.keys(forEach).length === 0) fail(`The "for_each" argument to "${call.fn}" must contain a map`);
    const keys = Object.keys(forEach);
    const lists: unknown[][] = [];
    const lengths: number[] = [];
    for (const value of Object.values(forEach)) {
      if (value === null || value === undefined) {
        lists.push([]);
        continue;
      }
      if (Array.isArray(value)) lists.push(value);
      else if (allowMaps && isMap(value)) lists.push(Object.keys(value));
      else fail(`The values of the "for_each" argument to "${call.fn}" must be lists${allowMaps ? ' or maps' : ''}`);
      lengths.push((lists[lists.length - 1] as unknown[]).length);
    }
    if (!nested && lengths.length > 0 && new Set(lengths).size !== 1) {
      fail(`For ${call.fn}, the length of for_each values should be equal if no nested loop.`);
    }
    const combos: Iterable<unknown[]> = nested
      ? product(lists)
      : Array.from({ length: Math.min(...lists.map((l) => l.length)) }, (_, i) => lists.map((l) => l[i]));
    const out: unknown[] = [];
    for (const combo of combos) {
      if (out.length >= REPEAT_LIMIT) fail(`"${call.fn}" would produce more than ${REPEAT_LIMIT} items`);
      out.push(replaceDeep(keys, combo.map(pyStr), template));
    }
    return out;
  },
};

const mapMerge: Def = {
  apply(args, call) {
    if (!isSequence(args)) fail(`Incorrect arguments to "${call.fn}" should be: "${call.fn}" : [ { "key1": "val1" }, { "key2": "val2" } ]`);
    const out: Record<string, unknown> = {};
    for (const m of args) {
      if (m === null || m === undefined) continue;
      if (!isMap(m)) fail('Incorrect arguments: Items to merge must be maps.');
      mergeInto(out, m);
    }
    return out;
  },
};

function mapReplaceExample(fn: string): string {
  return `"${fn}" : [ { "key1": "val1" }, {"keys": {"key1": "key2"}, "values": {"val1": "val2"}}]`;
}

const mapReplace: Def = {
  apply(args, call) {
    function incorrect(): never {
      return fail(`Incorrect arguments to "${call.fn}" should be: ${mapReplaceExample(call.fn)}`);
    }
    const ensureMap = (m: unknown): Record<string, unknown> => {
      if (m === null || m === undefined) return {};
      if (isMap(m)) return m;
      return fail(`Incorrect arguments: to "${call.fn}", arguments must be a list of maps. Example:  ${mapReplaceExample(call.fn)}`);
    };
    if (!Array.isArray(args) || args.length === 0) incorrect();
    const inMap = ensureMap(args[0]);
    if (args.length < 2) incorrect();
    const repl = ensureMap(args[1]);
    if (args.length !== 2) incorrect();
    if (Object.keys(repl).some((k) => k !== 'keys' && k !== 'values')) incorrect();
    const replKeys = ensureMap(repl['keys']);
    const replValues = ensureMap(repl['values']);
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(inMap)) {
      let key = replKeys[k];
      if (key === null || key === undefined || !Object.prototype.hasOwnProperty.call(replKeys, k)) key = k;
      else if (Object.prototype.hasOwnProperty.call(inMap, pyStr(key)) && pyStr(key) !== k) fail(`key replacement ${pyStr(key)} collides with a key in the input map`);
      else if (Object.prototype.hasOwnProperty.call(out, pyStr(key))) fail(`key replacement ${pyStr(key)} collides with a key in the output map`);
      // Only hashable values (scalars) are looked up, as Python's dict.get does.
      const hashable = typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
      const lookup = hashable ? pyStr(v) : undefined;
      setKey(out, pyStr(key), lookup !== undefined && Object.prototype.hasOwnProperty.call(replValues, lookup) ? replValues[lookup] : v);
    }
    return out;
  },
};

function listConcatDef(unique: boolean): Def {
  return {
    apply(args, call) {
      if (!Array.isArray(args)) fail(`Incorrect arguments to "${call.fn}" should be: "${call.fn}" : [ [ <value 1>, <value 2> ], [ <value 3>, <value 4> ] ]`);
      const out: unknown[] = [];
      for (const m of args) {
        if (m === null || m === undefined) continue;
        if (!Array.isArray(m)) {
          fail(`Incorrect arguments: Items to concat must be lists. ${safeJson(args)} contains an item that is not a list: ${safeJson(m)}`);
        }
        for (const item of m) if (!unique || !out.some((x) => pyEquals(x, item))) out.push(item);
      }
      return out;
    },
  };
}

function safeJson(v: unknown): string {
  try {
    return pyJson(v, false);
  } catch {
    return pyRepr(v);
  }
}

const contains: Def = {
  check(args, call) {
    const items = listItems(args);
    if (!items || items.length === 0) fail(`Incorrect arguments to "${call.fn}" should be: "${call.fn}" : [ "value1", [ "value1", "value2"]]`);
    if (items.length !== 2) fail(`Arguments to "${call.fn}" must be of the form: [value1, [value1, value2]]`);
  },
  apply(args, call) {
    const [value, sequence] = args as [unknown, unknown];
    if (typeof sequence === 'string') {
      if (typeof value !== 'string') fail(`'in <string>' requires string as left operand, not ${pyTypeName(value)}`);
      return sequence.includes(value);
    }
    if (!Array.isArray(sequence)) fail(`Second argument to "${call.fn}" should be a sequence.`);
    return sequence.some((x) => pyEquals(x, value));
  },
};

function pyTypeName(v: unknown): string {
  if (v === null || v === undefined) return 'NoneType';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'string') return 'str';
  return Array.isArray(v) ? 'list' : 'dict';
}

const filter: Def = {
  check(args, call) {
    const items = listItems(args);
    if (!items) fail(`Argument to "${call.fn}" must be a list`);
    if (items.length !== 2) fail(`"${call.fn}" expected 2 arguments of the form [values, sequence] but got ${items.length} arguments instead`);
  },
  apply(args, call) {
    const [values, sequence] = args as [unknown, unknown];
    if (!pyTruthy(sequence)) return sequence;
    if (!Array.isArray(sequence)) fail(`"${call.fn}" only works with lists`);
    if (!pyTruthy(values)) return sequence;
    if (!Array.isArray(values)) fail(`"${call.fn}" filters a list of values`);
    return sequence.filter((item) => !values.some((v) => pyEquals(v, item)));
  },
};

// ---------------------------------------------------------------------------------------------
// Conditions

const equals: Def = {
  check(args, call) {
    const items = listItems(args);
    if (!items || items.length !== 2) fail(`Arguments to "${call.fn}" must be of the form: [value_1, value_2]`);
  },
  apply(args) {
    const [a, b] = args as [unknown, unknown];
    return pyEquals(a, b);
  },
};

const not: Def = {
  check(args, call) {
    if (args.kind === 'literal' && (args.value === null || args.value === undefined)) fail(`Argument to "${call.fn}" must be a condition`);
  },
  apply(args, _call, ctx) {
    return !ctx.isEnabled(args);
  },
};

function booleanDef(all: boolean): Def {
  return {
    check(args, call) {
      const items = listItems(args);
      if (!items) fail(`Arguments to "${call.fn}" must be a list of conditions`);
      if (items.length < 2) fail(`The minimum number of condition arguments to "${call.fn}" is 2.`);
    },
    apply(args, _call, ctx) {
      const items = args as unknown[];
      return all ? items.every((c) => ctx.isEnabled(c)) : items.some((c) => ctx.isEnabled(c));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// yaql

function yaqlSyntax(fn: string): string {
  return `"${fn}" syntax should be ${fn}:
              expression: $.data.var1.sum()
              data:
                var1: [3, 2, 1]`;
}

function compileExpression(fn: string, expression: unknown) {
  if (typeof expression !== 'string') fail(`The "expression" argument to ${fn} must contain a string.`);
  try {
    return compileYaql(expression);
  } catch (e) {
    if (e instanceof YaqlError) fail(`Bad expression ${e.message}.`);
    throw e;
  }
}

const yaql: Def = {
  check(args, call) {
    const entries = mapEntries(args);
    if (!entries) fail(`Arguments to "${call.fn}" must be a map.`);
    const expression = entries.get('expression');
    if (!expression || [...entries.keys()].some((k) => k !== 'expression' && k !== 'data')) fail(yaqlSyntax(call.fn));
    if (expression.kind === 'literal') compileExpression(call.fn, expression.value);
  },
  apply(args, call) {
    const { expression, data } = args as Record<string, unknown>;
    const compiled = compileExpression(call.fn, expression);
    try {
      return compiled.evaluate({ data: data === undefined ? {} : data });
    } catch (e) {
      if (e instanceof YaqlError) fail(e.message);
      throw e;
    }
  },
};

// ---------------------------------------------------------------------------------------------
// CFN functions of HOT 2013-05-23

const select: Def = {
  check(args, call) {
    const items = listItems(args);
    if (!items || items.length !== 2) fail(`Arguments to "${call.fn}" must be of the form [index, collection]`);
  },
  apply(args, call) {
    let [index, collection] = args as [unknown, unknown];
    if (collection === '') return '';
    if (typeof collection === 'string') {
      try {
        collection = JSON.parse(collection);
      } catch (e) {
        fail(`"${call.fn}": ${(e as Error).message}`);
      }
    }
    if (isMap(collection)) {
      if (typeof index !== 'string') fail(`Index to "${call.fn}" must be a string`);
      return Object.prototype.hasOwnProperty.call(collection, index) ? collection[index] : '';
    }
    index = pyInt(index) ?? index;
    if (Array.isArray(collection)) {
      if (typeof index !== 'number') fail(`Index to "${call.fn}" must be an integer`);
      const i = index < 0 ? collection.length + index : index;
      return i >= 0 && i < collection.length ? collection[i] : '';
    }
    if (collection === null || collection === undefined) return '';
    return fail(`Arguments to ${call.fn} not fully resolved`);
  },
};

const CFN_SPLIT_EXAMPLE = '"Fn::Split" : [ ",", "str1,str2"]]';

const cfnSplit: Def = {
  check(args, call) {
    const items = listItems(args);
    if (!items || items.length !== 2) fail(`Incorrect arguments to "${call.fn}" should be: ${CFN_SPLIT_EXAMPLE}`);
  },
  apply(args, call) {
    const [delim, str] = args as [unknown, unknown];
    if (typeof delim !== 'string') fail(`Delimiter for ${call.fn} must be string`);
    if (typeof str !== 'string') fail(`String to split must be string; got <class '${pyTypeName(str)}'>`);
    if (delim === '') fail(`Delimiter for ${call.fn} must not be empty`);
    return str.split(delim);
  },
};

const base64: Def = {
  apply(args, call) {
    if (typeof args !== 'string') fail(`"${call.fn}" argument must be a string`);
    return args;
  },
};

const getAZs: Def = {
  apply() {
    return ['nova'];
  },
};

const MEMBER_LIST_EXAMPLE = `
            {'Fn::MemberListToMap': ['Name', 'Value',
                                     ['.member.0.Name=key',
                                      '.member.0.Value=door']]}
            `;

const memberListToMap: Def = {
  check(args, call) {
    const items = listItems(args);
    if (!items || items.length !== 3) fail(`Wrong Arguments try: "${MEMBER_LIST_EXAMPLE}"`);
    const [key, value] = items as [Snippet, Snippet];
    if (key.kind !== 'literal' || typeof key.value !== 'string') fail(`${call.fn} Key Name must be a string`);
    if (value.kind !== 'literal' || typeof value.value !== 'string') fail(`${call.fn} Value Name must be a string`);
  },
  apply(args) {
    const [keyName, valueName, list] = args as [string, string, unknown];
    if (!Array.isArray(list)) fail('Member list must be a list');
    const members = new Map<number, Map<string, string>>();
    for (const s of list) {
      if (typeof s !== 'string') fail('Member list items must be strings');
      const eq = s.indexOf('=');
      const name = eq < 0 ? s : s.slice(0, eq);
      const value = eq < 0 ? '' : s.slice(eq + 1);
      if (eq < 0) fail('Member list items must be of the form name=value');
      const m = /^\.member\.([0-9]+)\.(.*)$/s.exec(name);
      if (!m) continue;
      const index = Number(m[1]);
      let member = members.get(index);
      if (!member) members.set(index, (member = new Map()));
      member.set(m[2] as string, value);
    }
    const out: Record<string, unknown> = {};
    for (const index of [...members.keys()].sort((a, b) => a - b)) {
      const member = members.get(index) as Map<string, string>;
      if (member.has(keyName) && member.has(valueName)) setKey(out, member.get(keyName) as string, member.get(valueName));
    }
    return out;
  },
};

/** CFN `Ref`: a resource's reference id when such a resource exists, else the parameter. */
const ref: Def = {
  apply(name, _call, { host }) {
    if (typeof name === 'string' && host.hasResource(name)) return host.resourceRef(name);
    if (typeof name !== 'string') unknownReference(name);
    try {
      return host.param(name);
    } catch (e) {
      if ((e as { code?: string }).code === 'PARAM_MISSING') unknownReference(name);
      throw e;
    }
  },
};

export const BUILTINS: ReadonlyMap<string, FunctionDef> = new Map<string, FunctionDef>([
  ['get_param', getParam],
  ['get_resource', getResource],
  ['get_attr', getAttr],
  ['get_file', getFile],
  ['resource_facade', facadeDef(FACADE_HOT)],
  ['str_replace', replaceDef('plain')],
  ['str_replace_strict', replaceDef('strict')],
  ['str_replace_vstrict', replaceDef('vstrict')],
  ['list_join', joinDef()],
  ['str_split', strSplit],
  ['digest', digest],
  ['make_url', makeUrl],
  ['repeat', repeat],
  ['map_merge', mapMerge],
  ['map_replace', mapReplace],
  ['list_concat', listConcatDef(false)],
  ['list_concat_unique', listConcatDef(true)],
  ['contains', contains],
  ['filter', filter],
  ['yaql', yaql],
  ['equals', equals],
  ['not', not],
  ['and', booleanDef(true)],
  ['or', booleanDef(false)],
  ['Ref', ref],
  ['Fn::Select', select],
  ['Fn::Join', joinDef()],
  ['Fn::Split', cfnSplit],
  ['Fn::Replace', replaceDef('cfn')],
  ['Fn::Base64', base64],
  ['Fn::GetAZs', getAZs],
  ['Fn::MemberListToMap', memberListToMap],
  ['Fn::ResourceFacade', facadeDef(FACADE_CFN)],
]);

