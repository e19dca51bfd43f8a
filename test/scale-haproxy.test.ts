/**
 * Scale and death detection with HAProxy in the loop: real Docker, real etcd, a real
 * HAProxy driven by the agent. Routed traffic follows every scale step; scale-down waits
 * for a live session on the drained instance instead of cutting it; a killed container
 * leaves HAProxy's rotation (how fast is measured in bench/scale.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverLookup } from '../src/agent/routing.js';
import { startOrchestrator } from '../src/orchestrator/orchestrator.js';
import { agentConfig, freePort, httpGet as get, startAgent, startHaproxy, whoAnswers, type RunningAgent, type TestHaproxy } from './helpers/haproxy.js';
import { orchestratorFixture, waitFor, type OrchestratorFixture } from './orchestrator-fixture.js';

/** WEB_CMD plus a CGI that answers after 2 s: a session that is still open during a drain. */
const SLOW_WEB_CMD = [
  '/bin/sh',
  '-c',
  [
    'hostname >/www/index.html',
    'mkdir -p /www/cgi-bin',
    'printf "#!/bin/sh\\necho Content-Type: text/plain\\necho\\nsleep 2\\nhostname\\n" >/www/cgi-bin/slow',
    '/bin/busybox chmod +x /www/cgi-bin/slow',
    'trap "exit 0" TERM',
    '/bin/busybox httpd -f -p 80 -h /www & wait',
  ].join('; '),
];

let fx: OrchestratorFixture;
let hap: TestHaproxy;
let agent: RunningAgent;
let url: string;

/** Hostnames (= short container IDs) answering 3n fresh requests through HAProxy. */
async function routedTo(n: number): Promise<string[]> {
  return [...(await whoAnswers(url, Math.max(3, 3 * n))).keys()].sort();
}

async function expectRouting(ids: string[]) {
  const want = ids.map((id) => id.slice(0, 12)).sort();
  const wantKeys = want.length ? want : ['503'];
  await waitFor(`HAProxy to route to ${wantKeys.join(', ')}`, async () => JSON.stringify(await routedTo(want.length)) === JSON.stringify(wantKeys), 5000, 50);
}

beforeAll(async () => {
  hap = await startHaproxy();
  const port = await freePort();
  url = `http://127.0.0.1:${port}/`;
  fx = await orchestratorFixture({
    services: { web: { cmd: SLOW_WEB_CMD, listen: `127.0.0.1:${port}` } },
    docker: { drainTimeout: '10s' },
    haproxy: { agentId: 'lb-scale', lookup: serverLookup(() => hap.runtime.showStat()) },
  });
  const root = fx.ws.prefixes.services.replace(/\/services$/, '');
  agent = await startAgent(agentConfig(fx.ws.endpoint, root, hap, 'lb-scale', { web: { listen: `127.0.0.1:${port}` } }), fx.registry);
});

afterAll(async () => {
  await agent?.agent.stop();
  await fx?.dispose();
  await hap?.dispose();
});

describe('scale with HAProxy in the loop', () => {
  it('routed traffic follows 0→3→1→0', async () => {
    await expectRouting([]);
    expect((await fx.run('scale web 3')).ok).toBe(true);
    await expectRouting((await fx.containers()).map((c) => c.id));
    expect((await fx.run('scale web 1')).ok).toBe(true);
    const [last] = await fx.containers();
    await expectRouting([last!.id]);
    expect((await fx.run('scale web 0 --yes')).ok).toBe(true);
    await expectRouting([]);
  });

  it('scale-down drains: a session open on the instance finishes before its container stops', async () => {
    expect((await fx.run('scale web 1')).ok).toBe(true);
    const [c] = await fx.containers();
    await expectRouting([c!.id]);
    const T = Date.now();
    const trace: string[] = [];
    const slow = get(`${url}cgi-bin/slow`, { timeoutMs: 10_000 });
    slow.then((r) => trace.push(`${Date.now() - T} slow done ${JSON.stringify(r)}`), (e) => trace.push(`${Date.now() - T} slow failed ${e}`));
    let polling = true;
    void (async () => { while (polling) { try { const rows = await hap.runtime.showStat(); trace.push(`${Date.now() - T} stat ${rows.filter((r) => r.backend === 'web').map((r) => `${r.name}:${r.status}:${r.scur}`).join(',')} pid ${await hap.workerPid().catch(() => '?')}`); } catch (e) { trace.push(`${Date.now() - T} stat err ${e}`); } await new Promise((r) => setTimeout(r, 250)); } })();
    try {
    const lookup = serverLookup(() => hap.runtime.showStat());
    await waitFor('the slow session to open', async () => ((await lookup('web', c!.instance))?.sessions ?? 0) > 0, 3000);
    const t0 = Date.now();
    const down = await fx.run('scale web 0 --yes');
    trace.push(`${Date.now() - T} scale done ${JSON.stringify(down.progress)}`);
    const waited = Date.now() - t0;
    expect(down.ok, down.summary).toBe(true);
    // The session was answered in full by the drained container, not cut.
    expect(await slow).toEqual({ status: 200, body: c!.id.slice(0, 12) });
    expect(waited).toBeGreaterThan(800);
    expect(await fx.containers('web', true)).toEqual([]);
    } finally {
      polling = false;
      console.log('TRACE ' + new Date(T).toISOString() + '\n' + trace.join('\n') + '\nRESULTS ' + JSON.stringify(agent.results.slice(-8).map((r: any) => ({ ok: r.ok, method: r.method, changes: r.changes, at: r.at, errors: r.errors }))));
    }
  });

  it('a killed container is taken out of HAProxy’s rotation', async () => {
    const orch = startOrchestrator(fx.deps);
    try {
      await orch.started;
      expect((await fx.run('scale web 2')).ok).toBe(true);
      const [victim, survivor] = await fx.containers();
      await expectRouting([victim!.id, survivor!.id]);
      await fx.raw.getContainer(victim!.id).kill();
      // A liveness bound only: ~0.1 s is expected, and well below the 30 s reconcile interval.
      await waitFor('HAProxy to drop the dead server', async () => {
        const row = (await hap.runtime.showStat()).find((r) => r.backend === 'web' && r.name === victim!.instance);
        return row === undefined || row.status === 'MAINT';
      }, 10_000, 20);
      await expectRouting([survivor!.id]);
    } finally {
      await orch.close();
      await fx.run('scale web 0 --yes');
    }
  });
});
