export type {
  StackBackend,
  StackSource,
  CreateStackInput,
  UpdateStackInput,
  PatchStackInput,
  AdoptStackInput,
  GenerationRef,
  OutputView,
  StackSummary,
  StackView,
  ResourceView,
  ResourceDetail,
  Page,
  ListStacksQuery,
  ListResourcesQuery,
  ValidationResult,
  PreviewResource,
  EngineStatus,
} from './backend.js';
export { ApiService, SERVICE_NAME, SERVICE_VERSION, type ApiServiceOptions, type ApiReply } from './service.js';
export { OPERATIONS } from './operations.js';
export type { QuotaConfig, TenantQuota } from './quotas.js';
export { REQUESTS_BUCKET } from './requests.js';
export { JSON_TYPE, MSGPACK_TYPE, type BodyEncoding } from './body.js';
export {
  API_PREFIX,
  EVENTS_PREFIX,
  EVENTS_STREAM,
  STACK_TOKEN,
  apiSubject,
  eventSubject,
  eventFilter,
  encodeToken,
  decodeToken,
  parseEventSubject,
} from './subjects.js';
export { toEvent, pushedEvent, type KilnEvent, type EventFilter } from './events.js';
export { Gateway, main, parseGatewayArgs, CLOSE, GATEWAY_OPERATIONS, type GatewayOptions, type GatewayStats } from './gateway.js';
export { EngineBackend, type EngineBackendOptions } from './engine-backend.js';
