import type { IncomingMessage } from 'node:http';
import { describeError } from './errors.js';
import type { ExchangeAnswer, SocketExchange } from './event-socket.js';
import type { HttpAppOptions, RawKit } from './http.js';
import { parseJsonBuffer } from './json-body.js';

/** A raw JSON route as a message on the event path's socket: the same guard, checks and answers. */
export function socketExchange(
  options: Pick<HttpAppOptions, 'log' | 'metrics'>,
  bodyLimit: number,
  route: string,
  handle: Parameters<RawKit['json']>[1],
  guard: Parameters<RawKit['json']>[2],
): SocketExchange {
  const refusal = (req: IncomingMessage, err: unknown): ExchangeAnswer => {
    const { status, errors, headers } = describeError(err, options.log, req.method, req.url);
    return { status, json: JSON.stringify({ errors }), headers };
  };
  return {
    guard: (req) => guard?.(req),
    bodyLimit,
    refusal,
    exchange: async (req, body) => {
      const started = performance.now();
      let answer: ExchangeAnswer;
      try {
        guard?.(req);
        const result = await handle(parseJsonBuffer(body, bodyLimit), req, {});
        const json = result.json ?? JSON.stringify(result.body);
        answer = { status: result.status ?? 200, json, headers: result.headers };
      } catch (err) {
        answer = refusal(req, err);
      }
      const labels = { method: 'POST', route, status: String(answer.status) };
      options.metrics.httpDuration.observe(labels, (performance.now() - started) / 1000);
      options.metrics.socketExchanges.inc();
      return answer;
    },
  };
}
