/**
 * `restart: always` on a container that keeps dying, on a real Docker engine: each restart
 * comes back under the same instance name (`<instance>.rN`), and the pause between a death
 * and the next start grows — 500 ms before the 2nd restart, doubling each time (capped at
 * 30 s) — instead of a tight loop hammering the engine. The delays are read from the
 * engine's own event times (die → create), and checked as lower bounds only: load can make
 * them longer, never shorter.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABEL_OWNER } from '../src/adapters/docker/index.js';
import { restartDelayMs } from '../src/orchestrator/death-report.js';
import { startOrchestrator, type RunningOrchestrator } from '../src/orchestrator/orchestrator.js';
import { orchestratorFixture, waitFor, type OrchestratorFixture } from './orchestrator-fixture.js';

/** Serves for two seconds (long enough to pass the launch's settle window under load), then fails. */
const CRASH_CMD = ['/bin/sh', '-c', 'hostname >/www/index.html; /bin/busybox httpd -p 80 -h /www; sleep 2; exit 3'];
/** Restarts watched: the 2nd, 3rd and 4th wait 0.5, 1 and 2 s. */
const LAST_RESTART = 4;

interface EngineEvent {
  status?: string;
  Action?: string;
  timeNano?: number;
  Actor?: { Attributes?: Record<string, string> };
}

describe('crash-loop back-off (real dockerd + etcd)', () => {
  let fx: OrchestratorFixture;
  let orch: RunningOrchestrator | undefined;
  const events: { action: string; name: string; atMs: number }[] = [];
  let stream: NodeJS.ReadableStream | undefined;

  beforeAll(async () => {
    fx = await orchestratorFixture({ services: { crashy: { restart: 'always', cmd: CRASH_CMD } } });
    // The engine's clock and event order, not the test's: what happened when, per container name.
    stream = (await fx.raw.getEvents({
      filters: { type: ['container'], event: ['create', 'die'], label: [`${LABEL_OWNER}=${fx.owner}`] },
    })) as NodeJS.ReadableStream;
    let buffered = '';
    stream.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (!line) continue;
        const e = JSON.parse(line) as EngineEvent;
        const name = e.Actor?.Attributes?.name;
        if (name && e.timeNano !== undefined) events.push({ action: e.Action ?? e.status ?? '', name, atMs: e.timeNano / 1e6 });
      }
    });
    orch = startOrchestrator({ ...fx.deps, settings: { ...fx.settings, reconcileIntervalMs: 60_000 } });
    await orch.started;
  });

  afterAll(async () => {
    (stream as unknown as { destroy?: () => void } | undefined)?.destroy?.();
    try {
      await fx?.run('scale crashy 0 --yes');
    } finally {
      await orch?.close();
      await fx?.dispose();
    }
  });

  it('restarts under the same instance name with growing delays between a death and the next start', async () => {
    expect((await fx.run('scale crashy 1')).ok).toBe(true);
    const [first] = await fx.containers('crashy');
    const instance = first!.instance;
    const created = (n: number) => events.find((e) => e.action === 'create' && e.name === `${instance}.r${n}`);
    const died = (name: string) => events.find((e) => e.action === 'die' && e.name === name);
    // Liveness only: 4 runs of 2 s plus 3.5 s of back-off, ~12 s expected.
    await waitFor(`restart ${LAST_RESTART}`, () => created(LAST_RESTART), 120_000, 100);

    // The first restart follows at once; then 0.5 s, 1 s, 2 s: the waits grow with the count.
    expect([1, 2, 3, 4].map((n) => restartDelayMs(n, 2000))).toEqual([0, 500, 1000, 2000]);
    for (let n = 2; n <= LAST_RESTART; n++) {
      const before = died(`${instance}.r${n - 1}`);
      expect(before, `the death of run ${n - 1}`).toBeDefined();
      // Each run lived ~2 s (< 10 s): a crash loop, so the back-off applies in full.
      expect(created(n)!.atMs - before!.atMs, `die → create before restart ${n}`).toBeGreaterThanOrEqual(restartDelayMs(n, 2000));
    }
    // Every restart is the same instance, registered again at its new container.
    const reg = await waitFor('the instance registered', async () => (await fx.registry.get('crashy', instance)) ?? false, 60_000, 50);
    expect(reg.state?.by).toBe(`restart@${fx.owner}`);
  }, 180_000);
});
