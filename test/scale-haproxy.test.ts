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

/**
 * WEB_CMD plus a CGI that holds its request open until the test creates /www/release: a
 * session that is open during a drain for exactly as long as the test says, whatever the
 * machine's load (a timed CGI raced the drain timeout on a loaded machine).
 */
const SLOW_WEB_CMD = [
  '/bin/sh',
  '-c',
  [
    'hostname >/www/index.html',
    'mkdir -p /www/cgi-bin',
    'printf "#!/bin/sh\\necho Content-Type: text/plain\\necho\\nwhile [ ! -e /www/release ]; do sleep 0.1; done\\nhostname\\n" >/www/cgi-bin/slow',
    '/bin/busybox chmod +x /www/cgi-bin/slow',
    'trap "exit 0" TERM',
    '/bin/busybox httpd -f -p 80 -h /www & wait',
  ].join('; '),
];
/** Liveness bound for routing to follow a change: ~0.1–0.5 s expected. */
const ROUTED_WITHIN_MS = 15_000;

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
  await waitFor(
    `HAProxy to route to ${wantKeys.join(', ')}`,
    async () => JSON.stringify(await routedTo(want.length)) === JSON.stringify(wantKeys),
    ROUTED_WITHIN_MS,
    50,
  );
}

beforeAll(async () => {
  hap = await startHaproxy();
  const port = await freePort();
  url = `http://127.0.0.1:${port}/`;
  fx = await orchestratorFixture({
    services: { web: { cmd: SLOW_WEB_CMD, listen: `127.0.0.1:${port}` } },
    // The drain must outlast the held session by far: it ends when the test releases it.
    docker: { drainTimeout: '120s' },
    haproxy: { agentId: 'lb-scale', lookup: serverLookup(() => hap.runtime.showStat()) },
  });
  const root = fx.ws.prefixes.services.replace(/\/services$/, '');
  agent = await startAgent(agentConfig(fx.ws.endpoint, root, hap, 'lb-scale', { web: { listen: `127.0.0.1:${port}` } }), fx.registry);
});

/**
 * Lets the held CGI request of container `id` answer. Waits until the file exists: a detached
 * exec returns before its command has run, and a release that silently did not happen would
 * hold the session for the whole drain timeout.
 */
async function release(id: string): Promise<void> {
  const exec = await fx.raw.getContainer(id).exec({ Cmd: ['/bin/busybox', 'touch', '/www/release'] });
  await exec.start({ Detach: true });
  await waitFor('the release file to be written', async () => (await exec.inspect()).ExitCode === 0, ROUTED_WITHIN_MS, 50);
}

afterAll(async () => {
  await agent?.agent.stop();
  await fx?.dispose();
  await hap?.dispose();
});

describe('scale with HAProxy in the loop', () => {
  it('routed traffic follows 0→3→1→0', async () => {
    try {
      await expectRouting([]);
      expect((await fx.run('scale web 3')).ok).toBe(true);
      await expectRouting((await fx.containers()).map((c) => c.id));
      expect((await fx.run('scale web 1')).ok).toBe(true);
      const [last] = await fx.containers();
      await expectRouting([last!.id]);
      expect((await fx.run('scale web 0 --yes')).ok).toBe(true);
      await expectRouting([]);
    } finally {
      await fx.run('scale web 0 --yes');
    }
  }, 120_000);

  it('scale-down drains: a session open on the instance finishes before its container stops', async () => {
    let held: string | undefined;
    // Both settled into values the moment they are made, and awaited on every path (the
    // finally below): a step failing in between must neither leave a scale-down running
    // into the clean-up and the next test, nor surface as an unhandled rejection.
    let slow: Promise<{ status: number; body: string } | Error> | undefined;
    let down: Promise<Awaited<ReturnType<typeof fx.run>> | Error> | undefined;
    const settled = <T>(p: Promise<T>) =>
      p.then(
        (v) => v,
        (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
      );
    try {
      expect((await fx.run('scale web 1')).ok).toBe(true);
      const [c] = await fx.containers();
      held = c!.id;
      await expectRouting([c!.id]);
      const lookup = serverLookup(() => hap.runtime.showStat());
      // Its timeout outlasts the drain's, so a session held too long shows as the drain
      // giving up ("stopping anyway"), not as two timeouts firing together.
      slow = settled(get(`${url}cgi-bin/slow`, { timeoutMs: 150_000 }));
      await waitFor('the slow session to open', async () => ((await lookup('web', c!.instance))?.sessions ?? 0) > 0, ROUTED_WITHIN_MS);
      down = settled(fx.run('scale web 0 --yes'));
      // The scale-down has drained the instance (the agent applied DRAIN) and now waits:
      // the session is still open and the container still runs.
      await waitFor('the drain to be applied', async () => (await lookup('web', c!.instance))?.status === 'DRAIN', ROUTED_WITHIN_MS);
      expect((await lookup('web', c!.instance))?.sessions).toBe(1);
      expect((await fx.containers('web')).map((x) => x.id)).toEqual([c!.id]);
      await release(c!.id);
      held = undefined;
      // The session was answered in full by the drained container, not cut.
      expect(await slow).toEqual({ status: 200, body: c!.id.slice(0, 12) });
      const done = await down;
      if (done instanceof Error) throw done;
      expect(done.ok, done.summary).toBe(true);
      expect(done.progress.some((p) => p.includes('stopping anyway'))).toBe(false);
      expect(await fx.containers('web', true)).toEqual([]);
    } finally {
      // A held session would keep the drain waiting for its whole timeout.
      if (held) await release(held).catch(() => undefined);
      await down;
      await fx.run('scale web 0 --yes');
      await slow;
    }
  }, 240_000);

  it('a killed container is taken out of HAProxy’s rotation', async () => {
    const orch = startOrchestrator(fx.deps);
    try {
      await orch.started;
      expect((await fx.run('scale web 2')).ok).toBe(true);
      const [victim, survivor] = await fx.containers();
      await expectRouting([victim!.id, survivor!.id]);
      await fx.raw.getContainer(victim!.id).kill();
      // A liveness bound only: ~0.1 s is expected, and well below the 30 s reconcile interval.
      await waitFor(
        'HAProxy to drop the dead server',
        async () => {
          const row = (await hap.runtime.showStat()).find((r) => r.backend === 'web' && r.name === victim!.instance);
          return row === undefined || row.status === 'MAINT';
        },
        10_000,
        20,
      );
      await expectRouting([survivor!.id]);
    } finally {
      await orch.close();
      await fx.run('scale web 0 --yes');
    }
  });
});
