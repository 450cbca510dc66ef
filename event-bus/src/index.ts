import { runMain } from '@blog/common';
import { createEventBus } from './app.js';

// Configured by PORT, LOG_LEVEL, SHUTDOWN_DELAY_MS and EVENT_TRANSPORT; with `http` (the default) by DATA_DIR,
// SUBSCRIBERS and RETRY_MAX_MS, with `nats` by NATS_URL and NATS_STREAM. SIGTERM/SIGINT stop it cleanly:
// `/readyz` answers 503 at once, it serves on for SHUTDOWN_DELAY_MS, then the server finishes the requests in
// flight, the delivery loops stop, and the database (or NATS connection) is closed.
void runMain('event-bus', () => createEventBus());
