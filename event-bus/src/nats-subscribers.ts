import type { NatsClient } from '@blog/common';

/** One durable consumer as `GET /subscribers` shows it. */
export interface ConsumerStatus {
  name: string;
  /** The highest stream seq below which everything is acknowledged (the consumer's ack floor). */
  cursor: number;
  /** Events not yet acknowledged: not yet delivered, plus delivered and awaiting their ack. */
  lag: number;
  pending: number;
  ackPending: number;
  /** Events delivered more than once and still unacknowledged: a handler failing on them. */
  failures: number;
}

/** The durable consumers of the stream, by name (the replays' ordered consumers are not listed). */
export async function consumerStatus(client: NatsClient): Promise<ConsumerStatus[]> {
  const { jsm } = await client.jetStream();
  const statuses: ConsumerStatus[] = [];
  try {
    for await (const info of jsm.consumers.list(client.stream)) {
      if (!info.config.durable_name) continue;
      statuses.push({
        name: info.name,
        cursor: info.ack_floor.stream_seq,
        lag: info.num_pending + info.num_ack_pending,
        pending: info.num_pending,
        ackPending: info.num_ack_pending,
        failures: info.num_redelivered,
      });
    }
  } catch (err) {
    throw client.failure(err, `could not list the consumers of ${client.stream}`);
  }
  return statuses.sort((a, b) => a.name.localeCompare(b.name));
}
