/**
 * Python's formatting and comparison rules, because Heat's results are Python values printed by
 * Python: `str()` of numbers and booleans, `repr()` in messages, `json.dumps` (ensure_ascii,
 * ", " and ": " separators) and `==` (where True == 1).
 */

/** A plain mapping (YAML/JSON object, also one without a prototype). */
export function isMap(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** `obj[key] = value` that also stores a key named `__proto__` as data (never as the prototype). */
export function setKey(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

/** Shallow merge of mappings, later ones winning (Python's dict.update). */
export function mergeInto(target: Record<string, unknown>, source: Record<string, unknown>): Record<string, unknown> {
  for (const k of Object.keys(source)) setKey(target, k, source[k]);
  return target;
}

/** Python's float repr switches to exponent form below 1e-4 and from 1e16. */
export function pyNumber(n: number): string {
  if (Number.isNaN(n)) return 'nan';
  if (!Number.isFinite(n)) return n > 0 ? 'inf' : '-inf';
  const abs = Math.abs(n);
  // Integral values print as Python ints: YAML integers are ints in Heat.
  if (Number.isInteger(n) && abs <= Number.MAX_SAFE_INTEGER) return String(n);
  if (abs !== 0 && (abs < 1e-4 || abs >= 1e16)) {
    const [mant, exp] = n.toExponential().split('e') as [string, string];
    const sign = exp.startsWith('-') ? '-' : '+';
    const digits = exp.replace(/^[+-]/, '');
    return `${mant}e${sign}${digits.padStart(2, '0')}`;
  }
  return String(n);
}

/** Python `str(v)`. */
export function pyStr(v: unknown): string {
  if (typeof v === 'string') return v;
  return pyRepr(v);
}

function pyQuote(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === '\\') out += '\\\\';
    else if (ch === quote) out += `\\${quote}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out + quote;
}

/** Python `repr(v)` of JSON-like data. */
export function pyRepr(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'number') return pyNumber(v);
  if (typeof v === 'string') return pyQuote(v);
  if (Array.isArray(v)) return `[${v.map(pyRepr).join(', ')}]`;
  if (typeof v === 'object') {
    return `{${Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => `${pyQuote(k)}: ${pyRepr(x)}`)
      .join(', ')}}`;
  }
  return String(v);
}

function jsonString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i] as string;
    const c = s.charCodeAt(i);
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (c < 0x20 || c > 0x7e) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return out + '"';
}

/** Python `json.dumps(v, sort_keys=sortKeys)` with its default separators and ensure_ascii. */
export function pyJson(v: unknown, sortKeys = true): string {
  if (v === null || v === undefined) return 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return 'NaN';
    if (!Number.isFinite(v)) return v > 0 ? 'Infinity' : '-Infinity';
    return pyNumber(v);
  }
  if (typeof v === 'string') return jsonString(v);
  if (Array.isArray(v)) return `[${v.map((x) => pyJson(x, sortKeys)).join(', ')}]`;
  if (isMap(v)) {
    const keys = Object.keys(v);
    if (sortKeys) keys.sort(compareStrings);
    return `{${keys.map((k) => `${jsonString(k)}: ${pyJson(v[k], sortKeys)}`).join(', ')}}`;
  }
  throw new TypeError(`Object of type ${typeof v} is not JSON serializable`);
}

/** Python's string order (by code point). */
export function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  const ai = [...a];
  const bi = [...b];
  const n = Math.min(ai.length, bi.length);
  for (let i = 0; i < n; i++) {
    const x = (ai[i] as string).codePointAt(0) ?? 0;
    const y = (bi[i] as string).codePointAt(0) ?? 0;
    if (x !== y) return x - y;
  }
  return ai.length - bi.length;
}

/** Python `==` on JSON-like data (booleans compare as 0/1 with numbers). */
export function pyEquals(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  const an = typeof a === 'number' || typeof a === 'boolean';
  const bn = typeof b === 'number' || typeof b === 'boolean';
  if (an && bn) return Number(a) === Number(b);
  if (a === null || b === null || a === undefined || b === undefined) return (a ?? null) === (b ?? null);
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => pyEquals(x, b[i]));
  }
  if (isMap(a)) {
    if (!isMap(b)) return false;
    const ak = Object.keys(a);
    if (ak.length !== Object.keys(b).length) return false;
    return ak.every((k) => Object.prototype.hasOwnProperty.call(b, k) && pyEquals(a[k], b[k]));
  }
  return false;
}

/** Python truthiness. */
export function pyTruthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (isMap(v)) return Object.keys(v).length > 0;
  return true;
}

/** Python `int(v)` for the values templates hold; undefined when Python would raise. */
export function pyInt(v: unknown): number | undefined {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'number') return Number.isFinite(v) ? Math.trunc(v) : undefined;
  if (typeof v === 'string') {
    const t = v.trim().replace(/_/g, '');
    if (!/^[+-]?\d+$/.test(t)) return undefined;
    return Number.parseInt(t, 10);
  }
  return undefined;
}

/** Python `s.split(sep)`; `sep` null splits on runs of whitespace. */
export function pySplit(s: string, sep: string | null): string[] {
  if (sep === null) {
    const t = s.trim();
    return t === '' ? [] : t.split(/\s+/);
  }
  return s.split(sep);
}

const ALWAYS_SAFE = /[A-Za-z0-9_.\-~]/;

/** urllib.parse.quote (UTF-8, `safe` characters kept). */
export function pyQuoteUrl(s: string, safe = '/'): string {
  let out = '';
  for (const ch of s) {
    if (ALWAYS_SAFE.test(ch) || safe.includes(ch)) out += ch;
    else for (const b of Buffer.from(ch, 'utf8')) out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** urllib.parse.quote_plus with safe=''. */
export function pyQuotePlus(s: string): string {
  return s
    .split(' ')
    .map((part) => pyQuoteUrl(part, ''))
    .join('+');
}
