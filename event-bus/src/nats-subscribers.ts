import { REPLAY_CONSUMER_PREFIX, type NatsClient } from '@blog/common';

/** One consumer of the stream as `GET /subscribers` shows it. */
export interface ConsumerStatus {
  /** `<service>-<HOSTNAME>-...` for a replica's view; the service's name for a legacy durable. */
  name: string;
  /**
   * `replica`: a replica's ordered consumer, read by that process only and deleted once it is gone.
   * `legacy`: a durable named after a service, read by an older version, deleted once nothing reads it.
   */
  kind: 'replica' | 'legacy';
  /** What the consumer has taken: the last seq delivered (a replica), or the acknowledged seq (a durable). */
  cursor: number;
  /** Events not yet taken: `pending` plus `ackPending`. */
  lag: number;
  /** Events of the stream not yet delivered to it. */
  pending: number;
  /** Delivered and awaiting their ack (a legacy durable only; a replica acknowledges nothing). */
  ackPending: number;
  /** Events delivered more than once and still unacknowledged (a legacy durable only). */
  failures: number;
  /**
   * Pull requests open on it: a running replica keeps one nearly all the time (each lasts 2 s), so 0 for
   * more than a moment says nothing reads it (a replica killed, its consumer not yet deleted by the server).
   */
  waiting: number;
}

/**
 * The consumers of the stream that services read, by name: each replica's view and any legacy durable.
 * Replays' consumers (short-lived, read by `fetchAfter`) are left out. Nothing here is kept between calls,
 * so any number of gateways answer the same.
 */
export async function consumerStatus(client: NatsClient): Promise<ConsumerStatus[]> {
  const { jsm } = await client.jetStream();
  const statuses: ConsumerStatus[] = [];
  try {
    for await (const info of jsm.consumers.list(client.stream)) {
      const legacy = Boolean(info.config.durable_name);
      if (!legacy && info.name.startsWith(REPLAY_CONSUMER_PREFIX)) continue;
      statuses.push({
        name: info.name,
        kind: legacy ? 'legacy' : 'replica',
        cursor: legacy ? info.ack_floor.stream_seq : info.delivered.stream_seq,
        lag: info.num_pending + info.num_ack_pending,
        pending: info.num_pending,
        ackPending: info.num_ack_pending,
        failures: info.num_redelivered,
        waiting: info.num_waiting,
      });
    }
  } catch (err) {
    throw client.failure(err, `could not list the consumers of ${client.stream}`);
  }
  return statuses.sort((a, b) => a.name.localeCompare(b.name));
}
