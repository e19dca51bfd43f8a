/**
 * `drain --timeout`: a session that outlives the timeout ends the command's wait — not the
 * session. The reply says how many are still open and after how long; the instance stays
 * out of rotation and the held request still completes. Real etcd, real HAProxy 2.6, the
 * agent in-process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentRouter, type AgentRouter } from './helpers/agent-router.js';
import { httpGet, startHttpBackend, waitFor, whoAnswers, type HttpBackend } from './helpers/haproxy.js';

/** Liveness bound for the agent to apply a change and traffic to follow: ~0.1 s expected. */
const APPLIED_WITHIN_MS = 20_000;
const TIMEOUT_S = 2;

describe('drain --timeout (real etcd + haproxy, in-process agent)', () => {
  let fx: AgentRouter;
  let w1: HttpBackend;
  let w2: HttpBackend;

  const stat = async (name: string) => (await fx.hap.runtime.showStat()).find((s) => s.backend === 'web' && s.name === name);

  beforeAll(async () => {
    [fx, w1, w2] = await Promise.all([agentRouter('lb-drain-to'), startHttpBackend('web-1'), startHttpBackend('web-2')]);
  });

  afterAll(async () => {
    w1?.release();
    await fx?.dispose();
    await Promise.all([w1?.close(), w2?.close()]);
  });

  it('ends the wait at the timeout with the open sessions reported, and leaves the session alive', async () => {
    expect((await fx.run(`register web web-1 ${w1.address}`)).ok).toBe(true);
    await waitFor('web-1 routed', async () => (await httpGet(fx.url).catch(() => undefined))?.body === 'web-1', APPLIED_WITHIN_MS);
    // Lands on web-1, the only server so far, and stays open until released. Settled at once
    // so a failure shows in the assertion below, not as an unhandled rejection.
    const held = httpGet(`${fx.url}slow`, { timeoutMs: 120_000 }).then(
      (r) => r,
      (err: unknown) => err as Error,
    );
    try {
      await waitFor('a session on web-1', async () => (await stat('web-1'))?.scur === 1, APPLIED_WITHIN_MS);
      expect((await fx.run(`register web web-2 ${w2.address}`)).ok).toBe(true);
      await waitFor('web-2 routed', async () => (await whoAnswers(fx.url, 4)).has('web-2'), APPLIED_WITHIN_MS);

      const reply = await fx.run(`drain web web-1 --timeout ${TIMEOUT_S}s`);
      expect(reply).toMatchObject({ ok: true });
      const m = /^web\/web-1 set to drain: 1 session still open after ([\d.]+)s \(haproxy lb-drain-to\)$/.exec(reply.summary);
      expect(m, reply.summary).not.toBeNull();
      // It waited the whole timeout (a lower bound: load only makes it longer).
      expect(Number(m![1])).toBeGreaterThanOrEqual(TIMEOUT_S);
      expect(reply.details?.join('\n')).toContain('run drain web web-1 again to keep watching');
      expect(reply.progress).toContain('web/web-1: 1 session draining');

      // The timeout ended the command's wait, not the session: still open, still draining.
      expect(await stat('web-1')).toMatchObject({ status: 'DRAIN', scur: 1 });
      expect((await fx.registry.get('web', 'web-1'))?.state).toMatchObject({ state: 'drain', by: 'U0ONCALL' });
      expect([...(await whoAnswers(fx.url, 6)).keys()]).toEqual(['web-2']);
    } finally {
      w1.release();
    }
    expect(await held).toEqual({ status: 200, body: 'web-1' });
    // Once it has ended, drain again reports nothing left.
    await waitFor('the session to end in HAProxy', async () => (await stat('web-1'))?.scur === 0, APPLIED_WITHIN_MS);
    expect((await fx.run(`drain web web-1 --timeout ${TIMEOUT_S}s`)).summary).toMatch(/^web\/web-1 was already draining: no sessions left after [\d.]+s/);
  }, 120_000);
});
