export * from './types.js';
export * from './spec.js';
export * from './provider.js';
export * from './builtins.js';
export { resourceBehavior, reduceResource, resourceAddress, childStackId, RESOURCE_ACTOR, RETRY_BASE_MS, type ResourceState } from './resource.js';
export { shardBehavior, reduceShard, DEFAULT_TREE, type TreeConfig, type ShardState } from './shard.js';
export { stackBehavior, reduceStack, stackAddress, STACK_ACTOR, DEFAULT_FANOUT_HOLD, DEFAULT_RESEND, type FanoutHold, type ResendPeriods, type StackState } from './stack.js';
export { HotTemplateAdapter, referencedNames, type StackDescription } from './template-adapter.js';
export { AUTOSCALING_GROUP, SCALING_POLICY, autoScalingGroupType, autoscalingTypes, scalingPolicyType, scaledCapacity, scaleInRemovals } from './autoscaling.js';
export { DEFAULT_HEAL, type HealConfig } from './heal.js';
export { builtinImplicitDependencies, withImplicitDependencies, type PlannedView } from './implicit-deps.js';
export { DEFAULT_TENANT, EVENTS_PREFIX, STACK_TOKEN, TENANT_PATTERN, decodeToken, encodeToken, eventSubjectTail } from './subjects.js';
export {
  Engine,
  signalResource,
  type AbandonData,
  type AbandonedResource,
  type AdoptRequest,
  type EngineOptions,
  type GenerationRef,
  type ListStacksOptions,
  type ResourceInfo,
  type StackInfo,
  type StackRef,
  type StackRequest,
} from './engine.js';
