export type * from './types.js';
export { Runtime, whileClusterForms, SETUP_TIMEOUT_MS, type RuntimeOptions, type RuntimeMetrics } from './runtime.js';
export { MailboxClient, type Outgoing } from './mailbox.js';
export { actorKey, addressOfKey, parseAddress, partitionOf, effectId } from './address.js';
