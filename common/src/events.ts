import { randomBytes } from 'node:crypto';
import { z } from 'zod';

/** The course's four events. Extra fields are allowed (a learner may add some), missing ones are not. */
const id = z.string().min(1).max(200);
const text = z.string().max(10_000);
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
 * Validates an envelope and, for a known type, its data. Returns the issues found (empty when valid), with
 * the field as a dotted path (`data.title`), so an error can point at what to fix.
 */
export function validateEvent<S extends typeof outgoingEventSchema | typeof incomingEventSchema>(
  schema: S,
  input: unknown,
  fieldPrefix = '',
): { event: z.infer<S>; issues: [] } | { event: undefined; issues: EventIssue[] } {
  const envelope = schema.safeParse(input);
  if (!envelope.success) return { event: undefined, issues: toIssues(envelope.error, fieldPrefix) };
  const event = envelope.data as z.infer<S>;
  if (isKnownEventType(event.type)) {
    const data = eventDataSchemas[event.type].safeParse(event.data);
    if (!data.success) return { event: undefined, issues: toIssues(data.error, `${fieldPrefix}data.`) };
  }
  return { event, issues: [] };
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

/** A new id in the course's form (`randomBytes(4).toString('hex')`), drawn again in the rare case it is taken. */
export function newCourseId(isTaken: (id: string) => boolean): string {
  for (;;) {
    const id = randomBytes(4).toString('hex');
    if (!isTaken(id)) return id;
  }
}
