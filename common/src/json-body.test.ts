import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fastJsonBodyParser, jsonBodyParser } from './json-body.js';

/** A server answering what a parser made of the body: the value, or the error's status and type. */
function parserServer(parse: ReturnType<typeof jsonBodyParser>): Server {
  return createServer((req, res) =>
    parse(req, res, (err) => {
      const { status, type } = (err ?? {}) as { status?: number; type?: string };
      const body = (req as { body?: unknown }).body;
      res.end(JSON.stringify(err ? { status, type } : { body: body === undefined ? 'none' : body }));
    }),
  );
}

let fast: Server;
let general: Server;
beforeAll(async () => {
  fast = parserServer(fastJsonBodyParser(100));
  general = parserServer(jsonBodyParser(100));
  await Promise.all([fast, general].map((s) => new Promise((r) => s.listen(0, '127.0.0.1', () => r(s)))));
});
afterAll(() => Promise.all([fast, general].map((s) => new Promise((r) => s.close(r)))));

function send(server: Server, body: Buffer, headers: Record<string, string | number>): Promise<string> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const req = request({ port, host: '127.0.0.1', method: 'POST', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve(text));
    });
    req.on('error', reject).end(body);
  });
}

const json = 'application/json';
const cases: [string, Buffer, Record<string, string | number>][] = [
  ['an object', Buffer.from('{"a":1}'), { 'content-type': json }],
  ['an array, charset utf-8', Buffer.from(' [1]'), { 'content-type': 'application/json; charset=utf-8' }],
  ['no bytes', Buffer.from(''), { 'content-type': json }],
  ['a byte-order mark', Buffer.from('\uFEFF{"a":1}'), { 'content-type': json }],
  ['a bare string', Buffer.from('"a"'), { 'content-type': json }],
  ['whitespace only', Buffer.from(' \n'), { 'content-type': json }],
  ['broken JSON', Buffer.from('{"a":'), { 'content-type': json }],
  ['bytes that are not UTF-8', Buffer.from([0x7b, 0xff, 0x7d]), { 'content-type': json }],
  ['too deep', Buffer.from('['.repeat(101)), { 'content-type': json }],
  ['a __proto__ key', Buffer.from('{"__proto__":{}}'), { 'content-type': json }],
  ['too large', Buffer.from(`{"a":"${'x'.repeat(100)}"}`), { 'content-type': json }],
  ['another type', Buffer.from('{"a":1}'), { 'content-type': 'text/plain' }],
  ['chunked', Buffer.from('{"a":1}'), { 'content-type': json, 'transfer-encoding': 'chunked' }],
];

describe('fastJsonBodyParser', () => {
  it.each(cases)('answers as express.json does: %s', async (_what, body, headers) => {
    const withLength = headers['transfer-encoding'] ? headers : { ...headers, 'content-length': body.length };
    expect(await send(fast, body, withLength)).toBe(await send(general, body, withLength));
  });
});
