/**
 * `switchyard watch` against a real dockerd, etcd and (for the routed case) HAProxy driven
 * by the agent: labelled containers are registered while they run, on the watcher's own
 * lease; a killed watcher's registrations expire by themselves and the feed says whose they
 * were; a restarted one puts right what changed while it was down; two watchers never touch
 * each other's keys. Timing bounds are liveness bounds only (bench/watch.ts measures).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Dockerode from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dockerodeOptions } from '../src/adapters/docker/host.js';
import { interpretEvents } from '../src/adapters/etcd/feed-events.js';
import type { EtcdRegistry } from '../src/adapters/etcd/registry.js';
import type { WatchHandle } from '../src/core/registry.js';
import { decodeWatcherRecord } from '../src/core/watcher-record.js';
import { changeLine, plainStyle } from '../src/feed/format.js';
import type { ContainerEvent } from '../src/watch/docker-events.js';
import { Watcher } from '../src/watch/watcher.js';
import { routerOver, shellCaller } from './helpers/core.js';
import { buildBusyboxImage, sharedDockerHost } from './helpers/docker.js';
import { sharedEtcdEndpoint, uniquePrefix } from './helpers/etcd.js';
import {
  agentConfig,
  freePort,
  registryAt,
  startAgent,
  startHaproxy,
  testLog,
  waitFor,
  whoAnswers,
  type RunningAgent,
  type TestHaproxy,
} from './helpers/haproxy.js';

const BIN = fileURLToPath(new URL('../bin/switchyard.js', import.meta.url));
const IMAGE = 'switchyard-test/watch:1';
const HEALTH_IMAGE = 'switchyard-test/watch-health:1';
/** Every container of this file carries it, so cleanup finds them all. */
const TEST_LABEL = `switchyard.test=watch-${process.pid}`;
/** Answers with its hostname (the short container ID), so a test can see who HAProxy routes to. */
const WEB_CMD = ['/bin/sh', '-c', 'hostname >/www/index.html; exec /bin/busybox httpd -f -p 80 -h /www'];

let host: string;
let docker: Dockerode;
let endpoint: string;

interface Started {
  id: string;
  short: string;
  port: number;
}

async function run(labels: Record<string, string>, image = IMAGE): Promise<Started> {
  const [k, v] = TEST_LABEL.split('=') as [string, string];
  const c = await docker.createContainer({
    Image: image,
    Cmd: WEB_CMD,
    Labels: { ...labels, [k]: v },
    ExposedPorts: { '80/tcp': {} },
    HostConfig: { PortBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] } },
  });
  await c.start();
  const info = await c.inspect();
  const port = Number(info.NetworkSettings.Ports['80/tcp']?.[0]?.HostPort);
  return { id: c.id, short: c.id.slice(0, 12), port };
}

const kill = (c: Started) => docker.getContainer(c.id).kill();

/** Feed lines, as #ops would word them, for every change under the registry's prefixes. */
async function feedOf(registry: EtcdRegistry): Promise<{ lines: string[]; handle: WatchHandle }> {
  const lines: string[] = [];
  const handle = await registry.watchAttributed({
    onEvents: (events) => lines.push(...interpretEvents(registry.layout, events).changes.map((c) => changeLine(c, plainStyle))),
    onResync: () => undefined,
  });
  return { lines, handle };
}

beforeAll(async () => {
  host = await sharedDockerHost();
  docker = new Dockerode(dockerodeOptions(host));
  endpoint = sharedEtcdEndpoint();
  await buildBusyboxImage(host, IMAGE);
  // Healthy only while /tmp/ok exists.
  await buildBusyboxImage(host, HEALTH_IMAGE, { healthcheck: '--interval=200ms --timeout=1s --retries=1 CMD ["/bin/busybox","test","-f","/tmp/ok"]' });
});

afterAll(async () => {
  if (!docker) return;
  const ours = await docker.listContainers({ all: true, filters: { label: [TEST_LABEL] } });
  await Promise.all(
    ours.map((c) =>
      docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined),
    ),
  );
  await Promise.all(
    [IMAGE, HEALTH_IMAGE].map((i) =>
      docker
        .getImage(i)
        .remove()
        .catch(() => undefined),
    ),
  );
});

describe('watch in-process: registration follows the container', { timeout: 60_000 }, () => {
  let registry: EtcdRegistry;
  let watcherRegistry: EtcdRegistry;
  let watcher: Watcher;
  let hap: TestHaproxy;
  let agent: RunningAgent;
  let url: string;
  let feed: { lines: string[]; handle: WatchHandle };
  const applied: ContainerEvent[] = [];

  beforeAll(async () => {
    const prefix = uniquePrefix('watch');
    registry = registryAt(endpoint, prefix);
    watcherRegistry = registryAt(endpoint, prefix);
    hap = await startHaproxy();
    const port = await freePort();
    url = `http://127.0.0.1:${port}/`;
    agent = await startAgent(agentConfig(endpoint, prefix, hap, 'lb-watch', { web: { listen: `127.0.0.1:${port}` } }), registry);
    feed = await feedOf(registry);
    // No periodic reconcile here: each change must come from its Docker event (and say so).
    watcher = new Watcher({
      registry: watcherRegistry,
      docker,
      host: 'h1',
      advertise: '127.0.0.1',
      ttlMs: 2000,
      log: testLog,
      reconcileEveryMs: 600_000,
      onApplied: (e) => applied.push(e),
    });
    await watcher.start();
  });

  afterAll(async () => {
    await watcher?.stop();
    await feed?.handle.close();
    await agent?.agent.stop();
    await watcherRegistry?.close();
    await registry?.close();
    await hap?.dispose();
  });

  it('docker run -l switchyard.register=web → registered on the watcher lease and routed; docker kill → gone and out of rotation', async () => {
    const c = await run({ 'switchyard.register': 'web', 'switchyard.instance': 'web-a' });
    const inst = await waitFor('web/web-a registered', async () => (await registry.get('web', 'web-a')) ?? false, 10_000, 50);
    expect(inst.address).toBe(`127.0.0.1:${c.port}`);
    expect(inst.lease).toBe(watcher.lease);
    expect(inst.state).toMatchObject({ state: 'ready', by: 'watch@h1' });
    await waitFor('HAProxy to route to the container', async () => (await whoAnswers(url, 3)).has(c.short), 10_000, 50);

    await kill(c);
    await waitFor('web/web-a deregistered', async () => (await registry.get('web', 'web-a')) === undefined, 10_000, 50);
    await waitFor('out of rotation', async () => !(await whoAnswers(url, 3)).has(c.short), 10_000, 50);
    await waitFor(
      'the feed line',
      () => feed.lines.some((l) => l === `web/web-a removed (was at 127.0.0.1:${c.port}) — by watch@h1 (container killed)`),
      10_000,
    );
  });

  it('docker pause → maint; unpause → ready again', async () => {
    const c = await run({ 'switchyard.register': 'pz', 'switchyard.instance': 'pz-1', 'switchyard.weight': '40' });
    await waitFor('pz/pz-1 ready', async () => (await registry.get('pz', 'pz-1'))?.state?.state === 'ready', 10_000, 50);
    expect((await registry.get('pz', 'pz-1'))?.state?.weight).toBe(40);
    await docker.getContainer(c.id).pause();
    await waitFor('pz/pz-1 in maint', async () => (await registry.get('pz', 'pz-1'))?.state?.state === 'maint', 10_000, 50);
    await docker.getContainer(c.id).unpause();
    await waitFor('pz/pz-1 back to ready', async () => (await registry.get('pz', 'pz-1'))?.state?.state === 'ready', 10_000, 50);
    await waitFor(
      'the feed line',
      () => feed.lines.some((l) => l.startsWith('pz/pz-1 in maintenance (was ready) — by watch@h1 (container paused)')),
      10_000,
    ).catch((e) => {
      throw new Error(`${e}\n${feed.lines.join('\n')}`);
    });
    await docker.getContainer(c.id).remove({ force: true });
  });

  it('a HEALTHCHECK container is registered only once healthy, and put in maint when unhealthy', async () => {
    const c = await run({ 'switchyard.register': 'hc', 'switchyard.instance': 'hc-1' }, HEALTH_IMAGE);
    // Positive sign first: the watcher has applied the container's start event.
    await waitFor('the start event applied', () => applied.some((e) => e.id === c.id && e.action === 'start'), 10_000, 50);
    const health = (await docker.getContainer(c.id).inspect()).State.Health?.Status;
    expect(health).not.toBe('healthy');
    expect(await registry.get('hc', 'hc-1')).toBeUndefined();

    const exec = async (cmd: string[]) => {
      const e = await docker.getContainer(c.id).exec({ Cmd: cmd });
      const stream = await e.start({});
      await new Promise((r) => stream.on('end', r).resume());
    };
    await exec(['/bin/busybox', 'touch', '/tmp/ok']);
    await waitFor('hc/hc-1 registered once healthy', async () => (await registry.get('hc', 'hc-1'))?.state?.state === 'ready', 10_000, 50);
    await exec(['/bin/busybox', 'rm', '/tmp/ok']);
    await waitFor('hc/hc-1 in maint once unhealthy', async () => (await registry.get('hc', 'hc-1'))?.state?.state === 'maint', 10_000, 50);
    await docker.getContainer(c.id).remove({ force: true });
  });

  it('never registers an unlabelled container, and leaves one with our owner label to the orchestrator', async () => {
    await run({ 'switchyard.instance': 'quiet-1' });
    const owned = await run({ 'switchyard.register': 'quiet', 'switchyard.instance': 'quiet-2', 'switchyard.owner': 'sy-test', 'switchyard.service': 'quiet' });
    // Positive sign: the owned container's start event was applied, and a labelled container
    // started after both is registered (events are applied in order).
    await run({ 'switchyard.register': 'quiet', 'switchyard.instance': 'quiet-3' });
    await waitFor('quiet/quiet-3 registered', async () => (await registry.get('quiet', 'quiet-3')) ?? false, 10_000, 50);
    expect(applied.some((e) => e.id === owned.id && e.action === 'start')).toBe(true);
    const listed = (await registry.list('quiet')).instances.map((i) => i.instance);
    expect(listed).toEqual(['quiet-3']);
  });
});

describe('two watchers and hand-made registrations', { timeout: 60_000 }, () => {
  let registry: EtcdRegistry;
  const watchers: Watcher[] = [];
  const registries: EtcdRegistry[] = [];

  const startWatcher = async (name: string, advertise: string) => {
    const r = registryAt(endpoint, prefix);
    registries.push(r);
    const w = new Watcher({ registry: r, docker, host: name, advertise, ttlMs: 2000, log: testLog, reconcileEveryMs: 1000 });
    watchers.push(w);
    await w.start();
    return w;
  };
  let prefix: string;

  beforeAll(() => {
    prefix = uniquePrefix('watch2');
    registry = registryAt(endpoint, prefix);
  });
  afterAll(async () => {
    for (const w of watchers) await w.stop();
    for (const r of registries) await r.close();
    await registry?.close();
  });

  it('a second watcher leaves the first one’s keys alone, and stopping it removes only its own', async () => {
    const a = await startWatcher('ha', '127.0.0.1');
    const c = await run({ 'switchyard.register': 'two', 'switchyard.instance': 'two-1' });
    await waitFor('two/two-1 registered by ha', async () => (await registry.get('two', 'two-1'))?.lease === a.lease, 10_000, 50);
    // Registered by hand, no lease: a container claiming the same name must not take it over.
    await registry.register('two', 'manual', '10.9.9.9:1', { by: 'U1' });
    await run({ 'switchyard.register': 'two', 'switchyard.instance': 'manual' });

    const b = await startWatcher('hb', '127.0.0.2');
    const seen = [a.reconciles, b.reconciles];
    await waitFor('a reconcile by each since', () => a.reconciles > seen[0]! && b.reconciles > seen[1]!, 10_000, 50);
    expect((await registry.get('two', 'two-1'))?.address).toBe(`127.0.0.1:${c.port}`);
    expect((await registry.get('two', 'two-1'))?.lease).toBe(a.lease);
    expect((await registry.get('two', 'manual'))?.address).toBe('10.9.9.9:1');

    // status: the host per instance (in the lease column) and each watcher's last reconcile.
    const reply = await routerOver({ registry }).dispatch({ text: 'status two', caller: shellCaller() });
    const instances = reply.tables?.find((t) => t.title?.startsWith('two:'))?.table;
    expect(instances?.rows.map((r) => [r[0], r[4]])).toEqual([
      ['manual', '-'],
      ['two-1', 'watch@ha'],
    ]);
    const listed = reply.tables?.find((t) => t.title?.startsWith('watchers'))?.table;
    expect(listed?.header).toEqual(['host', 'advertise', 'instances', 'last reconcile']);
    expect(listed?.rows.map((r) => [r[0], r[1], r[3]?.endsWith('ago')])).toEqual([
      ['ha', '127.0.0.1', true],
      ['hb', '127.0.0.2', true],
    ]);

    await b.stop();
    const raw = registry.client;
    await waitFor("hb's record gone", async () => (await raw.get(registry.layout.watcherKey('hb')).string()) === null, 10_000, 50);
    expect((await registry.get('two', 'two-1'))?.lease).toBe(a.lease);
    expect(decodeWatcherRecord((await raw.get(registry.layout.watcherKey('ha')).string()) ?? '')?.lease).toBe(a.lease);

    await kill(c);
    await waitFor('two/two-1 deregistered by ha', async () => (await registry.get('two', 'two-1')) === undefined, 10_000, 50);
    expect((await registry.get('two', 'manual'))?.address).toBe('10.9.9.9:1');
  });
});

describe('switchyard watch as a process', { timeout: 120_000 }, () => {
  let dir: string;
  let prefix: string;
  let registry: EtcdRegistry;
  let feed: { lines: string[]; handle: WatchHandle };
  let child: ChildProcess | undefined;
  let stderr = '';

  const config = async (ttl: string) => {
    const path = join(dir, `switchyard-${ttl}.yaml`);
    await writeFile(
      path,
      `etcd:\n  endpoints: [${endpoint}]\nregistry:\n  prefix: ${prefix}/services\n  switchyardPrefix: ${prefix}/switchyard\ndocker:\n  host: ${host}\nwatch:\n  advertise: 127.0.0.1\n  ttl: ${ttl}\n  host: h1\n`,
    );
    return path;
  };
  const startWatch = (path: string) => {
    stderr = '';
    const p = spawn(process.execPath, [BIN, 'watch', '--config', path], { env: { ...process.env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
    p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    p.stdout!.on('data', (d: Buffer) => (stderr += d.toString()));
    child = p;
    return p;
  };
  const exited = (p: ChildProcess) =>
    new Promise<number | null>((resolve) => (p.exitCode !== null ? resolve(p.exitCode) : p.once('exit', (code) => resolve(code))));
  const watcherLease = async () => decodeWatcherRecord((await registry.client.get(registry.layout.watcherKey('h1')).string()) ?? '')?.lease;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchyard-watch-'));
    prefix = uniquePrefix('watchp');
    registry = registryAt(endpoint, prefix);
    feed = await feedOf(registry);
  });
  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited(child);
    }
  });
  afterAll(async () => {
    await feed?.handle.close();
    await registry?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('refuses to start without watch.advertise: exit 1, the reason on stderr, nothing registered', async () => {
    const path = join(dir, 'no-watch.yaml');
    await writeFile(path, `etcd:\n  endpoints: [${endpoint}]\nregistry:\n  prefix: ${prefix}/services\n  switchyardPrefix: ${prefix}/switchyard\n`);
    const p = startWatch(path);
    expect(await exited(p)).toBe(1);
    expect(stderr).toContain('switchyard watch needs a watch: section with advertise:');
    expect(await registry.client.get(registry.layout.watcherKey('h1')).string()).toBeNull();
  });

  it('SIGKILL → its registrations expire within the TTL, reported as its host’s; a restart puts right what changed meanwhile', async () => {
    const ttl2 = await config('2s');
    const c1 = await run({ 'switchyard.register': 'proc', 'switchyard.instance': 'p1' });
    const c2 = await run({ 'switchyard.register': 'proc', 'switchyard.instance': 'p2' });
    let p = startWatch(ttl2);
    await waitFor('p1 and p2 registered', async () => (await registry.list('proc')).instances.length === 2, 30_000, 100).catch((e) => {
      throw new Error(`${e}\n${stderr}`);
    });

    p.kill('SIGKILL');
    const t0 = Date.now();
    await exited(p);
    // While it is down: p1 dies, p3 starts.
    await kill(c1);
    const c3 = await run({ 'switchyard.register': 'proc', 'switchyard.instance': 'p3' });
    // TTL 2 s: 10 s is the liveness bound (bench/watch.ts measures the figure).
    await waitFor('its keys gone by lease expiry', async () => (await registry.list('proc')).instances.length === 0, 10_000, 50);
    expect(Date.now() - t0).toBeLessThan(10_000);
    await waitFor(
      'the feed to say whose keys expired',
      () => feed.lines.some((l) => l === `proc/p2 removed (was at 127.0.0.1:${c2.port}) — (host h1's watcher is gone)`),
      5000,
    );

    p = startWatch(ttl2);
    await waitFor(
      'p2 and p3 registered again, p1 not',
      async () =>
        (await registry.list('proc')).instances
          .map((i) => i.instance)
          .sort()
          .join() === 'p2,p3',
      30_000,
      100,
    );
    expect((await registry.get('proc', 'p3'))?.address).toBe(`127.0.0.1:${c3.port}`);
    p.kill('SIGKILL');
    await exited(p);
  });

  it('a restart within the TTL takes over its keys: gone containers removed, running ones kept; SIGTERM removes all at once', async () => {
    const ttl30 = await config('30s');
    const c4 = await run({ 'switchyard.register': 'keep', 'switchyard.instance': 'k4' });
    const c5 = await run({ 'switchyard.register': 'keep', 'switchyard.instance': 'k5' });
    let p = startWatch(ttl30);
    await waitFor('k4 and k5 registered', async () => (await registry.list('keep')).instances.length === 2, 30_000, 100);
    const oldLease = (await registry.get('keep', 'k4'))?.lease;
    expect(oldLease).toBeDefined();
    await waitFor('its record on the same lease', async () => (await watcherLease()) === oldLease, 10_000, 50);
    p.kill('SIGKILL');
    await exited(p);
    await kill(c5);
    const c6 = await run({ 'switchyard.register': 'keep', 'switchyard.instance': 'k6' });

    p = startWatch(ttl30);
    // The record goes on the new lease first, before its first reconcile.
    await waitFor('a record on a new lease', async () => ((await watcherLease()) ?? oldLease) !== oldLease, 30_000, 100);
    const newLease = await watcherLease();
    await waitFor(
      'k4 and k6 registered, k5 removed',
      async () =>
        (await registry.list('keep')).instances
          .map((i) => i.instance)
          .sort()
          .join() === 'k4,k6',
      10_000,
      100,
    );
    // k4 is moved onto the new lease (listed all along, on the old one until then) and the old
    // lease is revoked: it outlives the old lease.
    await waitFor('k4 on the new lease', async () => (await registry.get('keep', 'k4'))?.lease === newLease, 10_000, 50);
    await waitFor('the old lease revoked', async () => Number((await registry.client.leaseClient.leaseTimeToLive({ ID: oldLease! })).TTL) === -1, 10_000, 50);
    expect((await registry.get('keep', 'k6'))?.address).toBe(`127.0.0.1:${c6.port}`);
    expect(feed.lines).toContain(`keep/k5 removed (was at 127.0.0.1:${c5.port}) — by watch@h1 (container exited)`);
    expect(c4.port).toBeGreaterThan(0);

    const t0 = Date.now();
    p.kill('SIGTERM');
    expect(await exited(p)).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    // Revoked, not expired: gone at once (a 30 s TTL would still hold them).
    expect((await registry.list('keep')).instances).toEqual([]);
    await waitFor(
      'the feed to say it stopped',
      () => feed.lines.some((l) => l.startsWith('keep/k4 removed') && l.endsWith("(host h1's watcher stopped)")),
      5000,
    );
  });
});
