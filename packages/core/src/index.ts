export { KilnError, isKilnError, toKilnError, type ErrorCode, type KilnErrorJSON } from './errors.js';
export { encode, decode } from './codec.js';
export { createLogger, type Logger } from './log.js';
