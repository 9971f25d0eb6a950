export { KilnClient, ScalingGroup, connect, DEFAULT_TENANT, type ClientOptions, type ConnectOptions, type CallOptions, type WriteOptions } from './client.js';
export { type EventWatch, type WatchOptions, type WatchFilters } from './watch.js';
export { memberState, type GroupHealth, type GroupMember, type MemberState } from './group.js';
export {
  decide,
  checkPolicy,
  newCapacity,
  stepFor,
  type ScalingPolicy,
  type TargetTrackingPolicy,
  type StepPolicy,
  type ScalingStep,
  type AdjustmentType,
  type PolicyState,
  type Decision,
} from './policy.js';
export { PolicyRunner, groupCapacity, parameterCapacity, type CapacityTarget, type PolicyRunnerOptions } from './runner.js';
export type * from './types.js';
export { RETRY_CLASS } from './types.js';
