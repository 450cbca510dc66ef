import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NatsTransport } from './nats-transport.js';
import { startNatsServer, uniqueStreamName, type NatsServer } from './nats-server.js';
import { natsAvailability } from './testing/nats.js';

// A real nats-server that requires EVENT_BUS_TOKEN: only a client that presents it may publish or read.
const nats = natsAvailability({ needs: 'binary' });
const TOKEN = 'nats-token-0123456789abcdef';

describe.skipIf(nats.skip)(`NATS with EVENT_BUS_TOKEN (${nats.reason})`, () => {
  let server: NatsServer;
  const transports: NatsTransport[] = [];
  const transport = (token: string | undefined, stream: string) => {
    const made = new NatsTransport({ url: server.url, stream, token, timeoutMs: 2000 });
    transports.push(made);
    return made;
  };

  beforeAll(async () => {
    server = await startNatsServer({ token: TOKEN });
  });
  afterAll(async () => {
    await Promise.all(transports.map((t) => t.close()));
    await server?.stop();
  });

  it('refuses a client without the token or with a wrong one, and nothing is stored', async () => {
    const stream = uniqueStreamName();
    for (const token of [undefined, 'wrong-token-0123456789']) {
      const outsider = transport(token, stream);
      await expect(outsider.publish({ type: 'T', data: {} })).rejects.toThrow(
        /NATS at .*(auth|Authorization)/i,
      );
      await expect(outsider.fetchAfter(0, 10)).rejects.toThrow();
    }
    const member = transport(TOKEN, stream);
    expect((await member.fetchAfter(0, 10)).events).toEqual([]);
  });

  it('serves a client with the token: it publishes and reads the stream', async () => {
    const member = transport(TOKEN, uniqueStreamName());
    const { seq } = await member.publish({ type: 'PostCreated', data: { id: 'p', title: 't' } });
    expect(seq).toBe(1);
    expect((await member.fetchAfter(0, 10)).events).toMatchObject([{ seq: 1, type: 'PostCreated' }]);
  });

  it('keeps the token off its command line, in a configuration file only its user can read', () => {
    const commandLine = readFileSync(`/proc/${server.pid}/cmdline`, 'utf8');
    expect(commandLine).not.toContain(TOKEN);
    const file = commandLine.split('\0')[commandLine.split('\0').indexOf('-c') + 1]!;
    expect(path.isAbsolute(file)).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8')).toContain(TOKEN);
  });
});
