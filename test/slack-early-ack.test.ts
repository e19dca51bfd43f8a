/**
 * A duplicate check that etcd is slow to answer (a leader election takes 1–2 s) must not
 * cost the command: the request is acknowledged within Slack's 3 s, the check goes on, and
 * the command runs once it is known to be new — or is refused, said on response_url, when
 * the check fails.
 */
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSlackApp, type SlackApp } from '../src/adapters/slack/app.js';
import { MemoryDeduper, UNCHECKED_TEXT } from '../src/adapters/slack/dedupe.js';
import type { ClaimResult, RequestDeduper, SeenRecord } from '../src/core/dedupe.js';
import type { DispatchRequest, Dispatcher } from '../src/core/dispatch.js';
import { createLogger } from '../src/core/log.js';
import { postSlashCommand, startSlackStandIn, type SlackStandIn } from './helpers/slack.js';

const SECRET = 'early-ack-secret';

/** The in-memory seen-set behind a gate: claims wait until released, or fail. */
class SlowDeduper implements RequestDeduper {
  private readonly inner = new MemoryDeduper();
  private gate: { release: () => void; fail: (err: Error) => void; promise: Promise<void> } | undefined;
  waiting = 0;

  hold() {
    let release!: () => void;
    let fail!: (err: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      release = res;
      fail = rej;
    });
    this.gate = { release, fail, promise };
    return this.gate;
  }

  async claim(keys: readonly string[], record: SeenRecord): Promise<ClaimResult> {
    if (this.gate) {
      this.waiting++;
      await this.gate.promise;
    }
    return this.inner.claim(keys, record);
  }
}

describe('Slack ack while the duplicate check is slow', () => {
  let standIn: SlackStandIn;
  let slack: SlackApp;
  let events: string;
  const calls: DispatchRequest[] = [];
  const deduper = new SlowDeduper();
  const dispatcher: Dispatcher = {
    async dispatch(req) {
      calls.push(req);
      return { ok: true, summary: `did ${req.text}` };
    },
  };

  beforeAll(async () => {
    standIn = await startSlackStandIn();
    slack = createSlackApp({
      dispatcher,
      log: createLogger({ level: 'silent' }),
      botToken: 'xoxb-early',
      signingSecret: SECRET,
      apiUrl: standIn.apiUrl,
      port: 0,
      host: '127.0.0.1',
      metricsRegistry: new Registry(),
      health: async () => ({ ok: true }),
      deduper,
    });
    const { port } = await slack.start();
    events = `http://127.0.0.1:${port}/slack/events`;
  });
  afterAll(async () => {
    await slack?.stop();
    await standIn?.close();
  });

  it('acks before the check answers, then runs the command once the check says it is new', async () => {
    const gate = deduper.hold();
    const url = standIn.responseUrl('slow-ok');
    const res = await postSlashCommand(events, SECRET, { text: 'status web', user_id: 'U1', channel_id: 'C1', response_url: url, trigger_id: 't-slow-ok' });
    // The ack came while the claim was still held: nothing ran yet.
    expect(res.status).toBe(200);
    expect(deduper.waiting).toBe(1);
    expect(calls).toHaveLength(0);
    gate.release();
    const reply = await standIn.waitFor(
      (c) => c.kind === 'response' && c.method === 'slow-ok' && typeof c.body.text === 'string' && c.body.text.includes('did status web'),
      10_000,
    );
    expect(reply.body.response_type).toBe('ephemeral');
    expect(calls.map((c) => c.text)).toEqual(['status web']);
  });

  it('acks, and when the check then fails, says so on response_url and runs nothing', async () => {
    const gate = deduper.hold();
    const before = calls.length;
    const url = standIn.responseUrl('slow-fail');
    const res = await postSlashCommand(events, SECRET, { text: 'status db', user_id: 'U1', channel_id: 'C1', response_url: url, trigger_id: 't-slow-fail' });
    expect(res.status).toBe(200);
    gate.fail(new Error('etcd did not answer'));
    const said = await standIn.waitFor((c) => c.kind === 'response' && c.method === 'slow-fail' && c.body.text === UNCHECKED_TEXT, 10_000);
    expect(said.body.response_type).toBe('ephemeral');
    expect(calls.length).toBe(before);
  });
});
