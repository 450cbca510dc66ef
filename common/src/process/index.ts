/**
 * Supervising child processes (import from `@blog/common/process`): for the scripts and the tests, which
 * start the services, the bus and the nats-server; the services themselves never load it.
 */
export { delay, withTimeout } from './delay.js';
export { describeExit, StartError, type ExitInfo } from './errors.js';
export {
  ManagedProcess,
  type ManagedProcessOptions,
  type OutputStream,
  type ReadinessCheck,
} from './managed-process.js';
export { waitForHttpOk, waitForReady, type PollOptions } from './readiness.js';
