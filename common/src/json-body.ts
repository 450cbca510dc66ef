import { isUtf8 } from 'node:buffer';
import type { IncomingMessage, ServerResponse } from 'node:http';
import express from 'express';
import { HttpError } from './errors.js';

/**
 * JSON nested deeper than this is refused: no event of the course goes past 3 levels, and the bus stores
 * what it takes with JSON.stringify, which overflows the stack (a 500) on a value nested 10,000 deep.
 */
export const MAX_JSON_DEPTH = 100;

/** How deep `[` and `{` nest in JSON text, strings skipped; bytes, since UTF-8 keeps ASCII bytes as they are. */
export function jsonDepth(bytes: Uint8Array): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (inString) {
      if (byte === 0x5c)
        i++; // a backslash: skip the escaped character
      else if (byte === 0x22) inString = false;
    } else if (byte === 0x22) inString = true;
    else if (byte === 0x5b || byte === 0x7b) deepest = Math.max(deepest, ++depth);
    else if (byte === 0x5d || byte === 0x7d) depth--;
  }
  return deepest;
}

/**
 * Keys refused anywhere in a JSON body, as Fastify's parser does by default: JSON.parse makes `__proto__`
 * an own property, and code that merges or copies such an object (`Object.assign`, a deep merge) may follow
 * either key to a prototype and change every object of the process.
 */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor']);

/**
 * The path to the first `__proto__` or `constructor` key in JSON text (`['data', '__proto__']`), or
 * undefined. A byte search first, so that only a body that spells either word, or holds a `\u00` escape
 * (which can spell it: `"\u005f_proto__"`), is parsed a second time to be looked at; text that is not
 * JSON is left for the parser to refuse.
 */
export function forbiddenKeyPath(bytes: Buffer): string[] | undefined {
  if (!bytes.includes('__proto__') && !bytes.includes('constructor') && !bytes.includes('\\u00'))
    return undefined;
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  return findForbiddenKey(value, []);
}

function findForbiddenKey(value: unknown, path: string[]): string[] | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  // Object.keys lists an own `__proto__` as any other key; the depth is bounded by MAX_JSON_DEPTH.
  for (const key of Object.keys(value)) {
    if (FORBIDDEN_KEYS.has(key)) return [...path, key];
    const found = findForbiddenKey((value as Record<string, unknown>)[key], [...path, key]);
    if (found) return found;
  }
  return undefined;
}

const bodyRefusal = (type: string) => Object.assign(new Error(type), { status: 400, type });

/** The checks made on a JSON body's bytes before it is parsed (see `jsonBodyParser`); throws the refusal. */
function checkJsonBytes(buffer: Buffer, utf8: boolean, asBodyParser = false): void {
  if (utf8 && !isUtf8(buffer)) throw bodyRefusal('entity.not.utf8');
  if (jsonDepth(buffer) > MAX_JSON_DEPTH) throw bodyRefusal('entity.too.deep');
  const forbidden = forbiddenKeyPath(buffer);
  if (forbidden) {
    const key = forbidden.at(-1)!;
    const err = HttpError.badRequest(`The key "${key}" is not allowed in a JSON body`, forbidden.join('.'));
    // As express.json marks what its `verify` throws.
    throw asBodyParser ? Object.assign(err, { type: 'entity.verify.failed' }) : err;
  }
}

type BodyParser = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

/**
 * express.json, plus three refusals before parsing: bytes that are not UTF-8 (else they would be stored as
 * U+FFFD, silently changed), nesting deeper than MAX_JSON_DEPTH, and a `__proto__` or `constructor` key.
 * Each answers 400 JSON (errors.ts), the last naming the key and where it is.
 */
export function jsonBodyParser(limit: number): BodyParser {
  return express.json({
    limit,
    verify: (_req, _res, buffer, encoding) => checkJsonBytes(buffer, /^utf-?8$/i.test(encoding)),
  }) as unknown as BodyParser;
}

const JSON_WHITESPACE = ' \t\n\r';
const PLAIN_JSON_TYPE = /^application\/json\s*(;\s*charset="?utf-?8"?\s*)?$/i;

/**
 * `jsonBodyParser` for the busiest routes (every delivery and publish): a body as our services and the
 * course's send it (`application/json`, UTF-8, not compressed, a Content-Length within `limit`) is read and
 * parsed here, with the same checks and the same answers as express.json; any other goes to express.json.
 */
export function fastJsonBodyParser(limit: number): BodyParser {
  const general = jsonBodyParser(limit);
  return (req, res, next) => {
    const { 'content-type': type, 'content-length': length, 'content-encoding': coding } = req.headers;
    const declared = Number(length);
    const plain =
      type !== undefined &&
      PLAIN_JSON_TYPE.test(type) &&
      (coding === undefined || coding.toLowerCase() === 'identity') &&
      req.headers['transfer-encoding'] === undefined &&
      length !== undefined &&
      Number.isSafeInteger(declared) &&
      declared <= limit;
    if (!plain) return general(req, res, next);
    const chunks: Buffer[] = [];
    let received = 0;
    let done = false;
    const finish = (err?: unknown) => {
      if (done) return;
      done = true;
      req.off('data', onData).off('end', onEnd).off('aborted', onAborted).off('error', onError);
      next(err);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      chunks.push(chunk);
    };
    const onEnd = () => {
      if (received !== declared) return finish(bodyRefusal('request.size.invalid'));
      try {
        const buffer = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received);
        checkJsonBytes(buffer, true, true);
        (req as IncomingMessage & { body?: unknown }).body = parseStrictJson(buffer);
        finish();
      } catch (err) {
        finish(err);
      }
    };
    const onAborted = () => finish(bodyRefusal('request.aborted'));
    const onError = (err: Error) => finish(err);
    req.on('data', onData).on('end', onEnd).on('aborted', onAborted).on('error', onError);
  };
}

/**
 * A JSON body already whole in memory (a request on the event path's socket): the same checks and the same
 * refusals as `fastJsonBodyParser`, the size included.
 */
export function parseJsonBuffer(buffer: Buffer, limit: number): unknown {
  if (buffer.length > limit) throw Object.assign(bodyRefusal('entity.too.large'), { status: 413 });
  checkJsonBytes(buffer, true, true);
  return parseStrictJson(buffer);
}

/** As express.json parses (strict): `{}` for no bytes, an object or array only, a byte-order mark ignored. */
function parseStrictJson(buffer: Buffer): unknown {
  const decoded = buffer.toString('utf8');
  const text = decoded.charCodeAt(0) === 0xfeff ? decoded.slice(1) : decoded;
  if (text.length === 0) return {};
  let start = 0;
  while (JSON_WHITESPACE.includes(text[start]!)) start++;
  const first = text[start];
  if (first !== '{' && first !== '[') throw bodyRefusal('entity.parse.failed');
  try {
    return JSON.parse(text);
  } catch {
    throw bodyRefusal('entity.parse.failed');
  }
}
