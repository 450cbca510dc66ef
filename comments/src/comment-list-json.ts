import type { Comment } from './projection.js';

/** One comment as a 201 lists it. */
export const commentJson = ({ id, content, status }: Comment): string =>
  JSON.stringify({ id, content, status });

/** A list of comments as a 201 answers it, made whole. */
export const listJson = (comments: Comment[]): string => `[${comments.map(commentJson).join(',')}]`;

/** Settled comments are kept joined this many to a string, so an answer joins a few strings, not each comment's. */
const CHUNK = 16;

interface Made {
  comment: Comment;
  status: Comment['status'];
  json: string;
}

/**
 * The JSON of one post's comments, kept between the 201s of that post: each one lists every comment of the
 * post, which would otherwise all be made and joined again for every new one. The comments from the first
 * to the first one still pending are settled: their JSON is kept joined, and no longer looked at. The
 * projection only appends to a post's list and only changes a comment's status, and it counts the changes
 * of a status already final (`finalStatusChanges`, a second moderation): when that count moves, every
 * post's JSON is made again.
 */
export class CommentListJson {
  /** The settled comments' JSON: full chunks of CHUNK comments, then the rest of them one by one. */
  private chunks: string[] = [];
  private open: string[] = [];
  private settledCount = 0;
  /** The comments after the settled ones, with what their JSON was made from. */
  private unsettled: Made[] = [];
  private finalStatusChanges = 0;

  /** The post's comments as JSON text, the same as `listJson(comments)`. */
  of(comments: Comment[], finalStatusChanges: number): string {
    if (finalStatusChanges !== this.finalStatusChanges || comments.length < this.settledCount) {
      this.chunks = [];
      this.open = [];
      this.settledCount = 0;
      this.unsettled = [];
      this.finalStatusChanges = finalStatusChanges;
    }
    const { unsettled, settledCount } = this;
    for (let index = settledCount; index < comments.length; index++) {
      const comment = comments[index]!;
      const known = unsettled[index - settledCount];
      if (known?.comment === comment && known.status === comment.status) continue;
      unsettled[index - settledCount] = { comment, status: comment.status, json: commentJson(comment) };
    }
    unsettled.length = comments.length - settledCount;
    let settling = 0;
    while (settling < unsettled.length && unsettled[settling]!.status !== 'pending') {
      this.open.push(unsettled[settling++]!.json);
      if (this.open.length === CHUNK) {
        this.chunks.push(this.open.join(','));
        this.open = [];
      }
    }
    if (settling > 0) {
      unsettled.splice(0, settling);
      this.settledCount += settling;
    }
    const parts = [...this.chunks, ...this.open];
    for (const made of unsettled) parts.push(made.json);
    return `[${parts.join(',')}]`;
  }
}
