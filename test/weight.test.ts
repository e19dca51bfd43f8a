/**
 * `weight`: a runtime weight change through the registry facade, applied by the agent with
 * `set server … weight` (no reload), keeping a TTL registration's lease. Real etcd, real
 * HAProxy, an in-process agent.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { agentRouter, type AgentRouter } from './helpers/agent-router.js';
import { httpGet, startHttpBackend, waitFor, type HttpBackend } from './helpers/haproxy.js';

describe('weight (real etcd + haproxy, in-process agent)', () => {
  let fx: AgentRouter;
  let w1: HttpBackend;

  const served = async (name: string) => (await fx.hap.runtime.showStat()).find((s) => s.backend === 'web' && s.name === name);

  beforeAll(async () => {
    [fx, w1] = await Promise.all([agentRouter('lb-weight'), startHttpBackend('web-1')]);
  });

  afterAll(async () => {
    await fx?.dispose();
    await w1?.close();
  });

  // Each test registers web-1 itself: none depends on what another one left.
  afterEach(async () => {
    await fx.registry.deregister('web', 'web-1').catch(() => undefined); // absent if the test failed before registering it
    await waitFor('web-1 to leave HAProxy', async () => (await served('web-1')) === undefined);
  });

  it('changes the HAProxy weight at runtime, with no reload, and a TTL registration keeps its lease', async () => {
    expect((await fx.run(`register web web-1 ${w1.address} --ttl 60s`)).ok).toBe(true);
    await waitFor('web-1 routed', async () => (await httpGet(fx.url).catch(() => undefined))?.body === 'web-1');
    const before = await fx.registry.get('web', 'web-1');
    expect(before?.lease).toBeDefined();
    expect((await served('web-1'))?.weight).toBe(100);
    const worker = await fx.hap.workerPid();

    const reply = await fx.run('weight web web-1 10');
    expect(reply).toMatchObject({ ok: true, summary: 'web/web-1 weight 100 → 10; its lease is kept; the HAProxy agents apply it at runtime' });
    await waitFor('HAProxy to route web-1 with weight 10', async () => (await served('web-1'))?.weight === 10);
    expect(fx.local.agent?.lastResult).toMatchObject({ ok: true, method: 'runtime' });
    expect(await fx.hap.workerPid()).toBe(worker);

    const after = await fx.registry.get('web', 'web-1');
    expect(after?.lease).toBe(before!.lease);
    expect(after?.address).toBe(w1.address);
    expect(after?.state).toMatchObject({ state: 'ready', weight: 10, by: 'U0ONCALL' });
    // The lease is live, not just named: etcd still counts down its TTL.
    const granted = await fx.raw.leaseClient.leaseTimeToLive({ ID: after!.lease!, keys: false });
    expect(Number(granted.TTL)).toBeGreaterThan(0);
  });

  it('keeps the drain state, refuses an unknown instance and a weight out of 0–256, and says when nothing changes', async () => {
    expect((await fx.run(`register web web-1 ${w1.address}`)).ok).toBe(true);
    expect((await fx.run('weight web web-1 10')).ok).toBe(true);
    expect((await fx.run('weight web web-1 10')).summary).toBe('web/web-1 already has weight 10');
    expect(await fx.run('weight web nope 5')).toMatchObject({ ok: false, code: 'E_NOT_FOUND' });
    expect(await fx.run('weight web web-1 257')).toMatchObject({ ok: false, code: 'E_BAD_ARGS' });
    expect((await fx.registry.get('web', 'web-1'))?.state?.weight).toBe(10);
    await fx.registry.setState('web', 'web-1', 'drain', 'U0ONCALL');
    expect((await fx.run('weight web web-1 0')).ok).toBe(true);
    expect((await fx.registry.get('web', 'web-1'))?.state).toMatchObject({ state: 'drain', weight: 0 });
  });
});
