import { describe, expect, it } from 'vitest';
import { NatsTransport } from './nats-transport.js';
import { createService } from './service.js';
import { HttpTransport } from './transport.js';

describe('choosing the transport', () => {
  const projection = { initial: () => null, apply: () => undefined };
  const transportOf = (env: Record<string, string>) =>
    createService({ name: 'moderation', projection }, { env: { LOG_LEVEL: 'silent', ...env } }).subscriber
      .transport;

  it('takes HTTP by default and NATS with EVENT_TRANSPORT=nats, on NATS_URL and NATS_STREAM', () => {
    expect(transportOf({})).toBeInstanceOf(HttpTransport);
    const nats = transportOf({
      EVENT_TRANSPORT: 'nats',
      NATS_URL: 'nats://127.0.0.1:4999',
      NATS_STREAM: 's1',
    });
    expect(nats).toBeInstanceOf(NatsTransport);
    expect(nats).toMatchObject({ url: 'nats://127.0.0.1:4999', stream: 's1', subject: 's1.events' });
  });

  it('stops at start on a malformed NATS variable, naming it', () => {
    expect(() => transportOf({ NATS_URL: 'localhost:4222' })).toThrow(/NATS_URL=/);
    expect(() => transportOf({ EVENT_TRANSPORT: 'nats', NATS_STREAM: 'a>b' })).toThrow(/NATS_STREAM=/);
  });
});
