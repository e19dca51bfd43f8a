/**
 * drain / undrain and the HAProxy half of status, through the router with an in-process
 * agent: real etcd, real HAProxy 2.6, loopback HTTP backends.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { agentRouter, type AgentRouter } from './helpers/agent-router.js';
import { httpGet, startHttpBackend, waitFor, whoAnswers, type HttpBackend } from './helpers/haproxy.js';

const names = (m: Map<string, number>) => [...m.keys()].sort();
/** Liveness bound for the agent to apply a change and traffic to follow: ~0.1 s expected. */
const APPLIED_WITHIN_MS = 20_000;

describe('drain and undrain (real etcd + haproxy, in-process agent)', () => {
  let fx: AgentRouter;
  let w1: HttpBackend;
  let w2: HttpBackend;

  const scur = async (name: string) => (await fx.hap.runtime.showStat()).find((s) => s.backend === 'web' && s.name === name)?.scur;
  const statusOf = async (name: string) => (await fx.hap.runtime.showStat()).find((s) => s.backend === 'web' && s.name === name)?.status;

  /**
   * Each test starts from exactly `backends` registered ready and UP in HAProxy (health
   * checks passed), nothing else: no test depends on what another one left.
   */
  async function only(...backends: HttpBackend[]) {
    const want = backends.map((b) => b.name).sort();
    for (const i of (await fx.registry.list('web')).instances) await fx.registry.deregister('web', i.instance);
    for (const b of backends) expect((await fx.run(`register web ${b.name} ${b.address}`)).ok).toBe(true);
    await waitFor(
      `HAProxy to have exactly ${want.join(', ')} UP`,
      async () => {
        const rows = (await fx.hap.runtime.showStat()).filter((r) => r.backend === 'web' && r.name !== 'BACKEND');
        return JSON.stringify(rows.map((r) => `${r.name} ${r.status}`).sort()) === JSON.stringify(want.map((n) => `${n} UP`));
      },
      APPLIED_WITHIN_MS,
    );
  }

  /** Drains through the registry (as another bot would) and waits until the agent has applied it. */
  async function drained(name: string) {
    await fx.registry.setState('web', name, 'drain', 'U0ONCALL');
    await waitFor(`${name} DRAIN`, async () => (await statusOf(name)) === 'DRAIN', APPLIED_WITHIN_MS);
  }

  beforeAll(async () => {
    [fx, w1, w2] = await Promise.all([agentRouter('lb-drain'), startHttpBackend('web-1'), startHttpBackend('web-2')]);
  });

  afterAll(async () => {
    await fx?.dispose();
    await Promise.all([w1?.close(), w2?.close()]);
  });

  beforeEach(() => {
    w1.release(); // a long request a failed test left open
    w2.release();
  });

  it('keeps a long request alive while new requests go elsewhere, and reports sessions reaching 0', async () => {
    await only(w1);
    await waitFor('web-1 routed', async () => (await httpGet(fx.url).catch(() => undefined))?.body === 'web-1', APPLIED_WITHIN_MS);
    // The long request lands on web-1, the only server so far. It ends when the test releases
    // it; settled at once so that a failure shows as the assertion below, not as an unhandled
    // rejection while the test waits for something else.
    const held = httpGet(`${fx.url}slow`, { timeoutMs: 120_000 }).then(
      (r) => r,
      (err: unknown) => err as Error,
    );
    await waitFor('a session on web-1', async () => (await scur('web-1')) === 1, APPLIED_WITHIN_MS);
    expect((await fx.run(`register web web-2 ${w2.address}`)).ok).toBe(true);
    await waitFor('web-2 routed', async () => (await whoAnswers(fx.url, 4)).has('web-2'), APPLIED_WITHIN_MS);
    const worker = await fx.hap.workerPid();

    const seen: string[] = [];
    const drain = fx.run('drain web web-1 --timeout 120s', (line) => seen.push(line));
    // Progress says the session is draining once the agent has applied DRAIN.
    await waitFor('DRAIN applied', async () => (await fx.hap.runtime.showStat()).find((s) => s.name === 'web-1')?.status === 'DRAIN', APPLIED_WITHIN_MS);
    expect(names(await whoAnswers(fx.url, 6))).toEqual(['web-2']);
    expect(await scur('web-1')).toBe(1);
    // The request is let go only once the plugin has reported the open session.
    await waitFor('the drain to report the open session', () => seen.includes('web/web-1: 1 session draining'), APPLIED_WITHIN_MS);
    w1.release();
    expect(await held).toEqual({ status: 200, body: 'web-1' });

    const reply = await drain;
    expect(reply).toMatchObject({ ok: true });
    expect(reply.summary).toMatch(/^web\/web-1 set to drain: no sessions left after [\d.]+s \(haproxy lb-drain\)$/);
    expect(reply.progress).toContain('web/web-1: 1 session draining');
    expect(await fx.hap.workerPid()).toBe(worker);
    expect((await fx.registry.get('web', 'web-1'))?.state).toMatchObject({ state: 'drain', by: 'U0ONCALL' });

    // Running it again just watches: nothing left to wait for.
    expect((await fx.run('drain web web-1')).summary).toMatch(/^web\/web-1 was already draining: no sessions left/);
  }, 180_000);

  it('refuses to drain the last ready instance without confirmation; unknown instances are E_NOT_FOUND', async () => {
    await only(w1, w2);
    await drained('web-1');
    const refused = await fx.run('drain web web-2');
    expect(refused).toMatchObject({ ok: false, code: 'E_CONFIRM_REQUIRED' });
    expect(refused.summary).toMatch(/web\/web-2 is the last ready instance of web/);
    expect((await fx.registry.get('web', 'web-2'))?.state?.state).toBe('ready');
    expect(await fx.run('drain web nope')).toMatchObject({ ok: false, code: 'E_NOT_FOUND' });
    expect(await fx.run('undrain web nope')).toMatchObject({ ok: false, code: 'E_NOT_FOUND' });
    expect(await fx.run('drain web web-2 --timeout soon')).toMatchObject({ ok: false, code: 'E_BAD_ARGS' });
  });

  it('status shows HAProxy state, sessions and the agents’ last apply; a garbage report is reported, not fatal', async () => {
    await only(w1, w2);
    const since = new Date().toISOString();
    await drained('web-1');
    // The agent's report of that apply (not of an earlier one) has reached etcd.
    await waitFor(
      'the agent to report the drain',
      async () => {
        const text = await fx.raw.get(`${fx.prefix}/switchyard/agents/lb-drain`).string();
        const r = text ? (JSON.parse(text) as { at?: string; changes?: string[] }) : undefined;
        return !!r && (r.at ?? '') >= since && (r.changes ?? []).includes('web-1 drain');
      },
      APPLIED_WITHIN_MS,
    );
    await fx.raw.put(`${fx.prefix}/switchyard/agents/lb-bogus`).value('{"not":"a result"');
    let status: Awaited<ReturnType<AgentRouter['run']>>;
    try {
      status = await fx.run('status web');
    } finally {
      // The next test's status must not show it, whatever happened here.
      await fx.raw.delete().key(`${fx.prefix}/switchyard/agents/lb-bogus`).exec();
    }
    expect(status.ok).toBe(true);
    const web = status.tables?.find((t) => t.title?.startsWith('web:'))?.table;
    expect(web?.header.slice(-2)).toEqual(['haproxy', 'sessions']);
    const rowOf = (n: string) => web?.rows.find((r) => r[0] === n);
    expect(rowOf('web-1')?.slice(-2)).toEqual(['DRAIN', '0']);
    expect(rowOf('web-2')?.slice(-2)).toEqual(['UP', '0']);
    const agents = status.tables?.find((t) => t.title?.startsWith('HAProxy agents'))?.table;
    expect(agents?.rows.find((r) => r[0] === 'lb-drain')?.slice(0, 3)).toEqual(['lb-drain', 'ok', expect.stringMatching(/^runtime web-1 drain in /)]);
    expect(agents?.rows.find((r) => r[0] === 'lb-bogus')?.slice(0, 3)).toEqual(['lb-bogus', '?', 'unreadable result']);
    expect(status.details).toContain('unreadable apply result of agent lb-bogus: not JSON');
  });

  it('undrain puts the instance back into rotation', async () => {
    await only(w1, w2);
    await drained('web-1');
    const reply = await fx.run('undrain web web-1');
    expect(reply).toMatchObject({ ok: true });
    // Its health checks kept passing while it drained: back as UP, not DOWN.
    expect(reply.summary).toBe('web/web-1 set to ready: back in rotation (haproxy lb-drain: UP)');
    await waitFor('web-1 answers again', async () => (await whoAnswers(fx.url, 4)).has('web-1'), APPLIED_WITHIN_MS);
    expect((await fx.run('undrain web web-1')).summary).toBe('web/web-1 is already ready');
  });

  it('without an agent in this process, drain reports the state change and says sessions cannot be observed', async () => {
    await only(w1, w2);
    const reply = await fx.runWithoutAgent('drain web web-2 --timeout 1s');
    expect(reply).toMatchObject({ ok: true, summary: 'web/web-2 set to drain; the HAProxy agents take it out of rotation' });
    expect(reply.details?.join()).toMatch(/sessions cannot be observed from here/);
    // The bot's agent still applies it.
    await waitFor('web-2 DRAIN', async () => (await fx.hap.runtime.showStat()).find((s) => s.name === 'web-2')?.status === 'DRAIN', APPLIED_WITHIN_MS);
    expect((await fx.runWithoutAgent('undrain web web-2')).ok).toBe(true);
  });
});
