export type * from './types.js';
export { Runtime, type RuntimeOptions, type RuntimeMetrics } from './runtime.js';
export { actorKey, addressOfKey, parseAddress, partitionOf, effectId } from './address.js';
