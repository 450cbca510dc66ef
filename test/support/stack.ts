import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createService, type ServiceDefinition } from '@blog/common';
import { freePort } from '@blog/common/nats-server';
import { createBus } from '../../event-bus/src/app.js';
import { waitFor } from './wait-for.js';

/**
 * A real event bus (SQLite in a temporary folder) and real services, in this process, on free ports: the
 * API tests talk to them over real HTTP. The process-level tests use scripts/src/process/system.ts instead.
 */
export async function startStack(
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  definitions: ServiceDefinition<any>[],
  options: { dataDir?: string; busEnv?: Record<string, string>; token?: string } = {},
) {
  const dataDir = options.dataDir ?? mkdtempSync(path.join(tmpdir(), 'blog-stack-'));
  // The bus's port is picked before the services start (they must know it), so another test file running
  // at the same time can take it in between: then start again on another.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startStackOn(await freePort(), dataDir, definitions, options);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 5) throw err;
    }
  }
}

async function startStackOn(
  busPort: number,
  dataDir: string,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  definitions: ServiceDefinition<any>[],
  options: { busEnv?: Record<string, string>; token?: string },
) {
  const busUrl = `http://127.0.0.1:${busPort}`;
  const env = {
    PORT: '0',
    EVENT_BUS_URL: busUrl,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    EVENT_BUS_TOKEN: options.token ?? '',
  };

  // The services start first and retry their catch-up until the bus is up, as they do in a cluster.
  const services = Object.fromEntries(
    definitions.map((definition) => [definition.name, createService(definition, { env })]),
  );
  const urls: Record<string, string> = {};
  for (const [name, service] of Object.entries(services)) {
    const server = await service.start();
    urls[name] = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  }
  const subscribers = Object.entries(urls)
    .map(([name, url]) => `${name}=${url}/events`)
    .join(',');
  const bus = createBus({
    env: {
      PORT: String(busPort),
      DATA_DIR: dataDir,
      SUBSCRIBERS: subscribers,
      LOG_LEVEL: env.LOG_LEVEL,
      EVENT_BUS_TOKEN: env.EVENT_BUS_TOKEN,
      RETRY_MAX_MS: '200',
      ...options.busEnv,
    },
  });
  try {
    await bus.start();
  } catch (err) {
    await Promise.all(Object.values(services).map((service) => service.stop()));
    await bus.stop();
    throw err;
  }
  await waitFor(() => Object.values(services).every((service) => service.subscriber.caughtUp));

  return {
    bus,
    busUrl,
    urls,
    services,
    dataDir,
    async stop({ keepData = false } = {}) {
      await Promise.all(Object.values(services).map((service) => service.stop()));
      await bus.stop();
      if (!keepData) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export { freePort, waitFor };
