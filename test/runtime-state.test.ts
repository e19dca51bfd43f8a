/**
 * Weight and maintenance reach a running HAProxy through its runtime API — `show servers
 * state` shows them — with no reload, and the rendered file follows so a restart starts the
 * same way. Real etcd, real HAProxy 2.6, the agent in-process as `serve` runs it.
 */
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminModeOf } from '../src/adapters/haproxy/runtime-parse.js';
import { agentRouter, type AgentRouter } from './helpers/agent-router.js';
import { startHttpBackend, waitFor, whoAnswers, type HttpBackend } from './helpers/haproxy.js';

/** Liveness bound for the agent to apply a change (~10 ms expected). */
const APPLIED_WITHIN_MS = 20_000;

describe('weight and maint through the runtime API (real etcd + haproxy)', () => {
  let fx: AgentRouter;
  let w1: HttpBackend;
  let w2: HttpBackend;

  /** The row `show servers state` gives for a server of backend web. */
  const row = async (name: string) => (await fx.hap.runtime.showServersState('web')).find((r) => r.name === name);

  beforeAll(async () => {
    [fx, w1, w2] = await Promise.all([agentRouter('lb-rtstate'), startHttpBackend('web-1'), startHttpBackend('web-2')]);
    expect((await fx.run(`register web web-1 ${w1.address}`)).ok).toBe(true);
    expect((await fx.run(`register web web-2 ${w2.address}`)).ok).toBe(true);
    await waitFor(
      'both servers routed',
      async () => {
        const seen = await whoAnswers(fx.url, 6);
        return seen.has('web-1') && seen.has('web-2');
      },
      APPLIED_WITHIN_MS,
    );
  });

  afterAll(async () => {
    await fx?.dispose();
    await Promise.all([w1?.close(), w2?.close()]);
  });

  it('`weight` sets the running server’s weight (show servers state), without a reload, and the file follows', async () => {
    expect(await row('web-1')).toMatchObject({ uweight: 100 });
    const worker = await fx.hap.workerPid();
    expect((await fx.run('weight web web-1 25')).ok).toBe(true);
    await waitFor('uweight 25 in show servers state', async () => (await row('web-1'))?.uweight === 25, APPLIED_WITHIN_MS);
    expect(await row('web-2')).toMatchObject({ uweight: 100 });
    expect(fx.local.agent?.lastResult).toMatchObject({ ok: true, method: 'runtime' });
    expect(await fx.hap.workerPid()).toBe(worker);
    await waitFor(
      'the rendered file to carry weight 25',
      async () => /server web-1 \S+ check inter \d+ weight 25\b/.test(await readFile(fx.hap.config, 'utf8')),
      APPLIED_WITHIN_MS,
    );
  });

  it('maint set in the registry puts the server in MAINT at runtime (no traffic, no reload); undrain brings it back', async () => {
    const worker = await fx.hap.workerPid();
    const before = await row('web-1');
    expect(adminModeOf(before!)).toBe('ready');
    // Maintenance comes from outside the commands (a plugin, a script): the state record.
    await fx.registry.setState('web', 'web-1', 'maint', 'U0ONCALL');
    const maint = await waitFor(
      'web-1 in MAINT',
      async () => {
        const r = await row('web-1');
        return r && adminModeOf(r) === 'maint' ? r : undefined;
      },
      APPLIED_WITHIN_MS,
    );
    // Maintenance keeps the weight it had; only the admin state changed.
    expect(maint.uweight).toBe(before!.uweight);
    expect(adminModeOf((await row('web-2'))!)).toBe('ready');
    expect([...(await whoAnswers(fx.url, 6)).keys()]).toEqual(['web-2']);
    expect(fx.local.agent?.lastResult).toMatchObject({ ok: true, method: 'runtime' });
    expect(await fx.hap.workerPid()).toBe(worker);
    await waitFor(
      'the rendered file to start web-1 disabled',
      async () => /server web-1 \S+ .*\bdisabled\b/.test(await readFile(fx.hap.config, 'utf8')),
      APPLIED_WITHIN_MS,
    );

    const back = await fx.run('undrain web web-1');
    expect(back).toMatchObject({ ok: true });
    await waitFor(
      'web-1 ready again',
      async () => {
        const r = await row('web-1');
        return r !== undefined && adminModeOf(r) === 'ready';
      },
      APPLIED_WITHIN_MS,
    );
    await waitFor('web-1 answers again', async () => (await whoAnswers(fx.url, 4)).has('web-1'), APPLIED_WITHIN_MS);
    expect(await fx.hap.workerPid()).toBe(worker);
    // The runtime commands go first and the file follows within the same apply: wait for it,
    // as for the weight above (a stress run once read the file in between).
    await waitFor(
      'the rendered file to start web-1 enabled again',
      async () => !/server web-1 \S+ .*\bdisabled\b/.test(await readFile(fx.hap.config, 'utf8')),
      APPLIED_WITHIN_MS,
    );
  });
});
