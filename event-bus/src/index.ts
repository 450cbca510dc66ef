import { runMain } from '@blog/common';
import { createBus } from './app.js';

// Configured by PORT, DATA_DIR, SUBSCRIBERS, LOG_LEVEL and RETRY_MAX_MS; SIGTERM/SIGINT stop it cleanly:
// the server finishes the requests in flight, the delivery loops stop, and the database is closed.
void runMain('event-bus', () => createBus());
