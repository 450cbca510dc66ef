import http from 'node:http';
import https from 'node:https';
import { StringDecoder } from 'node:string_decoder';
import { ANSWER_MAX_BYTES } from './limits.js';

/**
 * The one HTTP client between services: a JSON request on a keep-alive connection, the answer as text.
 *
 * Why not axios or undici: every event crosses this code four or five times, and `http.request` costs the
 * caller the least CPU per POST of the three (figures in docs/performance.md). The callers need nothing more than
 * this: no redirects (a bus or subscriber that redirects is misconfigured), no compression, no cookies.
 */
export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body as text (UTF-8). */
  body: string;
}

export interface HttpRequestOptions {
  method: 'GET' | 'POST';
  /** Sent as is with `Content-Type: application/json`. */
  body?: string;
  headers?: Record<string, string>;
  /** The whole exchange, from sending to the last byte of the answer; past it the error has code ETIMEDOUT. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** A larger answer is cut off with an error (code ERR_ANSWER_TOO_LARGE); default ANSWER_MAX_BYTES. */
  maxAnswerBytes?: number;
}

export interface HttpClientOptions {
  /** Connections open at once per host and protocol; more requests wait for one. Default 64. */
  maxSockets?: number;
}

/** Keep-alive agents, one pair per caller, so `close()` ends only that caller's connections. */
export class HttpClient {
  private readonly agents: { 'http:': http.Agent; 'https:': https.Agent };

  constructor({ maxSockets = 64 }: HttpClientOptions = {}) {
    this.agents = {
      'http:': new http.Agent({ keepAlive: true, maxSockets }),
      'https:': new https.Agent({ keepAlive: true, maxSockets }),
    };
  }

  request(url: string | URL, options: HttpRequestOptions): Promise<HttpAnswer> {
    const target = typeof url === 'string' ? new URL(url) : url;
    const secure = target.protocol === 'https:';
    const headers: Record<string, string | number> = Object.assign({}, options.headers);
    if (options.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = Buffer.byteLength(options.body);
    }
    const maxBytes = options.maxAnswerBytes ?? ANSWER_MAX_BYTES;
    return new Promise((resolve, reject) => {
      const send = secure ? https.request : http.request;
      const req = send(
        target,
        {
          method: options.method,
          headers,
          agent: this.agents[secure ? 'https:' : 'http:'],
          signal: options.signal,
        },
        (res) => {
          // Each chunk is decoded as it arrives, while the rest is on its way, rather than all of a large
          // answer (a page of the log) joined and decoded at its end; the decoder keeps a character split
          // between two chunks whole.
          const decoder = new StringDecoder('utf8');
          let body = '';
          let bytes = 0;
          res.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
            if (bytes <= maxBytes) return void (body += decoder.write(chunk));
            fail(withCode(new Error(`answer larger than ${maxBytes} bytes`), 'ERR_ANSWER_TOO_LARGE'));
            req.destroy();
          });
          res.on('end', () => {
            clearTimeout(timer);
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: body + decoder.end() });
          });
          res.on('error', fail);
        },
      );
      const fail = (err: Error) => {
        clearTimeout(timer);
        reject(err);
      };
      const timer = setTimeout(() => {
        fail(withCode(new Error(`no complete answer within ${options.timeoutMs} ms`), 'ETIMEDOUT'));
        req.destroy();
      }, options.timeoutMs);
      // A reset on a reused keep-alive socket is the race Node's docs describe (the server closed it as we
      // sent): flagged, since it says something about the caller's pool rather than the server.
      req.on('error', (err) => fail(req.reusedSocket ? Object.assign(err, { reusedSocket: true }) : err));
      req.end(options.body);
    });
  }

  close(): void {
    this.agents['http:'].destroy();
    this.agents['https:'].destroy();
  }
}

function withCode(err: Error, code: string): Error {
  return Object.assign(err, { code });
}
