import type { Snippet } from './snippet.js';
import { listItems } from './args.js';

export interface ResourceReference {
  name: string;
  via: 'get_resource' | 'get_attr';
  /** Path of the referencing call, e.g. `resources.x.properties.Value.get_attr`. */
  path: string;
}

export interface SnippetReferences {
  resources: ResourceReference[];
  /** Parameter names read by get_param (literal names only). */
  params: string[];
  /** get_file keys (literal keys only). */
  files: string[];
  /** CFN `Ref` names (HOT 2013-05-23): a resource when one of that name exists, else a parameter. */
  refs: { name: string; path: string }[];
}

function literalString(s: Snippet | undefined): string | undefined {
  return s?.kind === 'literal' && typeof s.value === 'string' ? s.value : undefined;
}

/**
 * What a snippet refers to, for the dependency graph. Names computed by functions are not
 * reported (Heat resolves them while building the graph; templates practically never do this).
 * With `conditions`, an `if` whose condition is a name or a boolean only contributes the chosen
 * branch, as Heat parses only that branch; inline condition functions keep both branches.
 */
export function snippetReferences(snippet: Snippet, conditions?: (name: string) => boolean): SnippetReferences {
  const out: SnippetReferences = { resources: [], params: [], files: [], refs: [] };
  const params = new Set<string>();
  const files = new Set<string>();
  const walk = (s: Snippet): void => {
    switch (s.kind) {
      case 'list':
        s.items.forEach(walk);
        return;
      case 'map':
        for (const [, item] of s.entries) walk(item);
        return;
      case 'call': {
        if (s.fn === 'get_resource') {
          const name = literalString(s.args);
          if (name !== undefined) out.resources.push({ name, via: 'get_resource', path: s.path });
        } else if (s.fn === 'get_attr') {
          const name = literalString(listItems(s.args)?.[0]);
          if (name !== undefined) out.resources.push({ name, via: 'get_attr', path: s.path });
        } else if (s.fn === 'get_param') {
          const name = literalString(s.args) ?? literalString(listItems(s.args)?.[0]);
          if (name !== undefined) params.add(name);
        } else if (s.fn === 'get_file') {
          const key = literalString(s.args);
          if (key !== undefined) files.add(key);
        } else if (s.fn === 'Ref') {
          const name = literalString(s.args);
          if (name !== undefined) out.refs.push({ name, path: s.path });
        }
        walk(s.args);
        return;
      }
      case 'if': {
        walk(s.cond);
        const cond = s.cond.kind === 'literal' ? s.cond.value : undefined;
        let chosen: boolean | undefined;
        if (conditions && typeof cond === 'string') chosen = conditions(cond);
        else if (typeof cond === 'boolean') chosen = cond;
        else if (s.cond.kind === 'literal' && cond === null) chosen = true;
        if (chosen !== false) walk(s.then);
        if (chosen !== true && s.otherwise) walk(s.otherwise);
        return;
      }
      default:
        return;
    }
  };
  walk(snippet);
  out.params = [...params];
  out.files = [...files];
  return out;
}
