import { randomBytes } from 'node:crypto';
import { z } from 'zod';

/** The course's four events. Extra fields are allowed (a learner may add some), missing ones are not. */
const id = z.string().min(1).max(200);
const text = z.string().max(10_000);

/**
 * What a title or a comment may not hold: control characters (Unicode Cc: NUL, BEL, ESC, newlines, C1),
 * which the client cannot show and a terminal or a log reader may act on, and the bidi embeddings,
 * overrides and isolates (U+202A-U+202E, U+2066-U+2069), which make text display in another order than it
 * is stored ("Trojan Source"). The bidi marks U+200E, U+200F and U+061C stay allowed: ordinary
 * right-to-left writing needs them, and each changes only how its neighbouring characters are ordered.
 */
const UNSAFE_CHARACTER = /[\p{Cc}\u202A-\u202E\u2066-\u2069]/u;

/** The first character of `text` that a title or comment may not hold, as `U+XXXX`; undefined if none. */
export function unsafeCharacter(text: string): string | undefined {
  const found = UNSAFE_CHARACTER.exec(text)?.[0];
  return found && `U+${found.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** A zod check refusing what `unsafeCharacter` finds, with a message starting with `what`. */
export const refuseUnsafeCharacters =
  (what: string) =>
  (value: string, ctx: z.RefinementCtx): void => {
    const found = unsafeCharacter(value);
    if (found) {
      ctx.addIssue({
        code: 'custom',
        message: `${what} must not contain control or bidirectional-override characters (found ${found})`,
      });
    }
  };
const commentStatus = z.enum(['pending', 'approved', 'rejected']);

export const eventDataSchemas = {
  PostCreated: z.looseObject({ id, title: text }),
  CommentCreated: z.looseObject({ id, content: text, postId: id, status: z.literal('pending') }),
  CommentModerated: z.looseObject({
    id,
    postId: id,
    status: z.enum(['approved', 'rejected']),
    content: text,
  }),
  CommentUpdated: z.looseObject({ id, status: commentStatus, postId: id, content: text }),
} as const;

/**
 * What the bus takes when an event is published: the events that bring a person's text into the log
 * (PostCreated, CommentCreated) refuse unsafe characters in it. Only here, at the door: what the log
 * already holds is delivered and applied by `eventDataSchemas`, and CommentModerated and CommentUpdated
 * carry a copy of a stored comment's text, which their publisher cannot change.
 */
const publishedText = text.superRefine(refuseUnsafeCharacters('The text'));
export const publishDataSchemas = {
  ...eventDataSchemas,
  PostCreated: z.looseObject({ id, title: publishedText }),
  CommentCreated: z.looseObject({ id, content: publishedText, postId: id, status: z.literal('pending') }),
} as const;

export type KnownEventType = keyof typeof eventDataSchemas;
export type EventData<T extends KnownEventType> = z.infer<(typeof eventDataSchemas)[T]>;
export type CommentStatus = z.infer<typeof commentStatus>;

export const isKnownEventType = (type: string): type is KnownEventType =>
  Object.hasOwn(eventDataSchemas, type);

/** What a publisher sends to the bus. */
export const outgoingEventSchema = z.looseObject({
  type: z.string().min(1).max(200),
  data: z.record(z.string(), z.unknown()),
  id: id.optional(),
});

/** What a subscriber receives: the bus adds seq, id and time; a hand-sent event may carry none of them. */
export const incomingEventSchema = outgoingEventSchema.extend({
  seq: z.number().int().positive().optional(),
  time: z.string().optional(),
});

export type OutgoingEvent = z.infer<typeof outgoingEventSchema>;
export type IncomingEvent = z.infer<typeof incomingEventSchema>;
export type StoredEvent = IncomingEvent & { seq: number; id: string };

/** A known event with its data typed, narrowed by `type`. */
export type BlogEvent = {
  [T in KnownEventType]: { type: T; data: EventData<T>; id?: string; seq?: number; time?: string };
}[KnownEventType];

export interface EventIssue {
  message: string;
  field: string;
}

/**
 * Validates an envelope and, for a known type, its data (by `dataSchemas`: the bus's publish passes
 * `publishDataSchemas`). Returns the issues found (empty when valid), with the field as a dotted path
 * (`data.title`), so an error can point at what to fix.
 */
export function validateEvent<S extends typeof outgoingEventSchema | typeof incomingEventSchema>(
  schema: S,
  input: unknown,
  fieldPrefix = '',
  dataSchemas: typeof eventDataSchemas = eventDataSchemas,
): { event: z.infer<S>; issues: [] } | { event: undefined; issues: EventIssue[] } {
  // Every event crosses this several times: what is plainly valid skips zod, which says what is wrong.
  const options = { incoming: schema === incomingEventSchema, publish: dataSchemas === publishDataSchemas };
  if (plainlyValid(input, options)) return { event: input as z.infer<S>, issues: [] };
  const envelope = schema.safeParse(input);
  if (!envelope.success) return { event: undefined, issues: toIssues(envelope.error, fieldPrefix) };
  const event = envelope.data as z.infer<S>;
  if (isKnownEventType(event.type)) {
    const data = dataSchemas[event.type].safeParse(event.data);
    if (!data.success) return { event: undefined, issues: toIssues(data.error, `${fieldPrefix}data.`) };
  }
  return { event, issues: [] };
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const isId = (value: unknown) => typeof value === 'string' && value.length >= 1 && value.length <= 200;
const isText = (value: unknown): value is string => typeof value === 'string' && value.length <= 10_000;
/** A person's text as the bus takes it at publish (`publishDataSchemas`), or as it is delivered. */
const isTextOf = (value: unknown, publish: boolean) =>
  isText(value) && !(publish && unsafeCharacter(value) !== undefined);

/**
 * Whether the schemas would take `input` as it is, checked without them: true only for what they take (a
 * false sends the event to zod, which decides and names the fields at fault).
 */
function plainlyValid(input: unknown, { incoming, publish }: { incoming: boolean; publish: boolean }) {
  if (!isObject(input)) return false;
  const { type, data, id, seq, time } = input;
  if (typeof type !== 'string' || type.length < 1 || type.length > 200 || !isObject(data)) return false;
  if (id !== undefined && !isId(id)) return false;
  if (incoming && seq !== undefined && !(Number.isSafeInteger(seq) && (seq as number) > 0)) return false;
  if (incoming && time !== undefined && typeof time !== 'string') return false;
  switch (type) {
    case 'PostCreated':
      return isId(data.id) && isTextOf(data.title, publish);
    case 'CommentCreated':
      return (
        isId(data.id) && isTextOf(data.content, publish) && isId(data.postId) && data.status === 'pending'
      );
    case 'CommentModerated':
      return (
        isId(data.id) &&
        isId(data.postId) &&
        (data.status === 'approved' || data.status === 'rejected') &&
        isText(data.content)
      );
    case 'CommentUpdated':
      return (
        isId(data.id) &&
        isId(data.postId) &&
        (data.status === 'pending' || data.status === 'approved' || data.status === 'rejected') &&
        isText(data.content)
      );
    default:
      return !isKnownEventType(type);
  }
}

export function toIssues(error: z.ZodError, fieldPrefix = ''): EventIssue[] {
  return error.issues.map((issue) => {
    const field = [fieldPrefix.replace(/\.$/, ''), ...issue.path.map(String)].filter(Boolean).join('.');
    return { message: issue.message, field: field || 'body' };
  });
}

/** Narrows a validated event to a known one; unknown types stay outside the projections. */
export const asBlogEvent = (event: IncomingEvent): BlogEvent | undefined =>
  isKnownEventType(event.type) ? (event as BlogEvent) : undefined;

/** Random bytes drawn 4 KiB at a time: one call to the system's generator per 1,024 ids rather than per id. */
let randomPool = Buffer.alloc(0);
let randomPoolOffset = 0;

/** A new id in the course's form (4 random bytes in hex), drawn again in the rare case it is taken. */
export function newCourseId(isTaken: (id: string) => boolean): string {
  for (;;) {
    if (randomPoolOffset + 4 > randomPool.length) {
      randomPool = randomBytes(4096);
      randomPoolOffset = 0;
    }
    const id = randomPool.toString('hex', randomPoolOffset, (randomPoolOffset += 4));
    if (!isTaken(id)) return id;
  }
}
