export { SimCloud, type SimCloudOptions } from './server.js';
export {
  SimCloudClient,
  type CloudClient,
  type CallOptions,
  type CreateBody,
  type CloudObject,
  type ObjectOf,
  type Server,
  type ServerStatus,
  type Network,
  type Subnet,
  type Port,
  type Router,
  type FloatingIp,
  type SecurityGroup,
  type SecurityGroupRule,
  type Volume,
  type LoadBalancer,
  type Listener,
  type Pool,
  type Member,
  type HealthMonitor,
  type ProvisioningStatus,
  type OperatingStatus,
  type Flavor,
  type Image,
  type SimStats,
} from './client.js';
export type { ChangeEvent, InventoryItem } from './model.js';
export {
  KINDS,
  NO_FAULTS,
  DEFAULT_LATENCY,
  parseFaultsArg,
  parseLatencyArg,
  type Kind,
  type Faults,
  type Distribution,
  type LatencyConfig,
  type LatencyKey,
  type Quota,
  type QuotaConfig,
  type RateLimitConfig,
} from './config.js';
export { KIND_API, FLAVORS, IMAGES, KEY_TAG_PREFIX, KEY_METADATA } from './kinds.js';
export type { FsyncPolicy } from './wal.js';
export { onAbort } from './abort.js';
export { main, parseArgs } from './main.js';
