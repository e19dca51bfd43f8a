/**
 * Issue-9 outage benchmark: command latency while etcd has no quorum, and after it
 * recovers. A private 3-member cluster; the bot's runtime (router, registry, default
 * etcd.commandTimeout of 3 s) configured with all three endpoints, as a production config
 * would be. Each round:
 *   1. stop 2 members (the survivor accepts connections but has no leader; the others
 *      refuse them) and run a runbook of commands: time until each one's reply, and
 *      whether it is the clear coded error (E_UNAVAILABLE naming the endpoints tried);
 *   2. stop the third member too (every endpoint refuses) and run the runbook again;
 *   3. start all members and repeat one command until it succeeds: time to the first
 *      success, from the restart and from the moment etcd reports itself healthy.
 * argv: --rounds=N (default 3).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { loadConfig } from '../src/config/load.js';
import { nullFeed } from '../src/core/feed.js';
import type { Reply } from '../src/core/reply.js';
import { buildRuntime, type Runtime } from '../src/app/runtime.js';
import { startEtcdCluster, type EtcdCluster } from '../test/helpers/etcd-server.js';
import { fmt, summarize, writeSection } from './lib.js';

const USER = 'U0BENCH';
const TARGET_MS = 3000;
/** The reply comes a few ms after the deadline (the error is built and returned). */
const REPLY_MS = 50;
const ROUNDS = Number(/^--rounds=(\d+)$/.exec(process.argv.find((a) => a.startsWith('--rounds=')) ?? '')?.[1] ?? 3);

/** `added`: a new instance; `existing`: one registered before the outage. */
const RUNBOOK = (added: string, existing: string) => [
  `register web ${added} 10.0.0.2:80`,
  'status web',
  `drain web ${existing}`,
  `deregister web ${existing}`,
  'status',
];

interface Timed {
  ms: number;
  reply: Reply;
}

async function timed(runtime: Runtime, text: string): Promise<Timed> {
  const t0 = performance.now();
  const reply = await runtime.router.dispatch({ text, caller: { userId: USER, channel: 'dm', source: 'shell' }, requestId: `bench-${text}` });
  return { ms: performance.now() - t0, reply };
}

/** The reply an operator should get: coded, a one-line summary, every endpoint named. */
function clearError(r: Reply, endpoints: readonly string[]): boolean {
  const text = [r.summary, ...(r.details ?? [])].join('\n');
  return !r.ok && r.code === 'E_UNAVAILABLE' && !r.summary.includes('\n') && endpoints.every((e) => text.includes(e));
}

async function main() {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-bench-outage-'));
  let cluster: EtcdCluster | undefined;
  let runtime: Runtime | undefined;
  try {
    cluster = await startEtcdCluster(3);
    await writeFile(join(dir, 'acl.yaml'), `rules:\n  - allow: ["*"]\n    users: [${USER}]\n`);
    await writeFile(join(dir, 'switchyard.yaml'), `etcd:\n  endpoints: [${cluster.endpoints.join(', ')}]\nacl:\n  path: ./acl.yaml\n`);
    const config = await loadConfig(join(dir, 'switchyard.yaml'), {});
    // The audit trail ignores the level by design: send it nowhere too.
    runtime = await buildRuntime({ config, secrets: {}, log: pino({ level: 'silent' }, { write: () => undefined }), feed: nullFeed });

    const noQuorum: Timed[] = [];
    const allDown: Timed[] = [];
    const fromRestart: number[] = [];
    const fromHealthy: number[] = [];
    let sample = '';
    for (let round = 1; round <= ROUNDS; round++) {
      for (const i of [1, 2]) {
        const r = await timed(runtime, `register web a-${round}-${i} 10.0.0.1:80`);
        if (!r.reply.ok) throw new Error(`set-up failed: ${r.reply.summary}`);
      }
      const [first, second, third] = cluster.members;
      await Promise.all([second!.stop(), third!.stop()]);
      for (const text of RUNBOOK(`nq-${round}`, `a-${round}-1`)) noQuorum.push(await timed(runtime, text));
      sample ||= noQuorum[0]!.reply.summary;
      await first!.stop();
      for (const text of RUNBOOK(`down-${round}`, `a-${round}-2`)) allDown.push(await timed(runtime, text));

      const restart = performance.now();
      let healthyAt: number | undefined;
      const restarting = Promise.all(cluster.members.map((m) => m.start())).then(() => (healthyAt = performance.now()));
      let done: number | undefined;
      while (done === undefined) {
        const r = await timed(runtime, `register web back-${round} 10.0.0.3:80`);
        if (r.reply.ok) done = performance.now();
        else if (performance.now() - restart > 60_000) throw new Error(`no success within 60 s of the restart: ${r.reply.summary}`);
      }
      await restarting;
      fromRestart.push(done - restart);
      fromHealthy.push(Math.max(0, done - healthyAt!));
      process.stderr.write(
        `round ${round}: no quorum ${noQuorum
          .slice(-5)
          .map((t) => fmt(t.ms / 1000, 2))
          .join(' ')} s; first success ${fmt((done - restart) / 1000, 2)} s after the restart\n`,
      );
    }

    const s = (ts: Timed[]) => summarize(ts.map((t) => t.ms));
    const nq = s(noQuorum);
    const down = s(allDown);
    const restart = summarize(fromRestart);
    const healthy = summarize(fromHealthy);
    const clear = (ts: Timed[]) => ts.filter((t) => clearError(t.reply, cluster!.endpoints)).length;
    await writeSection(
      '06-outage',
      'etcd outage: command latency (issue 9)',
      [
        {
          metric: `no quorum (2 of 3 members down): time to the error, p50 / max of ${nq.n} commands`,
          value: `${fmt(nq.p50 / 1000, 2)} s / ${fmt(nq.max / 1000, 2)} s`,
          target: '≤ 3 s (+ 50 ms to reply)',
          pass: nq.max <= TARGET_MS + REPLY_MS,
        },
        {
          metric: 'no quorum: replies that are the clear coded error (E_UNAVAILABLE, every endpoint named)',
          value: `${clear(noQuorum)} of ${nq.n}`,
          target: 'all',
          pass: clear(noQuorum) === nq.n,
        },
        {
          metric: `all members down: time to the error, p50 / max of ${down.n} commands`,
          value: `${fmt(down.p50 / 1000, 2)} s / ${fmt(down.max / 1000, 2)} s`,
          target: '≤ 3 s (+ 50 ms to reply)',
          pass: down.max <= TARGET_MS + REPLY_MS,
        },
        { metric: 'all members down: clear coded errors', value: `${clear(allDown)} of ${down.n}`, target: 'all', pass: clear(allDown) === down.n },
        {
          metric: `after recovery: first success, from the restart (p50 / max of ${restart.n})`,
          value: `${fmt(restart.p50 / 1000, 2)} s / ${fmt(restart.max / 1000, 2)} s`,
          target: '',
          pass: undefined,
        },
        {
          metric: 'after recovery: first success, from etcd reporting itself healthy (p50 / max)',
          value: `${fmt(healthy.p50 / 1000, 2)} s / ${fmt(healthy.max / 1000, 2)} s`,
          target: '',
          pass: undefined,
        },
      ],
      [
        `${ROUNDS} rounds; the runbook is \`${RUNBOOK('new', 'old').join('`, `')}\`, run by the bot's router in-process (no Slack); etcd.commandTimeout at its default, 3 s.`,
        'Before this change a command waited the per-try deadline (5 s) once per endpoint it tried, ~10 s with two endpoints, so a runbook of N commands took 10·N s; now one deadline covers the operation across retries and endpoints.',
        '"Healthy" is the first answer of every member\'s /health; the first success can come before it (a quorum of two is enough), then the figure is 0.',
        `A reply during the outage: "${sample}"`,
        '`status` answers at once either way: it asks every endpoint for its health first (one attempt each, no retries) and says which are down.',
      ],
    );
  } finally {
    await runtime?.close();
    await cluster?.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/outage: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
