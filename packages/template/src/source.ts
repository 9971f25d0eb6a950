import { KilnError } from '@kiln/core';
import { LineCounter, isCollection, parseDocument, visit, type DocumentOptions, type ParseOptions, type ScalarTag, type SchemaOptions } from 'yaml';
import { isMap } from './functions/python.js';

/** Heat's default `max_template_size`. */
export const DEFAULT_MAX_TEMPLATE_BYTES = 512 * 1024;

/**
 * YAML as Heat reads it (PyYAML SafeLoader, YAML 1.1): yes/no/on/off are booleans, but
 * timestamps stay strings so that `heat_template_version: 2013-05-23` is the string Heat
 * compares against. Duplicate keys are allowed (the last one wins), as in PyYAML.
 */
const PY_TRUE: ScalarTag = { tag: 'tag:yaml.org,2002:bool', default: true, test: /^(?:yes|Yes|YES|true|True|TRUE|on|On|ON)$/, resolve: () => true };
const PY_FALSE: ScalarTag = { tag: 'tag:yaml.org,2002:bool', default: true, test: /^(?:no|No|NO|false|False|FALSE|off|Off|OFF)$/, resolve: () => false };
const DROPPED_TAGS = new Set(['tag:yaml.org,2002:timestamp', 'tag:yaml.org,2002:bool']);

const YAML_OPTIONS: ParseOptions & DocumentOptions & SchemaOptions = {
  schema: 'yaml-1.1',
  // PyYAML's booleans are the yes/no/true/false/on/off words only (not y/n).
  customTags: (tags) => [PY_TRUE, PY_FALSE, ...tags.filter((t) => typeof t === 'string' || !DROPPED_TAGS.has(t.tag))],
  uniqueKeys: false,
  prettyErrors: true,
};

const COMPLEX_KEY_HINT = /\?|[\]}]\s*:/;

/** Alias expansion bound (tripleo templates use anchors; a billion-laughs document must not). */
const MAX_ALIAS_COUNT = 10_000;

export interface ParseTextOptions {
  /** Refuse larger documents with TEMPLATE_TOO_LARGE (default 512 KiB). */
  maxBytes?: number;
  /** Where the text came from, for error messages. */
  name?: string;
}

/** Parses YAML (or JSON, which is YAML) into plain data; syntax errors are YAML_SYNTAX with line/column. */
export function parseYaml(text: string, name = '[root stack]'): unknown {
  const lineCounter = new LineCounter();
  let doc;
  try {
    doc = parseDocument(text, { ...YAML_OPTIONS, lineCounter });
  } catch (e) {
    throw new KilnError('YAML_SYNTAX', `Error parsing template ${name} ${(e as Error).message}`, { cause: e });
  }
  const err = doc.errors[0];
  if (err) {
    const pos = err.linePos?.[0];
    throw new KilnError('YAML_SYNTAX', `Error parsing template ${name} ${err.message.trim()}`, {
      detail: pos ? { line: pos.line, column: pos.col } : undefined,
    });
  }
  // PyYAML refuses mapping keys that are themselves maps or lists (unhashable in Python). Such
  // a key needs `?` or a flow collection before `:`, so most texts skip the extra pass.
  if (COMPLEX_KEY_HINT.test(text)) visit(doc, {
    Pair(_, pair) {
      if (isCollection(pair.key)) {
        const pos = lineCounter.linePos(pair.key.range?.[0] ?? 0);
        throw new KilnError('YAML_SYNTAX', `Error parsing template ${name} while constructing a mapping found unhashable key at line ${pos.line}, column ${pos.col}`, {
          detail: { line: pos.line, column: pos.col },
        });
      }
    },
  });
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    throw new KilnError('YAML_SYNTAX', `Error parsing template ${name} ${(e as Error).message}`, { cause: e });
  }
}

/** validate_template_limit: Heat counts characters of the template text. */
function checkSize(text: string, maxBytes: number): void {
  if (text.length > maxBytes) {
    throw new KilnError('TEMPLATE_TOO_LARGE', `Template size (${text.length} bytes) exceeds maximum allowed size (${maxBytes} bytes).`, {
      detail: { actual: text.length, limit: maxBytes },
    });
  }
}

/** template_format.parse: JSON, else YAML, into a template map (not yet validated). */
export function parseTemplateText(text: string, opts: ParseTextOptions = {}): Record<string, unknown> {
  checkSize(text, opts.maxBytes ?? DEFAULT_MAX_TEMPLATE_BYTES);
  let tpl: unknown;
  try {
    tpl = JSON.parse(text);
  } catch {
    tpl = parseYaml(text, opts.name) ?? {};
  }
  if (!isMap(tpl)) throw new KilnError('TEMPLATE_INVALID', 'The template is not a JSON object or YAML mapping.');
  if (!('heat_template_version' in tpl || 'HeatTemplateFormatVersion' in tpl || 'AWSTemplateFormatVersion' in tpl)) {
    throw new KilnError('TEMPLATE_VERSION', 'Template format version not found.');
  }
  return tpl;
}
