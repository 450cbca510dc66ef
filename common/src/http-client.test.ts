import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpClient } from './http-client.js';

// A real server with one route per behaviour the callers rely on.
let server: http.Server;
let base: string;
const client = new HttpClient();
let inFlight = 0;
let mostInFlight = 0;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    req.on('end', () => {
      if (req.url === '/echo') {
        res.writeHead(201, { 'X-Seen-Type': String(req.headers['content-type']), 'X-Method': req.method! });
        res.end(body);
      } else if (req.url === '/big') {
        res.end('x'.repeat(100_000));
      } else if (req.url === '/slow') {
        inFlight++;
        mostInFlight = Math.max(mostInFlight, inFlight);
        setTimeout(() => {
          inFlight--;
          res.end('done');
        }, 30);
      } else if (req.url === '/redirect') {
        res.writeHead(302, { Location: '/echo' }).end();
      }
      // /hang: never answers
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  client.close();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

describe('HttpClient', () => {
  it('sends a JSON body and returns status, headers and the answer as text (UTF-8)', async () => {
    const answer = await client.request(`${base}/echo`, {
      method: 'POST',
      body: '{"title":"café ☕"}',
      headers: { 'X-Extra': '1' },
      timeoutMs: 2000,
    });
    expect(answer.status).toBe(201);
    expect(answer.headers['x-seen-type']).toBe('application/json');
    expect(answer.body).toBe('{"title":"café ☕"}');
  });

  it('does not follow redirects (a bus or subscriber that redirects is misconfigured)', async () => {
    const answer = await client.request(`${base}/redirect`, { method: 'GET', timeoutMs: 2000 });
    expect(answer.status).toBe(302);
  });

  it('gives up with ETIMEDOUT when no complete answer comes in time', async () => {
    await expect(client.request(`${base}/hang`, { method: 'GET', timeoutMs: 100 })).rejects.toMatchObject({
      code: 'ETIMEDOUT',
    });
  });

  it('cuts off an answer larger than allowed', async () => {
    await expect(
      client.request(`${base}/big`, { method: 'GET', timeoutMs: 2000, maxAnswerBytes: 1000 }),
    ).rejects.toMatchObject({ code: 'ERR_ANSWER_TOO_LARGE' });
  });

  it('stops when aborted, and reports an unreachable server by its code', async () => {
    const abort = new AbortController();
    const pending = client.request(`${base}/hang`, { method: 'GET', timeoutMs: 5000, signal: abort.signal });
    abort.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    await expect(
      client.request('http://127.0.0.1:9/events', { method: 'GET', timeoutMs: 2000 }),
    ).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('opens at most maxSockets connections at once; the other requests wait their turn', async () => {
    const narrow = new HttpClient({ maxSockets: 2 });
    mostInFlight = 0;
    try {
      const answers = await Promise.all(
        Array.from({ length: 6 }, () => narrow.request(`${base}/slow`, { method: 'GET', timeoutMs: 2000 })),
      );
      expect(answers.map((answer) => answer.body)).toEqual(Array(6).fill('done'));
      expect(mostInFlight).toBe(2);
    } finally {
      narrow.close();
    }
  });
});
