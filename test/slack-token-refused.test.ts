/**
 * A refused bot token, in `switchyard serve` run as a process (real etcd, the Slack
 * stand-in answering auth.test with an error): logged as an error, `/healthz` 503 saying
 * so — and still 503 after the next attempt is refused too, since waiting does not fix a
 * token. Slack's requests are answered 503 meanwhile and the replica stays out of the
 * feed-poster election, as while Slack is unreachable.
 */
import { appendFile } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FEED_CHANNEL } from './helpers/feed.js';
import { waitFor } from './helpers/haproxy.js';
import { freePort } from './helpers/net.js';
import { killAll, spawnSwitchyard } from './helpers/process.js';
import { postSlashCommand, startSlackStandIn, type SlackStandIn } from './helpers/slack.js';
import { makeWorkspace, ONCALL, OPS_CHANNEL, type Workspace } from './helpers/workspace.js';

const SECRET = 'refused-signing-secret';
const REFUSED_LOG = 'Slack refused the bot token (SLACK_BOT_TOKEN); commands cannot arrive until it is replaced';
/** Start-up through tsx on a loaded 2-core machine: a liveness bound, not a figure. */
const START_MS = 90_000;
/** A refused token is asked again after the longest backoff (30 s): 3× that, for a loaded machine. */
const RETRY_SEEN_MS = 90_000;

interface Health {
  ok: boolean;
  details: { slack: string; etcd: string };
}

describe('serve with a bot token Slack refuses (process, real etcd, Slack stand-in)', () => {
  let ws: Workspace;
  let standIn: SlackStandIn;

  beforeAll(async () => {
    [ws, standIn] = await Promise.all([makeWorkspace(), startSlackStandIn()]);
    await appendFile(ws.configPath, `slack:\n  feedChannel: ${FEED_CHANNEL}\n`);
  });

  afterEach(() => killAll());

  afterAll(async () => {
    await standIn?.close();
    await ws?.dispose();
  });

  it('logs an error and keeps /healthz at 503 naming the refusal, through the next refused attempt', async () => {
    let answer = 'invalid_auth';
    standIn.on('auth.test', () => ({ ok: false, error: answer }));
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const p = spawnSwitchyard(['serve', '--config', ws.configPath], {
      env: { SLACK_BOT_TOKEN: 'xoxb-refused', SLACK_SIGNING_SECRET: SECRET, SLACK_API_URL: standIn.apiUrl, HOST: '127.0.0.1', PORT: String(port) },
    });
    const health = async () => {
      const res = await fetch(`${base}/healthz`);
      return { status: res.status, body: (await res.json()) as Health };
    };

    // The refusal, as an error naming what Slack answered; the next try only after the longest backoff.
    const refusals = () => {
      if (!p.running()) throw new Error(`serve exited: ${p.err().slice(-2000)}`);
      return p.logs(new RegExp(`^${escapeRegExp(REFUSED_LOG)}$`));
    };
    const [first] = await waitFor('the refusal in the log', () => refusals().length > 0 && refusals(), START_MS, 50);
    expect(first).toMatchObject({ level: 50, attempt: 1, retryInMs: 30_000, reason: `auth.test at ${standIn.apiUrl}: Slack answered invalid_auth` });
    expect(p.logs(/^connected to Slack$/)).toEqual([]);

    const before = await health();
    expect(before.status).toBe(503);
    expect(before.body.ok).toBe(false);
    // etcd is fine: the 503 is the token's.
    expect(before.body.details.etcd).toBe('ok');
    const since = /^unreachable since (\S+): token refused: (.*)$/.exec(before.body.details.slack);
    expect(since?.[2]).toBe(`auth.test at ${standIn.apiUrl}: Slack answered invalid_auth`);

    // Slack's own requests are turned away for Slack to retry, and no poster campaigns.
    const slash = await postSlashCommand(`${base}/slack/events`, SECRET, {
      text: 'help',
      user_id: ONCALL,
      channel_id: OPS_CHANNEL,
      response_url: standIn.responseUrl(),
    });
    expect(slash.status).toBe(503);
    expect(await ws.etcd.getAll().prefix(`${ws.prefixes.switchyard}/feed/election/`).keys()).toEqual([]);

    // The next attempt (another refused code this time) is refused too: still 503, down
    // since the first refusal, never up in between.
    answer = 'token_revoked';
    await waitFor('the second refusal', () => refusals().length >= 2, RETRY_SEEN_MS, 100);
    expect(standIn.api('auth.test').map((c) => c.token)).toEqual(['xoxb-refused', 'xoxb-refused']);
    const after = await health();
    expect(after.status).toBe(503);
    expect(after.body.details.slack).toBe(`unreachable since ${since![1]}: token refused: auth.test at ${standIn.apiUrl}: Slack answered token_revoked`);
    expect(p.logs(/^connected to Slack$/)).toEqual([]);
    expect(p.running()).toBe(true);

    // Not connected, it still stops cleanly.
    expect((await p.stop('SIGTERM')).code).toBe(0);
  }, 240_000);
});

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
