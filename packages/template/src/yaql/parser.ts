import { YaqlError } from './error.js';

/** yaql syntax tree. */
export type YaqlNode =
  | { t: 'lit'; v: unknown }
  | { t: 'var'; name: string }
  | { t: 'ident'; name: string }
  | { t: 'list'; items: YaqlNode[] }
  | { t: 'dict'; pairs: [YaqlNode, YaqlNode][] }
  | { t: 'call'; name: string; recv: YaqlNode | undefined; args: YaqlNode[]; nullSafe: boolean }
  | { t: 'member'; obj: YaqlNode; name: string; nullSafe: boolean }
  | { t: 'index'; obj: YaqlNode; index: YaqlNode }
  | { t: 'bin'; op: string; l: YaqlNode; r: YaqlNode }
  | { t: 'un'; op: string; e: YaqlNode }
  | { t: 'pair'; l: YaqlNode; r: YaqlNode };

type TokenType = 'num' | 'str' | 'ident' | 'var' | 'op' | 'eof';
interface Token {
  type: TokenType;
  value: string;
  num?: number;
  pos: number;
}

const KEYWORD_OPS = new Set(['and', 'or', 'not', 'in', 'mod']);
const OPS = ['->', '=>', '?.', '!=', '<=', '>=', '=~', '!~', '.', '[', ']', '(', ')', '{', '}', ',', '+', '-', '*', '/', '=', '<', '>'];
const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', b: '\b', f: '\f', '0': '\0', '\\': '\\', "'": "'", '"': '"', '`': '`', '/': '/' };

/** Longest accepted expression; keeps parsing cost and recursion depth bounded. */
const MAX_EXPRESSION = 10_000;
const MAX_DEPTH = 200;

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i] as string;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const start = i;
    if (/[0-9]/.test(c)) {
      const m = /^[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(src.slice(i)) as RegExpExecArray;
      out.push({ type: 'num', value: m[0], num: Number(m[0]), pos: start });
      i += m[0].length;
      continue;
    }
    if (c === "'" || c === '"' || c === '`') {
      let s = '';
      i++;
      while (i < src.length && src[i] !== c) {
        if (src[i] === '\\' && c !== '`') {
          const e = src[i + 1];
          if (e === undefined) break;
          if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(src.slice(i + 2, i + 6))) {
            s += String.fromCharCode(parseInt(src.slice(i + 2, i + 6), 16));
            i += 6;
            continue;
          }
          s += ESCAPES[e] ?? `\\${e}`;
          i += 2;
          continue;
        }
        s += src[i];
        i++;
      }
      if (i >= src.length) throw new YaqlError(`Lexical error: unterminated string at position ${start}`);
      i++;
      out.push({ type: 'str', value: s, pos: start });
      continue;
    }
    if (c === '$') {
      const m = /^[A-Za-z0-9_]*/.exec(src.slice(i + 1)) as RegExpExecArray;
      out.push({ type: 'var', value: m[0], pos: start });
      i += 1 + m[0].length;
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i)) as RegExpExecArray;
      out.push({ type: KEYWORD_OPS.has(m[0]) ? 'op' : 'ident', value: m[0], pos: start });
      i += m[0].length;
      continue;
    }
    const op = OPS.find((o) => src.startsWith(o, i));
    if (!op) throw new YaqlError(`Lexical error: illegal character '${c}' at position ${start}`);
    out.push({ type: 'op', value: op, pos: start });
    i += op.length;
  }
  out.push({ type: 'eof', value: '', pos: src.length });
  return out;
}

/** Binding powers (higher binds tighter), following yaql's operator table. */
const INFIX: Record<string, { bp: number; right?: boolean }> = {
  '->': { bp: 1, right: true },
  or: { bp: 2 },
  and: { bp: 3 },
  '=': { bp: 5 },
  '!=': { bp: 5 },
  '<': { bp: 5 },
  '>': { bp: 5 },
  '<=': { bp: 5 },
  '>=': { bp: 5 },
  in: { bp: 5 },
  '=~': { bp: 6 },
  '!~': { bp: 6 },
  '+': { bp: 7 },
  '-': { bp: 7 },
  '*': { bp: 8 },
  '/': { bp: 8 },
  mod: { bp: 8 },
};
const NOT_BP = 4;
const UNARY_BP = 9;
const POSTFIX_BP = 10;

class Parser {
  private i = 0;
  private depth = 0;
  constructor(private readonly tokens: Token[]) {}

  private peek(): Token {
    return this.tokens[this.i] as Token;
  }
  private next(): Token {
    return this.tokens[this.i++] as Token;
  }
  private unexpected(tok: Token): never {
    if (tok.type === 'eof') throw new YaqlError('Parse error: unexpected end of statement');
    throw new YaqlError(`Parse error: unexpected '${tok.type === 'str' ? JSON.stringify(tok.value) : tok.value}' at position ${tok.pos}`);
  }
  private isOp(value: string): boolean {
    const t = this.peek();
    return t.type === 'op' && t.value === value;
  }
  private expect(value: string): void {
    const t = this.next();
    if (t.type !== 'op' || t.value !== value) this.unexpected(t);
  }

  parseStatement(): YaqlNode {
    const e = this.expr(0);
    if (this.peek().type !== 'eof') this.unexpected(this.peek());
    return e;
  }

  expr(minBp: number): YaqlNode {
    if (++this.depth > MAX_DEPTH) throw new YaqlError('Parse error: expression nested too deeply');
    try {
      let left = this.prefix();
      for (;;) {
        const t = this.peek();
        if (t.type !== 'op') break;
        if ((t.value === '.' || t.value === '?.' || t.value === '[') && POSTFIX_BP > minBp) {
          left = this.postfix(left);
          continue;
        }
        const info = INFIX[t.value];
        if (!info || info.bp <= minBp) break;
        this.next();
        const right = this.expr(info.right ? info.bp - 1 : info.bp);
        left = { t: 'bin', op: t.value, l: left, r: right };
      }
      return left;
    } finally {
      this.depth--;
    }
  }

  private prefix(): YaqlNode {
    const t = this.next();
    switch (t.type) {
      case 'num':
        return { t: 'lit', v: t.num };
      case 'str':
        return { t: 'lit', v: t.value };
      case 'var':
        return { t: 'var', name: t.value };
      case 'ident':
        if (t.value === 'true') return { t: 'lit', v: true };
        if (t.value === 'false') return { t: 'lit', v: false };
        if (t.value === 'null') return { t: 'lit', v: null };
        if (this.isOp('(')) {
          this.next();
          return { t: 'call', name: t.value, recv: undefined, args: this.args(')'), nullSafe: false };
        }
        return { t: 'ident', name: t.value };
      case 'op':
        if (t.value === '(') {
          const e = this.expr(0);
          this.expect(')');
          return e;
        }
        if (t.value === '[') return { t: 'list', items: this.args(']') };
        if (t.value === '{') {
          const pairs = this.args('}').map((a) => {
            if (a.t !== 'pair') throw new YaqlError('Parse error: dictionary items must be key => value pairs');
            return [a.l, a.r] as [YaqlNode, YaqlNode];
          });
          return { t: 'dict', pairs };
        }
        if (t.value === '-' || t.value === '+') return { t: 'un', op: t.value, e: this.expr(UNARY_BP) };
        if (t.value === 'not') return { t: 'un', op: 'not', e: this.expr(NOT_BP) };
        return this.unexpected(t);
      default:
        return this.unexpected(t);
    }
  }

  private postfix(left: YaqlNode): YaqlNode {
    const t = this.next();
    if (t.value === '[') {
      const index = this.expr(0);
      this.expect(']');
      return { t: 'index', obj: left, index };
    }
    const nullSafe = t.value === '?.';
    const name = this.next();
    if (name.type !== 'ident') return this.unexpected(name);
    if (this.isOp('(')) {
      this.next();
      return { t: 'call', name: name.value, recv: left, args: this.args(')'), nullSafe };
    }
    return { t: 'member', obj: left, name: name.value, nullSafe };
  }

  /** Comma-separated arguments up to `close`; `a => b` makes a pair (keyword arguments, dict items, switch cases). */
  private args(close: string): YaqlNode[] {
    const out: YaqlNode[] = [];
    if (this.isOp(close)) {
      this.next();
      return out;
    }
    for (;;) {
      const e = this.expr(0);
      if (this.isOp('=>')) {
        this.next();
        out.push({ t: 'pair', l: e, r: this.expr(0) });
      } else out.push(e);
      const t = this.next();
      if (t.type === 'op' && t.value === close) return out;
      if (t.type !== 'op' || t.value !== ',') this.unexpected(t);
    }
  }
}

export function parseYaql(src: string): YaqlNode {
  if (src.length > MAX_EXPRESSION) throw new YaqlError(`Parse error: expression longer than ${MAX_EXPRESSION} characters`);
  return new Parser(tokenize(src)).parseStatement();
}
