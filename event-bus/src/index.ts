import { runMain } from '@blog/common';
import { createEventBus } from './app.js';

// Configured by PORT, LOG_LEVEL and EVENT_TRANSPORT; with `http` (the default) by DATA_DIR, SUBSCRIBERS and
// RETRY_MAX_MS, with `nats` by NATS_URL and NATS_STREAM. SIGTERM/SIGINT stop it cleanly: the server
// finishes the requests in flight, the delivery loops stop, and the database (or NATS connection) is closed.
void runMain('event-bus', () => createEventBus());
