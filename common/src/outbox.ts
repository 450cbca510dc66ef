import { HttpError } from './errors.js';
import type { OutgoingEvent } from './events.js';
import type { Logger } from './logger.js';
import { unavailableMessage, type EventTransport } from './transport.js';

/** A reaction not yet known to be in the log, with the seq of the event that caused it. */
export interface OutboxEntry {
  reaction: OutgoingEvent & { id: string };
  triggerSeq?: number;
}

/**
 * A subscriber's reactions not yet known to be in the log, by their derived id (docs/event-bus.md,
 * "Reactions and the outbox"): an entry leaves once its id shows up in the log, once the bus's cursor
 * passes its trigger, or once published here.
 */
export class Outbox extends Map<string, OutboxEntry> {
  /**
   * The bus stores the reactions in an answer before its cursor passes the events answered, so a reaction
   * whose trigger is at or below the cursor it reports is in the log: no need to send it again.
   */
  forgetStored(busCursor: number): void {
    for (const [id, { triggerSeq }] of this) {
      if (triggerSeq !== undefined && triggerSeq <= busCursor) this.delete(id);
    }
  }

  /** Publishes every reaction in it; rejects with 503 naming the types it could not publish. */
  async publish(transport: EventTransport, log: Logger): Promise<void> {
    if (this.size === 0) return;
    // Published together, they reach the bus as one request (the transport groups them).
    const results = await Promise.allSettled(
      [...this.values()].map(async ({ reaction }) => {
        // Every replica decides every reaction: `once` stores the first and answers the others with it.
        const { seq } = await transport.publish(reaction, { once: true });
        log.debug({ type: reaction.type, id: reaction.id, seq }, 'reaction published');
        this.delete(reaction.id);
      }),
    );
    const failed = results.find((result) => result.status === 'rejected');
    if (failed) {
      const types = [...new Set([...this.values()].map((entry) => entry.reaction.type))].join(', ');
      const message = `${unavailableMessage(failed.reason)} (could not publish ${types})`;
      throw HttpError.unavailable(message, failed.reason);
    }
  }
}
