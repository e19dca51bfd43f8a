/**
 * Death detection and background reconcile against a real Docker engine and etcd: a
 * killed container leaves the registry from the events stream (not the 60 s reconcile) and
 * is reported with its exit code; `restart: always` brings the count back; the events
 * stream reconnecting and the periodic round both reconcile. How fast a death is seen is
 * measured in bench/scale.ts; here only liveness bounds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDockerEngine } from '../src/adapters/docker/index.js';
import { deathReason, restartDelayMs, signalName } from '../src/orchestrator/death-report.js';
import { startOrchestrator, type RunningOrchestrator } from '../src/orchestrator/orchestrator.js';
import { startSocketProxy, type SocketProxy } from './helpers/docker.js';
import { httpGet, orchestratorFixture, silent, waitFor, type OrchestratorFixture } from './orchestrator-fixture.js';

let fx: OrchestratorFixture;
let orch: RunningOrchestrator;
let proxy: SocketProxy;
/**
 * How long a death may take to reach the registry here: far beyond its expected ~0.1 s (a
 * loaded machine must not fail the suite) and far below the 60 s reconcile interval, so
 * only the events stream can have done it.
 */
const DEATH_SEEN_MS = 10_000;

beforeAll(async () => {
  fx = await orchestratorFixture({
    services: {
      web: {},
      keep: { restart: 'always' },
      flaky: { cmd: ['/bin/sh', '-c', 'hostname >/www/index.html; /bin/busybox httpd -p 80 -h /www; sleep 1; exit 7'] },
    },
  });
  // The watcher's engine goes through a proxy the test can cut; commands use the engine directly.
  proxy = await startSocketProxy(fx.host);
  const engine = createDockerEngine({ host: proxy.host, log: silent });
  orch = startOrchestrator({ ...fx.deps, engine, settings: { ...fx.settings, reconcileIntervalMs: 60_000 } });
  await orch.started;
});

afterAll(async () => {
  await orch?.close();
  await proxy?.close();
  await fx?.dispose();
});

/** Runs a test body, then scales the services back to 0 whatever happened, so one failure stays one. */
async function thenScaleToZero(services: string | string[], body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } finally {
    for (const s of [services].flat()) await fx.run(`scale ${s} 0 --yes`);
  }
}

const died = (instance: string) => fx.notices.find((e) => e.kind === 'container.died' && e.text.startsWith(`web/${instance} `));

describe('death detection', () => {
  it('docker kill → the key goes (events stream, not reconcile) and the death is reported with exit code and signal', () =>
    thenScaleToZero('web', async () => {
      const before = fx.feed.length;
      expect((await fx.run('scale web 2')).ok).toBe(true);
      const [victim, survivor] = await fx.containers('web');
      await fx.raw.getContainer(victim!.id).kill();
      await waitFor('the key to go', async () => (await fx.ws.instanceValue('web', victim!.instance)) === null, DEATH_SEEN_MS);

      const report = await waitFor('the report', () => died(victim!.instance), DEATH_SEEN_MS);
      expect(report.kind).toBe('container.died');
      expect(report.text).toBe(`web/${victim!.instance} deregistered: container died (exit 137, SIGKILL) (container ${victim!.name}, image ${fx.image})`);
      // The dead container is removed; the survivor keeps serving; nothing replaces it (restart: no).
      await waitFor('the dead container to be removed', async () => (await fx.containers('web', true)).length === 1, DEATH_SEEN_MS);
      expect((await fx.registrations('web')).map((r) => r.instance)).toEqual([survivor!.instance]);
      expect(await httpGet((await fx.registrations('web'))[0]!.address)).toBe(survivor!.id.slice(0, 12));

      // Desired 2, running 1: the next reconcile says so.
      const report2 = await orch.reconciler.trigger('manual');
      expect(report2.services.find((s) => s.service === 'web')).toMatchObject({ desired: 2, running: 1 });
      expect(fx.feed.slice(before).some((e) => e.kind === 'reconcile' && e.text.includes('web: desired 2, running 1'))).toBe(true);
    }));

  it('a container that exits by itself is reported with its own exit code', () =>
    thenScaleToZero('flaky', async () => {
      expect((await fx.run('scale flaky 1')).ok).toBe(true);
      const [c] = await fx.containers('flaky');
      await waitFor('the key to go', async () => (await fx.ws.instanceValue('flaky', c!.instance)) === null, DEATH_SEEN_MS);
      const report = await waitFor('the report', () => fx.notices.find((e) => e.text.startsWith(`flaky/${c!.instance} deregistered`)), DEATH_SEEN_MS);
      expect(report.text).toContain('container died (exit 7)');
    }));

  it('a scale-down is not a death: no report, no restart', () =>
    thenScaleToZero(['keep', 'web'], async () => {
      const before = { feed: fx.feed.length, notices: fx.notices.length };
      expect((await fx.run('scale keep 1')).ok).toBe(true);
      expect((await fx.run('scale web 1')).ok).toBe(true);
      const [sentinel] = await fx.containers('web');
      expect((await fx.run('scale keep 0 --yes')).ok).toBe(true);
      // A positive sign before the negative check: Docker's events reach the watcher in order,
      // and the scale-down's die needs less handling than a death (nothing to deregister),
      // so once a death that came after it is reported, that die has been handled too.
      await fx.raw.getContainer(sentinel!.id).kill();
      await waitFor('the later death to be reported', () => died(sentinel!.instance), DEATH_SEEN_MS);
      const news = [...fx.feed.slice(before.feed), ...fx.notices.slice(before.notices)];
      expect(news.filter((e) => e.kind.startsWith('container.') && e.text.startsWith('keep/'))).toEqual([]);
      expect(await fx.containers('keep', true)).toEqual([]);
    }));

  it('restart: always brings the count back under the same instance name, and status counts the restart', () =>
    thenScaleToZero('keep', async () => {
      expect((await fx.run('scale keep 2')).ok).toBe(true);
      const [victim] = await fx.containers('keep');
      const oldAddress = (await fx.registry.get('keep', victim!.instance))!.address;
      await fx.raw.getContainer(victim!.id).kill();
      await waitFor('the key to go', async () => (await fx.ws.instanceValue('keep', victim!.instance)) === null, DEATH_SEEN_MS);

      const back = await waitFor('the instance to be registered again', async () => (await fx.registry.get('keep', victim!.instance)) ?? false, 20_000, 50);
      expect(back.address).not.toBe(oldAddress);
      const running = await fx.containers('keep');
      expect(running).toHaveLength(2);
      const replacement = running.find((c) => c.instance === victim!.instance)!;
      expect(replacement.name).toBe(`${victim!.instance}.r1`);
      expect(await httpGet(back.address)).toBe(replacement.id.slice(0, 12));
      expect(back.state?.by).toBe(`restart@${fx.owner}`);
      expect(fx.notices.find((e) => e.kind === 'container.died' && e.text.startsWith(`keep/${victim!.instance} `))?.text).toMatch(
        /restart: always, replacing it$/,
      );
      expect(fx.notices.find((e) => e.kind === 'container.restarted')?.text).toBe(`keep/${victim!.instance} restarted (restart 1): running at ${back.address}`);

      const status = await fx.run('status keep');
      expect(status.tables?.[0]?.table.header).toEqual([
        'instance',
        'address',
        'state',
        'weight',
        'lease',
        'changed by',
        'since',
        'container',
        'image',
        'uptime',
        'restarts',
      ]);
      const row = status.tables![0]!.table.rows.find((r) => r[0] === victim!.instance)!;
      expect(row.slice(7)).toEqual(['running', fx.image, expect.stringMatching(/^\d+s$/), '1']);
      const other = status.tables![0]!.table.rows.find((r) => r[0] !== victim!.instance)!;
      expect(other[10]).toBe('0');
    }));
});

describe('background reconcile', () => {
  it('after the events stream reconnects, what changed meanwhile is put right', () =>
    thenScaleToZero('web', async () => {
      expect((await fx.run('scale web 1')).ok).toBe(true);
      const [c] = await fx.containers('web');
      const runs = fx.feed.length;
      proxy.cut();
      // Someone deletes the key behind our back while the stream is down.
      await fx.registry.deregister('web', c!.instance);
      const event = await waitFor(
        'a reconcile after the reconnect',
        () => fx.feed.slice(runs).find((e) => e.kind === 'reconcile' && e.text.startsWith('reconcile (reconnect)')),
        20_000,
      );
      expect(event.text).toContain(`web/${c!.instance} registered at`);
      expect((await fx.registry.get('web', c!.instance))?.state?.by).toBe(`reconcile@${fx.owner}`);
    }));

  it('runs periodically', () =>
    thenScaleToZero('web', async () => {
      const periodic = startOrchestrator({ ...fx.deps, settings: { ...fx.settings, reconcileIntervalMs: 300 } });
      try {
        await periodic.started;
        expect((await fx.run('scale web 1')).ok).toBe(true);
        const [c] = await fx.containers('web');
        await fx.registry.deregister('web', c!.instance);
        await waitFor('the periodic round to register it again', async () => (await fx.registry.get('web', c!.instance)) ?? false, 15_000, 50);
      } finally {
        await periodic.close();
      }
    }));
});

describe('death reports', () => {
  it('words exit codes, OOM and signals', () => {
    expect(deathReason({ exitCode: 137, oom: true, signal: undefined })).toBe('container died (exit 137, OOM)');
    expect(deathReason({ exitCode: 137, oom: false, signal: '9' })).toBe('container died (exit 137, SIGKILL)');
    expect(deathReason({ exitCode: 1, oom: false, signal: undefined })).toBe('container died (exit 1)');
    expect(deathReason({ exitCode: undefined, oom: false, signal: 'TERM' })).toBe('container died (exit code unknown, SIGTERM)');
    expect(signalName('SIGUSR1')).toBe('SIGUSR1');
  });

  it('backs off only for crash loops', () => {
    expect(restartDelayMs(1, 500)).toBe(0);
    expect(restartDelayMs(2, 500)).toBe(500);
    expect(restartDelayMs(5, 500)).toBe(4000);
    expect(restartDelayMs(20, 500)).toBe(30_000);
    expect(restartDelayMs(20, 60_000)).toBe(0);
  });
});
