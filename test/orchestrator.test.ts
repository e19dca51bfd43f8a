/**
 * Death detection and background reconcile against a real Docker engine and etcd: a
 * killed container leaves the registry within a second and is reported with its exit
 * code; `restart: always` brings the count back; the events stream reconnecting and the
 * periodic round both reconcile.
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
const timings: Record<string, number> = {};

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
  if (Object.keys(timings).length) console.info('orchestrator timings (ms):', timings);
});

const died = (instance: string) => fx.feed.find((e) => e.kind === 'container.died' && e.text.startsWith(`web/${instance} `));

describe('death detection', () => {
  it('docker kill → the key is gone within 1 s and the death is reported with exit code and signal', async () => {
    expect((await fx.run('scale web 2')).ok).toBe(true);
    const [victim, survivor] = await fx.containers('web');
    const killedAt = Date.now();
    await fx.raw.getContainer(victim!.id).kill();
    await waitFor('the key to go', async () => (await fx.ws.instanceValue('web', victim!.instance)) === null, 2000, 5);
    timings.killToDeregistered = Date.now() - killedAt;
    expect(timings.killToDeregistered).toBeLessThanOrEqual(1000);

    const report = await waitFor('the report', () => died(victim!.instance), 2000);
    expect(report.kind).toBe('container.died');
    expect(report.text).toBe(`web/${victim!.instance} deregistered: container died (exit 137, SIGKILL) (container ${victim!.name}, image ${fx.image})`);
    // The dead container is removed; the survivor keeps serving; nothing replaces it (restart: no).
    await waitFor('the dead container to be removed', async () => (await fx.containers('web', true)).length === 1);
    expect((await fx.registrations('web')).map((r) => r.instance)).toEqual([survivor!.instance]);
    expect(await httpGet((await fx.registrations('web'))[0]!.address)).toBe(survivor!.id.slice(0, 12));

    // Desired 2, running 1: the next reconcile says so.
    const report2 = await orch.reconciler.trigger('manual');
    expect(report2.services.find((s) => s.service === 'web')).toMatchObject({ desired: 2, running: 1 });
    expect(fx.feed.some((e) => e.kind === 'reconcile' && e.text.includes('web: desired 2, running 1'))).toBe(true);
    await fx.run('scale web 0 --yes');
  });

  it('a container that exits by itself is reported with its own exit code', async () => {
    expect((await fx.run('scale flaky 1')).ok).toBe(true);
    const [c] = await fx.containers('flaky');
    await waitFor('the key to go', async () => (await fx.ws.instanceValue('flaky', c!.instance)) === null, 4000);
    const report = await waitFor('the report', () => fx.feed.find((e) => e.text.startsWith(`flaky/${c!.instance} deregistered`)), 2000);
    expect(report.text).toContain('container died (exit 7)');
    await fx.run('scale flaky 0 --yes');
  });

  it('a scale-down is not a death: no report, no restart', async () => {
    const before = fx.feed.length;
    expect((await fx.run('scale keep 1')).ok).toBe(true);
    expect((await fx.run('scale keep 0 --yes')).ok).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(fx.feed.slice(before).filter((e) => e.kind.startsWith('container.'))).toEqual([]);
    expect(await fx.containers('keep', true)).toEqual([]);
  });

  it('restart: always brings the count back under the same instance name, and status counts the restart', async () => {
    expect((await fx.run('scale keep 2')).ok).toBe(true);
    const [victim] = await fx.containers('keep');
    const oldAddress = (await fx.registry.get('keep', victim!.instance))!.address;
    const killedAt = Date.now();
    await fx.raw.getContainer(victim!.id).kill();
    await waitFor('the key to go', async () => (await fx.ws.instanceValue('keep', victim!.instance)) === null, 2000, 5);
    timings.killToDeregisteredAlways = Date.now() - killedAt;
    expect(timings.killToDeregisteredAlways).toBeLessThanOrEqual(1000);

    const back = await waitFor('the instance to be registered again', async () => (await fx.registry.get('keep', victim!.instance)) ?? false, 10_000, 50);
    timings.killToReplaced = Date.now() - killedAt;
    expect(back.address).not.toBe(oldAddress);
    const running = await fx.containers('keep');
    expect(running).toHaveLength(2);
    const replacement = running.find((c) => c.instance === victim!.instance)!;
    expect(replacement.name).toBe(`${victim!.instance}.r1`);
    expect(await httpGet(back.address)).toBe(replacement.id.slice(0, 12));
    expect(back.state?.by).toBe(`restart@${fx.owner}`);
    expect(fx.feed.find((e) => e.kind === 'container.died' && e.text.startsWith(`keep/${victim!.instance} `))?.text).toMatch(/restart: always, replacing it$/);
    expect(fx.feed.find((e) => e.kind === 'container.restarted')?.text).toBe(`keep/${victim!.instance} restarted (restart 1): running at ${back.address}`);

    const status = await fx.run('status keep');
    expect(status.tables?.[0]?.table.header).toEqual(['instance', 'address', 'state', 'weight', 'lease', 'changed by', 'since', 'container', 'image', 'uptime', 'restarts']);
    const row = status.tables![0]!.table.rows.find((r) => r[0] === victim!.instance)!;
    expect(row.slice(7)).toEqual(['running', fx.image, expect.stringMatching(/^\d+s$/), '1']);
    const other = status.tables![0]!.table.rows.find((r) => r[0] !== victim!.instance)!;
    expect(other[10]).toBe('0');
    await fx.run('scale keep 0 --yes');
  });
});

describe('background reconcile', () => {
  it('after the events stream reconnects, what changed meanwhile is put right', async () => {
    expect((await fx.run('scale web 1')).ok).toBe(true);
    const [c] = await fx.containers('web');
    const runs = fx.feed.length;
    proxy.cut();
    // Someone deletes the key behind our back while the stream is down.
    await fx.registry.deregister('web', c!.instance);
    const event = await waitFor('a reconcile after the reconnect', () => fx.feed.slice(runs).find((e) => e.kind === 'reconcile' && e.text.startsWith('reconcile (reconnect)')), 5000);
    expect(event.text).toContain(`web/${c!.instance} registered at`);
    expect((await fx.registry.get('web', c!.instance))?.state?.by).toBe(`reconcile@${fx.owner}`);
    await fx.run('scale web 0 --yes');
  });

  it('runs periodically', async () => {
    const periodic = startOrchestrator({ ...fx.deps, settings: { ...fx.settings, reconcileIntervalMs: 300 } });
    try {
      await periodic.started;
      expect((await fx.run('scale web 1')).ok).toBe(true);
      const [c] = await fx.containers('web');
      await fx.registry.deregister('web', c!.instance);
      await waitFor('the periodic round to register it again', async () => (await fx.registry.get('web', c!.instance)) ?? false, 3000, 50);
    } finally {
      await periodic.close();
    }
    await fx.run('scale web 0 --yes');
  });
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
