import { describe, expect, it } from 'vitest';
import { httpSystemForTests, metricSamples } from './support/http-system.js';
import { waitFor } from './support/stack.js';

// The five services as real processes on the HTTP bus, as `npm start` runs them: every publish and every
// delivery travels as a message on the event path's socket, none as a POST of its own (docs/event-bus.md,
// "The event path's socket"), and the course's flow is unchanged.
describe("the event path's socket, between the real services", () => {
  const running = httpSystemForTests();

  /** `POST /events` answered by a process: on its socket, and in all (socket and POSTs). */
  const eventsAnswered = async (url: string) => {
    const sum = (samples: { value: number }[]) => samples.reduce((total, { value }) => total + value, 0);
    const durations = await metricSamples(url, 'http_request_duration_seconds_count');
    return {
      socket: sum(await metricSamples(url, 'event_socket_exchanges_total')),
      all: sum(
        durations.filter(
          ({ labels }) => labels.includes('method="POST"') && labels.includes('route="/events"'),
        ),
      ),
    };
  };

  it('carries every publish and delivery of a post and its comments, and each comment ends moderated', async () => {
    const { system, blog } = running;
    const post = await blog.createPost('A post over sockets');
    expect(post.status).toBe(201);
    const postId = post.body.id as string;
    const contents = ['fine', 'an orange', 'also fine'];
    for (const content of contents) expect((await blog.createComment(postId, content)).status).toBe(201);
    const statuses = async () => (await blog.query())[postId]?.comments.map((comment) => comment.status);
    await waitFor(async () => (await statuses())?.every((status) => status !== 'pending') === true);
    expect(await statuses()).toEqual(['approved', 'rejected', 'approved']);

    const bus = await eventsAnswered(system.urls['event-bus']);
    // posts publishes PostCreated, comments each CommentCreated; the reactions ride in delivery answers.
    expect(bus.socket).toBeGreaterThanOrEqual(1 + contents.length);
    expect(bus.all).toBe(bus.socket);
    for (const service of ['posts', 'comments', 'moderation', 'query'] as const) {
      const answered = await eventsAnswered(system.urls[service]);
      expect(answered.socket, service).toBeGreaterThan(0);
      expect(answered.all, service).toBe(answered.socket);
    }
  });
});
