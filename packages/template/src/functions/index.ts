/**
 * The intrinsic-function layer of HOT templates: version tables, the Snippet tree built from raw
 * template data, resolution with Heat's semantics, references for the dependency graph, and the
 * `conditions` section. See docs/template-functions.md.
 */
export type { HotVersion, Pending, FunctionHost } from './contract.js';
export { canonicalVersion, HOT_VERSIONS, versionAtLeast } from './versions.js';
export { isPending, pending, NULL_SENTINEL } from './values.js';
export { parseSnippet, type Snippet, type ParseMode } from './snippet.js';
export { resolveSnippet, validateSnippet } from './resolve.js';
export { snippetReferences, type SnippetReferences, type ResourceReference } from './references.js';
export { evaluateConditions, evaluateCondition } from './conditions.js';
export { compileYaql, YaqlError, HEAT_LIMITS, type CompiledYaql, type YaqlLimits } from '../yaql/index.js';
