/**
 * How many bytes any one input may take, in one place, so that what the bus stores is always something every
 * subscriber takes and every page fits what a reader reads (docs/event-bus.md, "Limits").
 */

/** The largest JSON body a service takes, deliveries included: the course's Express default, 100 kB. */
export const BODY_MAX_BYTES = 100 * 1024;

/**
 * The largest event the bus stores, in bytes of the JSON it delivers it as (`{"seq":...,"id":...,"time":...,
 * "type":...,"data":...}`): two bytes under BODY_MAX_BYTES, so that the event alone, or alone in a batch
 * (`[...]`), is still a body every subscriber takes. The bus refuses a larger one with 413 when it is
 * published, rather than store what no subscriber could be sent.
 */
export const EVENT_MAX_BYTES = BODY_MAX_BYTES - 2;

/** The largest answer HttpClient reads unless told otherwise. */
export const ANSWER_MAX_BYTES = 64 * 1024 * 1024;

/**
 * A page of the log (`GET /events?after=&limit=`, a transport's `fetchAfter`) ends once it holds this many
 * bytes of events, or `limit` events, whichever comes first, and always holds at least one: a sixteenth of
 * ANSWER_MAX_BYTES, so a page is always read whole, and small enough that four services catching up at once
 * cost the bus a few tens of MiB. Events of the course's size (about 300 bytes) fill 10,000 first.
 */
export const PAGE_MAX_BYTES = 4 * 1024 * 1024;

/**
 * The most events a page of the log holds: the bus refuses a larger `limit` (400), and a subscriber's read
 * of the log (log-pages.ts) asks for pages of up to this many. One constant for both, so the two never part.
 */
export const PAGE_MAX_EVENTS = 10_000;
