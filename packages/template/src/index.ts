// The intrinsic-function layer (functions/, owned by the function layer).
export * from './functions/index.js';
export { DEFAULT_MAX_TEMPLATE_BYTES, parseTemplateText, parseYaml, type ParseTextOptions } from './source.js';
export {
  Environment,
  ResourceRegistry,
  checkEnvironment,
  mergeEnvironments,
  parseEnvironmentText,
  isTemplateName,
  type EnvironmentInput,
  type ResolvedType,
} from './environment.js';
export {
  CustomConstraintRegistry,
  Parameters,
  PSEUDO_PARAMETERS,
  coerceParam,
  immutableError,
  type ParamConstraint,
  type ParamSchema,
  type ParamType,
  type ParameterGroup,
  type ParameterValue,
  type StackIdentity,
} from './parameters.js';
export { Template, type RawOutput, type RawResource } from './template.js';
export { DependencyGraph } from './graph.js';
export { ResourceTypeRegistry, BUILTIN_RESOURCE_TYPES, builtinTypeRegistry, type PropertySchema, type ResourceTypeSchema } from './types.js';
export {
  StackDefinition,
  GroupView,
  collectPending,
  pendingSource,
  selectPath,
  type DeletionPolicy,
  type GroupMember,
  type OutputDefinition,
  type ResolvedResource,
  type ResourceDataSource,
  type ResourceDefinition,
  type StackOptions,
} from './stack.js';
export { previewStack, DEFAULT_PREVIEW_MAX_MEMBERS, type Preview, type PreviewOptions, type PreviewResource } from './preview.js';
export { validateResponse, formatValidateParameter } from './validate.js';
export { loadStackRequest, loadTemplate, loadEnvironments, type LoadOptions, type StackRequest } from './loader.js';
export { buildStack } from './build.js';
