import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { KilnError } from '@kiln/core';
import { CFN_PARAM_TYPES } from './cfn.js';
import { mergeEnvironments, parseEnvironmentText, type EnvironmentInput } from './environment.js';
import { isMap } from './functions/python.js';
import { parseTemplateText } from './source.js';

/** What a client sends to create/validate/preview a stack: template, environment, files. */
export interface StackRequest {
  template: Record<string, unknown>;
  environment: EnvironmentInput;
  files: Record<string, string>;
}

export interface LoadOptions {
  maxTemplateBytes?: number;
  /**
   * 'error' (heatclient's behaviour): a get_file or template type whose file cannot be read
   * is FILE_MISSING. 'keep': leave the reference as written (for validating corpus templates
   * whose nested files a test supplied under other names).
   */
  missingFiles?: 'error' | 'keep';
}

function readUrl(url: string): string | undefined {
  try {
    if (!url.startsWith('file:')) return undefined;
    return readFileSync(fileURLToPath(url), 'utf8');
  } catch {
    return undefined;
  }
}

function isTemplateText(text: string, maxBytes?: number): Record<string, unknown> | undefined {
  try {
    return parseTemplateText(text, { maxBytes });
  } catch {
    return undefined;
  }
}

/**
 * heatclient's get_file_contents: every `get_file: path` and every `type: x.yaml|x.template`
 * is read relative to `base` into `files` under its absolute URL, and the reference is
 * rewritten to that URL; nested templates are processed the same way (and stored as JSON).
 */
function collectFiles(data: unknown, files: Record<string, string>, base: string, ignore: (key: string, value: unknown) => boolean, opts: LoadOptions, recurse = true): void {
  if (recurse && (Array.isArray(data) || isMap(data))) {
    for (const v of Array.isArray(data) ? data : Object.values(data)) collectFiles(v, files, base, ignore, opts);
  }
  if (!isMap(data)) return;
  for (const [key, value] of Object.entries(data)) {
    if (ignore(key, value) || typeof value !== 'string') continue;
    const url = new URL(value, base).href;
    if (!(url in files)) {
      const content = readUrl(url);
      if (content === undefined) {
        if (opts.missingFiles === 'keep') continue;
        throw new KilnError('FILE_MISSING', `Could not fetch contents for ${url}`, { detail: { url } });
      }
      const nested = isTemplateText(content, opts.maxTemplateBytes);
      files[url] = ''; // placeholder first: templates that include each other terminate
      files[url] = nested ? JSON.stringify(processTemplate(nested, url, files, opts)) : content;
    }
    data[key] = url;
  }
}

const templateIgnore = (key: string, value: unknown): boolean => {
  if (key !== 'get_file' && key !== 'type') return true;
  if (typeof value !== 'string') return true;
  return key === 'type' && !(value.endsWith('.yaml') || value.endsWith('.template'));
};

function processTemplate(template: Record<string, unknown>, url: string, files: Record<string, string>, opts: LoadOptions): Record<string, unknown> {
  collectFiles(template, files, url, templateIgnore, opts);
  return template;
}

function toUrl(path: string): string {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(path) ? path : pathToFileURL(resolvePath(path)).href;
}

/** Reads a template file and everything it references, like `heat stack-create -f`. */
export function loadTemplate(path: string, files: Record<string, string> = {}, opts: LoadOptions = {}): { template: Record<string, unknown>; files: Record<string, string> } {
  const url = toUrl(path);
  const text = readUrl(url);
  if (text === undefined) throw new KilnError('FILE_MISSING', `Could not fetch contents for ${url}`, { detail: { url } });
  const template = parseTemplateText(text, { name: path, maxBytes: opts.maxTemplateBytes });
  return { template: processTemplate(template, url, files, opts), files };
}

const registryIgnore = (key: string, value: unknown): boolean =>
  key === 'base_url' || key === 'hooks' || key === 'restricted_actions' || typeof value !== 'string' || value.includes('::');

/** Reads environment files in order, resolving their registry's template paths, and merges them. */
export function loadEnvironments(
  paths: readonly string[],
  files: Record<string, string> = {},
  opts: LoadOptions = {},
  paramTypes?: Readonly<Record<string, string>>,
): { environment: EnvironmentInput; files: Record<string, string> } {
  const envs: EnvironmentInput[] = [];
  for (const path of paths) {
    const url = toUrl(path);
    const text = readUrl(url);
    if (text === undefined) throw new KilnError('FILE_MISSING', `Could not fetch contents for ${url}`, { detail: { url } });
    const env = parseEnvironmentText(text, path);
    const rr = env.resource_registry;
    if (isMap(rr)) {
      const base = typeof rr.base_url === 'string' ? rr.base_url : url;
      collectFiles(rr, files, base, registryIgnore, opts, false);
      const resources = rr.resources;
      if (isMap(resources)) {
        for (const section of Object.values(resources)) {
          if (!isMap(section)) continue;
          collectFiles(section, files, typeof section.base_url === 'string' ? section.base_url : base, registryIgnore, opts, false);
        }
      }
    }
    envs.push(env);
  }
  return { environment: mergeEnvironments(envs, paramTypes, paths), files };
}

/** The declared type of each parameter (for merging environments), read leniently. */
function parameterTypes(template: Record<string, unknown>): Record<string, string> {
  const params = template.parameters ?? template.Parameters;
  const out: Record<string, string> = {};
  if (!isMap(params)) return out;
  for (const [name, schema] of Object.entries(params)) {
    const t = isMap(schema) ? (schema.type ?? schema.Type) : undefined;
    out[name] = typeof t === 'string' ? CFN_PARAM_TYPES[t] ?? t : 'string';
  }
  return out;
}

/** Template plus environments, the way `kiln validate|preview -t T -e E...` reads them. */
export function loadStackRequest(templatePath: string, environmentPaths: readonly string[] = [], opts: LoadOptions = {}): StackRequest {
  const files: Record<string, string> = {};
  const { template } = loadTemplate(templatePath, files, opts);
  const { environment } = loadEnvironments(environmentPaths, files, opts, parameterTypes(template));
  return { template, environment, files };
}
