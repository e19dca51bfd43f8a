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
import type { ContainerEngine } from '../src/adapters/docker/types.js';
import { restartDelayMs } from '../src/orchestrator/death-report.js';
import { startOrchestrator, type RunningOrchestrator } from '../src/orchestrator/orchestrator.js';
import { orchestratorFixture, waitFor, type OrchestratorFixture } from './orchestrator-fixture.js';

/** Serves for two seconds (long enough to pass the launch's settle window under load), then fails. */
const CRASH_CMD = ['/bin/sh', '-c', 'hostname >/www/index.html; /bin/busybox httpd -p 80 -h /www; sleep 2; exit 3'];
/** A restart of `broken`: exits before the launch's settle window ends. */
const DIES_AT_START = ['/bin/sh', '-c', 'exit 4'];
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
    fx = await orchestratorFixture({ services: { crashy: { restart: 'always', cmd: CRASH_CMD }, broken: { restart: 'always', cmd: CRASH_CMD } } });
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
    // `broken`'s restarts die the moment they start (as an app does whose database went away):
    // the real engine, with the restart's command swapped at create.
    const engine: ContainerEngine = Object.create(fx.engine) as ContainerEngine;
    engine.create = (spec) => fx.engine.create(spec.service === 'broken' && /\.r\d+$/.test(spec.name ?? '') ? { ...spec, cmd: DIES_AT_START } : spec);
    orch = startOrchestrator({ ...fx.deps, engine, settings: { ...fx.settings, reconcileIntervalMs: 60_000 } });
    await orch.started;
  });

  afterAll(async () => {
    (stream as unknown as { destroy?: () => void } | undefined)?.destroy?.();
    try {
      await fx?.run('scale crashy 0 --yes');
      await fx?.run('scale broken 0 --yes');
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

  it('keeps restarting, backing off, when the restarts themselves die at start; #ops hears of it once', async () => {
    expect((await fx.run('scale broken 1')).ok).toBe(true);
    const [first] = await fx.containers('broken');
    const instance = first!.instance;
    const created = (n: number) => events.find((e) => e.action === 'create' && e.name === `${instance}.r${n}`);
    // The launch removes a container that died at start, so no die event would restart it:
    // before the fix the loop stopped at .r1 until the next reconcile (here a minute away).
    // Liveness only: 2 s of life, then restarts after 0, 0.5 and 1 s of back-off, ~5 s expected.
    await waitFor('restart 3 of a restart that died at start', () => created(3), 120_000, 100);
    for (let n = 2; n <= 3; n++) {
      // Each failed start counts as a death after 0 ms: the back-off grows as for any crash loop.
      expect(created(n)!.atMs - created(n - 1)!.atMs, `create → create before restart ${n}`).toBeGreaterThanOrEqual(restartDelayMs(n, 0));
    }
    const failed = fx.feed.filter((e) => e.kind === 'container.restart-failed' && e.text.startsWith(`broken/${instance} `));
    expect(failed).toHaveLength(1);
    expect(failed[0]!.text).toContain('retrying with back-off');
    expect(await fx.registry.get('broken', instance)).toBeUndefined();
  }, 180_000);
});
