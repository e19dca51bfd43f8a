// SCRATCH (issue 14 helper): reproduce the original scale-down-drains flake with a trace. Deleted after.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { serverLookup } from '../../src/agent/routing.js';
import { agentConfig, freePort, httpGet as get, startAgent, startHaproxy, whoAnswers, type RunningAgent, type TestHaproxy } from '../helpers/haproxy.js';
import { orchestratorFixture, waitFor, type OrchestratorFixture } from '../orchestrator-fixture.js';

const SLOW_WEB_CMD = ['/bin/sh', '-c', [
  'hostname >/www/index.html', 'mkdir -p /www/cgi-bin',
  'printf "#!/bin/sh\\necho Content-Type: text/plain\\necho\\nsleep 2\\nhostname\\n" >/www/cgi-bin/slow',
  '/bin/busybox chmod +x /www/cgi-bin/slow', 'trap "exit 0" TERM', '/bin/busybox httpd -f -p 80 -h /www & wait'].join('; ')];
let fx: OrchestratorFixture; let hap: TestHaproxy; let agent: RunningAgent; let url: string;
beforeAll(async () => {
  hap = await startHaproxy();
  const port = await freePort();
  url = `http://127.0.0.1:${port}/`;
  fx = await orchestratorFixture({ services: { web: { cmd: SLOW_WEB_CMD, listen: `127.0.0.1:${port}` } }, docker: { drainTimeout: '10s' },
    haproxy: { agentId: 'lb-scale', lookup: serverLookup(() => hap.runtime.showStat()) } });
  const root = fx.ws.prefixes.services.replace(/\/services$/, '');
  agent = await startAgent(agentConfig(fx.ws.endpoint, root, hap, 'lb-scale', { web: { listen: `127.0.0.1:${port}` } }), fx.registry);
}, 120_000);
afterAll(async () => { await agent?.agent.stop(); await fx?.dispose(); await hap?.dispose(); });

for (let i = 0; i < Number(process.env.REPRO_N ?? 6); i++) {
  it(`iteration ${i}`, async () => {
    if (process.env.REPRO_PRE) {
      expect((await fx.run('scale web 3')).ok).toBe(true);
      const three = (await fx.containers()).map((x) => x.id.slice(0, 12)).sort().join();
      await waitFor('routing3', async () => [...(await whoAnswers(url, 9)).keys()].sort().join() === three, 15000, 50);
    }
    expect((await fx.run('scale web 1')).ok).toBe(true);
    const [c] = await fx.containers();
    await waitFor('routing', async () => [...(await whoAnswers(url, 3)).keys()].join() === c!.id.slice(0, 12), 15000, 50);
    const T = Date.now(); const trace: string[] = []; const t = (s: string) => trace.push(`${Date.now() - T} ${s}`);
    const nres = agent.results.length;
    const slow = get(`${url}cgi-bin/slow`, { timeoutMs: 10_000 }).then((r) => { t(`slow done ${JSON.stringify(r)}`); return r; }, (e: Error) => { t(`slow failed ${e.message}`); return e; });
    let polling = true;
    const poller = (async () => { while (polling) { try { const rows = await hap.runtime.showStat(); t(`stat ${rows.filter((r) => r.backend === 'web').map((r) => `${r.name}:${r.status}:${r.scur}`).join(',')} w${await hap.workerPid().catch(() => '?')}`); } catch (e) { t(`stat err ${e}`); } await new Promise((r) => setTimeout(r, 150)); } })();
    try {
      const lookup = serverLookup(() => hap.runtime.showStat());
      await waitFor('session', async () => ((await lookup('web', c!.instance))?.sessions ?? 0) > 0, 5000);
      t('session seen; scaling down');
      const down = await fx.run('scale web 0 --yes');
      t(`scale done ${JSON.stringify(down.progress)}`);
      const r = await slow;
      polling = false; await poller;
      const bad = !(down.ok && !(r instanceof Error) && r.status === 200 && !down.progress.some((p) => p.includes('stopping anyway')));
      if (bad || process.env.REPRO_VERBOSE) console.log(`ITER ${i} ${bad ? 'BAD' : 'ok'}\n${trace.join('\n')}\nRESULTS ${JSON.stringify(agent.results.slice(nres).map((x) => ({ ok: x.ok, m: x.method, ch: x.changes, at: x.at, pend: x.pending, reasons: x.reasons })))}`);
      expect(bad).toBe(false);
    } finally { polling = false; await fx.run('scale web 0 --yes'); }
  }, 60_000);
}
