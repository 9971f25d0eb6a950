// The one import point for the intrinsic-function layer.
export * from './functions/index.js';
