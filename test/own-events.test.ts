import { describe, expect, it } from 'vitest';
import { httpSystemForTests, metricSamples } from './support/http-system.js';
import { waitFor } from './support/stack.js';

// The five services as real processes on the HTTP bus, as `npm start` runs them: comments applies its own
// CommentCreated from the publish's answer, so a comment made while the system is otherwise idle costs no
// delivery back to comments (docs/event-bus.md, "A publisher's own events").
describe("a command's own event, on the HTTP bus", () => {
  const running = httpSystemForTests();

  /** A counter of the bus's metrics for the subscriber comments (with `outcome`, if given). */
  const busCounter = async (name: string, outcome?: string) => {
    const samples = await metricSamples(running.system.urls['event-bus'], name);
    const sample = samples.find(
      ({ labels }) =>
        labels.includes('subscriber="comments"') &&
        (outcome === undefined || labels.includes(`outcome="${outcome}"`)),
    );
    return sample?.value ?? 0;
  };

  it('is not delivered back to comments when comments are made one at a time, and the 201 still shows it pending', async () => {
    const { blog } = running;
    const post = await blog.createPost('A post');
    expect(post.status).toBe(201);
    const postId = post.body.id as string;
    await waitFor(async () => (await blog.query())[postId] !== undefined);
    const statusInQuery = async (commentId: string) =>
      (await blog.query())[postId]?.comments.find((comment) => comment.id === commentId)?.status;
    const delivered = await busCounter('eventbus_deliveries_total', 'delivered');
    const passed = await busCounter('eventbus_own_events_passed_total');

    const count = 5;
    for (let i = 0; i < count; i++) {
      const created = await blog.createComment(postId, `comment ${i}`);
      // The 201 shows the state its own event created (read your writes): the new comment pending
      expect(created.status).toBe(201);
      const comment = created.body.at(-1) as { id: string; content: string; status: string };
      expect(comment).toEqual({ id: expect.any(String), content: `comment ${i}`, status: 'pending' });
      expect((await blog.comments(postId)).map((c: { id: string }) => c.id)).toContain(comment.id);
      await waitFor(async () => (await statusInQuery(comment.id)) === 'approved');
    }

    // Each comment's own event was passed over in comments' loop: comments got only each moderation
    // (and at most one POST telling it of the passes once the log went quiet), not CommentCreated too.
    expect((await busCounter('eventbus_own_events_passed_total')) - passed).toBe(count);
    const deliveredToComments = (await busCounter('eventbus_deliveries_total', 'delivered')) - delivered;
    expect(deliveredToComments).toBeGreaterThanOrEqual(count);
    expect(deliveredToComments).toBeLessThanOrEqual(count + 1);
    expect((await blog.comments(postId)).map((c: { status: string }) => c.status)).toEqual(
      Array(count).fill('approved'),
    );
  });
});
