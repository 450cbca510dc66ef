/**
 * The process helpers under one name, for scripts/src/bench.ts; everything else imports them from
 * `./process/`, where they live.
 */
export * from './process/errors.js';
export * from './process/names.js';
export * from './process/ports.js';
export * from './process/readiness.js';
export * from './process/system.js';
export type * from './process/system-types.js';
