import type { LiveEvent } from '../posts';
import type { LiveStatus } from '../useLivePosts';

const STATUS_TEXT: Record<LiveStatus, string> = {
  connecting: 'connecting…',
  live: 'live',
  offline: 'not live: reload to see changes made elsewhere',
};

/** `{"id":"ab12","title":"Hello"}` cut to a line. */
function shortData(data: LiveEvent['data'], max = 80): string {
  const json = JSON.stringify(data);
  return json.length > max ? `${json.slice(0, max - 1)}…` : json;
}

function clock(time: string): string {
  const date = new Date(time);
  return Number.isNaN(date.getTime()) ? time : date.toLocaleTimeString();
}

/** The latest events the query service applied, newest first: the event bus at work, as it happens. */
export function EventFlow({ events, status }: { events: LiveEvent[]; status: LiveStatus }) {
  return (
    <section aria-labelledby="event-flow-title" data-testid="event-flow">
      <h2 id="event-flow-title" className="h4">
        Event flow{' '}
        <span className={`badge ${status === 'live' ? 'badge-success' : 'badge-secondary'}`}>
          {STATUS_TEXT[status]}
        </span>
      </h2>
      {events.length === 0 ? (
        <p className="text-muted">No events yet.</p>
      ) : (
        <table className="table table-sm">
          <thead>
            <tr>
              <th scope="col">seq</th>
              <th scope="col">type</th>
              <th scope="col">time</th>
              <th scope="col">data</th>
            </tr>
          </thead>
          <tbody>
            {events.map((event, index) => (
              <tr key={event.id ?? `${event.seq}-${index}`} data-type={event.type}>
                <td>{event.seq ?? '–'}</td>
                <td>{event.type}</td>
                <td>{clock(event.time)}</td>
                <td>
                  <code>{shortData(event.data)}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
