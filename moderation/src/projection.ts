import type { Projection } from '@blog/common';

/** The course's rule, case-sensitive. */
export const moderate = (content: string) => (content.includes('orange') ? 'rejected' : 'approved');

/** Moderation keeps no state: it only reacts to each CommentCreated with a CommentModerated. */
export const moderationProjection: Projection<null> = {
  types: ['CommentCreated'],
  initial: () => null,
  apply: () => undefined,
  react(_state, event) {
    if (event.type !== 'CommentCreated') return [];
    const { id, postId, content } = event.data;
    return [{ type: 'CommentModerated', data: { id, postId, status: moderate(content), content } }];
  },
};
