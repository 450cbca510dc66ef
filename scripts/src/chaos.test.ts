import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runScript, scriptPath } from '../../test/support/scripts.js';
import { describeEachTransport } from '../../test/support/transports.js';
import { natsAvailability } from '@blog/common/testing';
import { findDiscrepancies, type Expected, type LogEvent, type Observed } from './chaos-check.js';

// ---------------------------------------------------------------------------------------------- the checker

/** A small consistent world: one post, one approved and one rejected comment, each with its three events. */
function world(): { expected: Expected; observed: Observed } {
  const events: LogEvent[] = [];
  const add = (type: string, id: string, data: LogEvent['data']) =>
    events.push({ seq: events.length + 1, id, type, data });
  add('PostCreated', 'e1', { id: 'p1' });
  for (const [id, content, status] of [
    ['c1', 'nice', 'approved'],
    ['c2', 'an orange', 'rejected'],
  ] as const) {
    add('CommentCreated', `e-${id}`, { id, content, postId: 'p1', status: 'pending' });
    add('CommentModerated', `e-${id}/m`, { id, content, postId: 'p1', status });
    add('CommentUpdated', `e-${id}/m/u`, { id, content, postId: 'p1', status });
  }
  const comments = () => [
    { id: 'c1', content: 'nice', status: 'approved' },
    { id: 'c2', content: 'an orange', status: 'rejected' },
  ];
  return {
    expected: {
      posts: [{ id: 'p1', title: 'T' }],
      comments: [
        { id: 'c1', postId: 'p1', content: 'nice' },
        { id: 'c2', postId: 'p1', content: 'an orange' },
      ],
    },
    observed: {
      events,
      query: { query: { p1: { id: 'p1', title: 'T', comments: comments() } } },
      posts: { posts: { p1: { id: 'p1', title: 'T' } } },
      comments: { comments: { p1: comments() } },
      deadLetters: [],
    },
  };
}

describe('the chaos checker', () => {
  it('finds nothing wrong in a consistent world', () => {
    const { expected, observed } = world();
    expect(findDiscrepancies(expected, observed)).toEqual([]);
  });

  it('catches an acknowledged comment missing from query', () => {
    const { expected, observed } = world();
    observed.query.query!.p1!.comments.pop();
    expect(findDiscrepancies(expected, observed)).toEqual([
      'query: comment c2 on post p1 found 0 times',
      'query: 1 comments in all, the log created 2',
    ]);
  });

  it('catches a comment shown twice, a wrong status and a pending one', () => {
    const { expected, observed } = world();
    observed.comments.comments!.p1!.push({ id: 'c1', content: 'nice', status: 'approved' });
    observed.query.query!.p1!.comments[1]!.status = 'approved';
    observed.comments.comments!.p1![1]!.status = 'pending';
    const found = findDiscrepancies(expected, observed);
    expect(found).toContain('comments: comment c1 on post p1 found 2 times');
    expect(found.some((d) => d.startsWith('query: comment c2 is'))).toBe(true);
    expect(found).toContain('comments: comment c2 pending');
  });

  it('catches an event stored twice, a missing reaction and a lost post', () => {
    const { expected, observed } = world();
    const updated = observed.events.pop()!;
    observed.events.push({ ...updated, seq: observed.events.length + 1 }); // same id again: a double
    observed.events.splice(2, 1); // c1's CommentModerated gone
    observed.events.forEach((event, index) => (event.seq = index + 1));
    delete observed.posts.posts!.p1;
    const found = findDiscrepancies(expected, observed);
    expect(found).toContain('log: comment c1 has 0 CommentModerated events');
    expect(found).toContain('posts: post p1 missing');
    observed.events.push({ ...observed.events.at(-1)!, seq: observed.events.length + 1 });
    expect(findDiscrepancies(expected, observed)).toEqual(
      expect.arrayContaining([
        `log: event id e-c2/m/u appears twice`,
        'log: comment c2 has 2 CommentUpdated events',
      ]),
    );
  });

  it('catches a dead letter and a view entry the log does not have', () => {
    const { expected, observed } = world();
    observed.deadLetters.push({ subscriber: 'query', seq: 2 });
    observed.query.query!.ghost = { id: 'ghost', title: 'G', comments: [] };
    const found = findDiscrepancies(expected, observed);
    expect(found).toContain('query: post ghost is not in the log');
    expect(found.some((d) => d.startsWith('dead letter:'))).toBe(true);
  });

  it('checks every replica, and catches replicas that disagree', () => {
    const { expected, observed } = world();
    const copy = <T>(value: T): T => structuredClone(value);
    observed.query = { 'query-0': copy(observed.query.query!), 'query-1': copy(observed.query.query!) };
    observed.comments = { 'comments-0': copy(observed.comments.comments!), 'comments-1': {} };
    expect(findDiscrepancies({ ...expected, comments: [] }, observed)).toEqual([
      'comments-1 and comments-0 differ on 1 posts: p1',
    ]);
    observed.comments['comments-1'] = copy(observed.comments['comments-0']!);
    expect(findDiscrepancies(expected, observed)).toEqual([]);
    observed.query['query-1']!.p1!.comments.reverse();
    observed.query['query-1']!.p1!.comments[0]!.status = 'approved';
    expect(findDiscrepancies(expected, observed)).toEqual([
      'query-1: comment c2 is {"id":"c2","content":"an orange","status":"approved"}, expected ' +
        '{"id":"c2","content":"an orange","status":"rejected"}',
      'query-1 and query-0 differ on 1 posts: p1',
    ]);
  });
});

// ---------------------------------------------------------------------------------------------- the script

interface ChaosResults {
  seed: number;
  transport: string;
  replicas: number;
  natsNodes: number;
  answers: Record<string, Record<string, number>>;
  lateReplica: { name: string; readyMs: number; discrepancies: number } | null;
  writes: { acknowledgedPosts: number; acknowledgedComments: number };
  kills: { service: string; restartMs: number | null }[];
  killsByService: Record<string, number>;
  quietAfterMs: number | null;
  discrepancies: string[];
}

/** Ours, without the shell's NATS_URL and NATS_STREAM: on nats, the script runs (and kills) its own server. */
function chaosEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NATS_URL;
  delete env.NATS_STREAM;
  return env;
}

/** `node scripts/dist/chaos.js <args> --json`, on the nats-servers it runs itself: its exit code, results and report. */
async function runChaos(args: string[]) {
  expect(existsSync(scriptPath('chaos')), 'scripts/dist/chaos.js is missing: run `npm run build` first').toBe(
    true,
  );
  // The services' log lines go to a temporary file unless the test names one, never into the checkout.
  const logs = args.includes('--logs')
    ? []
    : ['--logs', join(mkdtempSync(join(tmpdir(), 'chaos-logs-')), 'run.log')];
  const { code, stdout, stderr } = await runScript('chaos', [...args, ...logs, '--json'], {
    timeoutMs: 290_000,
    env: chaosEnv(),
  });
  return { code, stderr, results: JSON.parse(stdout || '{}') as ChaosResults };
}

// It kills the nats-servers it runs: it needs the binary (natsAvailability prints why not).
const ownNats = natsAvailability({ needs: 'binary' });

describeEachTransport(
  'npm run chaos, short',
  (transport) => {
    it(
      `loses and doubles nothing while services (the bus${transport === 'nats' ? ', the nats-server' : ''} included) are SIGKILLed`,
      { timeout: 300_000 },
      async () => {
        // Seed 3 draws the bus (on nats: the gateway, then the nats-server) among the first kills.
        const logFile = join(mkdtempSync(join(tmpdir(), 'chaos-logs-')), 'run.log');
        const { code, stderr, results } = await runChaos([
          ...['--seed', '3', '--duration', '16', '--min-kills', '5', '--rate', '20'],
          ...['--transport', transport, '--logs', logFile],
        ]);
        expect(code, `chaos failed:\n${stderr.slice(-4000)}`).toBe(0);
        expect(results.discrepancies).toEqual([]);
        expect(results.kills.length).toBeGreaterThanOrEqual(5);
        expect(results.killsByService['event-bus']).toBeGreaterThanOrEqual(1);
        if (transport === 'nats') expect(results.killsByService.nats).toBeGreaterThanOrEqual(1);
        expect(results.transport).toBe(transport);
        expect(results.kills.every((kill) => kill.restartMs !== null)).toBe(true);
        expect(results.writes.acknowledgedPosts).toBeGreaterThan(5);
        expect(results.writes.acknowledgedComments).toBeGreaterThan(20);
        expect(results.quietAfterMs).not.toBeNull();
        expect(stderr).toContain('seed 3');
        // The kills and restarts are in the log file, between the services' own lines.
        const logged = readFileSync(logFile, 'utf8');
        for (const kill of results.kills) expect(logged).toContain(`chaos      SIGKILL ${kill.service};`);
        expect(logged).toMatch(/chaos {6}event-bus ready \d+ ms after its restart/);
      },
    );
  },
  { needs: 'binary' }, // it kills the nats-server
);

// Two replicas of each service agree only once each replica reads the whole stream itself and reactions
// are stored once by subject (docs/event-bus.md, "Scaling out on NATS"): on a transport where replicas
// share one consumer, this run reports the views that split.
describe.skipIf(ownNats.skip)(
  `npm run chaos, short, 2 replicas of each service on a 3-node NATS cluster${ownNats.skip ? ` (${ownNats.reason})` : ''}`,
  () => {
    it(
      'every replica shows the acknowledged writes once, as one more started at the end does',
      { timeout: 300_000 },
      async () => {
        // Seed 5 kills nats-1 then nats-2 (the second once the first is back), then a replica of each service.
        const { code, stderr, results } = await runChaos([
          ...['--seed', '5', '--duration', '25', '--min-kills', '6', '--rate', '15'],
          ...['--transport', 'nats', '--replicas', '2', '--nats-nodes', '3'],
        ]);
        expect(results.discrepancies, stderr.slice(-4000)).toEqual([]);
        expect(code).toBe(0);
        expect(results).toMatchObject({ transport: 'nats', replicas: 2, natsNodes: 3 });
        const killed = (prefix: string) =>
          Object.entries(results.killsByService)
            .filter(([name]) => name.startsWith(prefix))
            .reduce((sum, [, n]) => sum + n, 0);
        expect(killed('nats-')).toBeGreaterThanOrEqual(2);
        for (const service of ['posts-', 'comments-', 'query-'])
          expect(killed(service), service).toBeGreaterThanOrEqual(1);
        expect(results.kills.every((kill) => kill.restartMs !== null)).toBe(true);
        expect(results.writes.acknowledgedPosts).toBeGreaterThan(5);
        expect(results.writes.acknowledgedComments).toBeGreaterThan(20);
        const statuses = Object.values(results.answers).flatMap((byStatus) => Object.keys(byStatus));
        expect(statuses.filter((status) => /^5\d\d$/.test(status) && status !== '503')).toEqual([]);
        expect(results.lateReplica).toMatchObject({ name: 'query-2', discrepancies: 0 });
      },
    );
  },
);
