/**
 * The type and seq of a stored event from its JSON text, without parsing the whole event: what a page of
 * `GET /events?types=` needs to keep or pass over each event. The log's text (`eventJson` in store.ts)
 * starts `{"seq":N,"id":...,"time":...,"type":...`, made by JSON.stringify, so both are read from its
 * first bytes; any other shape is parsed whole.
 */

const TYPE_KEY = ',"type":"';

/** Whether the event `json` is of one of `types`: a test made once per page. */
export function typeFilter(types: readonly string[]): (json: string) => boolean {
  const wanted = new Set(types);
  return (json) => wanted.has(eventType(json));
}

/** The top-level `type` of the event `json` (a string, as the bus validated at publish). */
export function eventType(json: string): string {
  const key = json.indexOf(TYPE_KEY);
  // `,"type":"` cannot be inside a JSON string (its quotes would be escaped), so it is a key; with no `{`
  // or `[` before it but the first, it is a key of the event itself, not of a value nested in it.
  if (key > 0 && !hasNesting(json, key)) {
    const start = key + TYPE_KEY.length;
    const end = json.indexOf('"', start);
    const type = json.slice(start, end);
    // A type with an escape in it is left to the parser, which reads it exactly.
    if (end > start && !type.includes('\\')) return type;
  }
  return String((JSON.parse(json) as { type?: unknown }).type);
}

/** The `seq` of the event `json`. */
export function eventSeq(json: string): number {
  if (json.startsWith('{"seq":')) {
    const seq = Number.parseInt(json.slice(7, 24), 10);
    if (Number.isSafeInteger(seq)) return seq;
  }
  return Number((JSON.parse(json) as { seq?: unknown }).seq);
}

function hasNesting(json: string, end: number): boolean {
  return json.lastIndexOf('{', end) > 0 || json.lastIndexOf('[', end) !== -1;
}
