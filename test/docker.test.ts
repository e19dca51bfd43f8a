/**
 * The Docker adapter against a real engine: the run-wide shared dockerd for most cases, a
 * private one for the engine-restart case (restarting the shared engine would disturb
 * other files). Every container here carries a per-file owner, and afterAll removes them.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import Dockerode from 'dockerode';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSwitchyardError, type SwitchyardError } from '../src/core/errors.js';
import {
  createDockerEngine,
  dockerodeOptions,
  launchContainer,
  LABEL_OWNER,
  type ContainerSpec,
  type DockerEngine,
  type EngineEvent,
  type ReconnectInfo,
} from '../src/adapters/docker/index.js';
import { buildBusyboxImage, sharedDockerHost, startDockerd, startSocketProxy, type DockerdProcess } from './helpers/docker.js';

const silent = pino({ level: 'silent' });
const suffix = randomBytes(3).toString('hex');
const OWNER = `test-${process.pid}-${suffix}`;
const OTHER_OWNER = `${OWNER}-other`;
const IMAGE = `switchyard-test/web:${suffix}`;
const HEALTHY_IMAGE = `switchyard-test/web-hc:${suffix}`;

let host: string;
let engine: DockerEngine;
let raw: Dockerode;
const unmanaged: string[] = [];
/**
 * How long an engine event may take to arrive here: a liveness bound far above the tens of
 * milliseconds expected (bench/scale.ts measures kill → deregistered), so load cannot fail it.
 */
const EVENT_MS = 10_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await sleep(20);
  }
}

function spec(instance: string, over: Partial<ContainerSpec> = {}): ContainerSpec {
  return { service: 'web', instance, owner: OWNER, image: IMAGE, port: 80, hostIp: '127.0.0.1', ...over };
}

async function codeOf(p: Promise<unknown>): Promise<SwitchyardError> {
  try {
    await p;
  } catch (err) {
    if (isSwitchyardError(err)) return err;
    throw err;
  }
  throw new Error('expected a SwitchyardError, got success');
}

/** Containers of ours (any state) for an instance: "nothing left behind" means none. */
async function leftovers(instance: string) {
  return (await engine.listManaged(OWNER)).filter((c) => c.instance === instance);
}

async function listen(): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => s.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return { server, port: addr.port };
}

beforeAll(async () => {
  host = await sharedDockerHost();
  raw = new Dockerode(dockerodeOptions(host));
  engine = createDockerEngine({ host, log: silent });
  await buildBusyboxImage(host, IMAGE);
  await buildBusyboxImage(host, HEALTHY_IMAGE, {
    healthcheck: '--interval=100ms --timeout=1s --retries=3 CMD ["/bin/busybox","wget","-q","-O","/dev/null","http://127.0.0.1/"]',
  });
});

afterAll(async () => {
  if (!engine) return;
  const ours = await raw.listContainers({ all: true, filters: { label: [LABEL_OWNER] } });
  const ids = [...ours.filter((c) => c.Labels[LABEL_OWNER]?.startsWith(OWNER)).map((c) => c.Id), ...unmanaged];
  await Promise.all(
    ids.map((id) =>
      raw
        .getContainer(id)
        .remove({ force: true })
        .catch(() => undefined),
    ),
  ); // some are gone already
  await Promise.all(
    [IMAGE, HEALTHY_IMAGE].map((i) =>
      raw
        .getImage(i)
        .remove()
        .catch(() => undefined),
    ),
  );
});

describe('docker engine adapter', () => {
  it('pings, and reports an unreachable engine as E_UNAVAILABLE', async () => {
    await engine.ping();
    const nowhere = createDockerEngine({ host: 'unix:///nonexistent/docker.sock', log: silent });
    expect((await codeOf(nowhere.ping())).code).toBe('E_UNAVAILABLE');
  });

  it('creates and starts a managed container whose published port answers HTTP', async () => {
    const { id } = await engine.create(spec('w1'));
    const started = await engine.start(id);
    const info = await engine.waitRunning(id, { timeoutMs: 10_000 });

    const port = started.ports.find((p) => p.containerPort === 80);
    expect(port?.hostIp).toBe('127.0.0.1');
    expect(port?.hostPort).toBeGreaterThan(0);
    expect(info).toMatchObject({ status: 'running', running: true, image: IMAGE, managed: { service: 'web', instance: 'w1', owner: OWNER } });
    expect(info.startedAt).toBeInstanceOf(Date);
    expect(info.finishedAt).toBeUndefined();
    const res = await fetch(`http://127.0.0.1:${port?.hostPort}/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain(IMAGE);
  });

  it('launchContainer returns the address to register', async () => {
    const l = await launchContainer(engine, spec('w2', { env: { GREETING: 'hi' } }), { timeoutMs: 10_000 });
    expect(l.hostIp).toBe('127.0.0.1');
    expect((await fetch(`http://127.0.0.1:${l.hostPort}/`)).status).toBe(200);
    const env = (await raw.getContainer(l.id).inspect()).Config.Env;
    expect(env).toContain('GREETING=hi');
  });

  it('lists only its own containers: not unmanaged ones, not another owner’s', async () => {
    const stranger = await raw.createContainer({ Image: IMAGE, Labels: { [`${LABEL_OWNER}.note`]: 'not ours' } });
    unmanaged.push(stranger.id);
    await stranger.start();
    // An owner of its own: other tests start containers for OTHER_OWNER too.
    const otherOwner = `${OWNER}-lists`;
    const other = await launchContainer(engine, spec('w1', { owner: otherOwner }));
    const api = await launchContainer(engine, spec('a1', { service: 'api' }));

    const mine = await engine.listManaged(OWNER);
    const ids = mine.map((c) => c.id);
    expect(ids).not.toContain(stranger.id);
    expect(ids).not.toContain(other.id);
    expect(ids).toContain(api.id);
    expect(mine.every((c) => c.owner === OWNER)).toBe(true);
    expect((await engine.listManaged(OWNER, 'web')).map((c) => c.service)).not.toContain('api');
    expect((await engine.listManaged(otherOwner)).map((c) => c.id)).toEqual([other.id]);
    const a1 = mine.find((c) => c.id === api.id);
    expect(a1?.status).toBe('running');
    expect(a1?.ports[0]?.hostPort).toBe(api.hostPort);
  });

  it('a docker kill delivers a die event with the exit code', async () => {
    const events: EngineEvent[] = [];
    const sub = engine.events({ owner: OWNER, onEvent: (e) => events.push(e) });
    try {
      await sub.ready;
      const l = await launchContainer(engine, spec('k1'));
      await raw.getContainer(l.id).kill();
      const die = await waitFor('die event', () => events.find((e) => e.id === l.id && e.action === 'die'), EVENT_MS);
      expect(die).toMatchObject({ service: 'web', instance: 'k1', owner: OWNER, exitCode: 137 });
      expect(events.find((e) => e.id === l.id && e.action === 'kill')?.signal).toMatch(/^(9|SIGKILL)$/);
      expect(events.find((e) => e.id === l.id && e.action === 'start')).toBeDefined();
      const info = await engine.inspect(l.id);
      expect(info).toMatchObject({ status: 'exited', exitCode: 137, oomKilled: false });
      expect(info.finishedAt).toBeInstanceOf(Date);
      // Another owner's containers never reach this subscription. The positive sign that the
      // stream has got past the other owner's kill: the kill of one of ours that follows it
      // (the engine sends events in order).
      const other = await launchContainer(engine, spec('k2', { owner: OTHER_OWNER }));
      const after = await launchContainer(engine, spec('k3'));
      await raw.getContainer(other.id).kill();
      await raw.getContainer(after.id).kill();
      await waitFor('the die event of the later kill', () => events.find((e) => e.id === after.id && e.action === 'die'), EVENT_MS);
      expect(events.some((e) => e.id === other.id)).toBe(false);
    } finally {
      sub.close();
    }
  });

  it('stops with a grace period and removes', async () => {
    const l = await launchContainer(engine, spec('s1'));
    await engine.stop(l.id, 1000); // busybox httpd as PID 1 ignores SIGTERM: the grace runs out
    expect((await engine.inspect(l.id)).status).toBe('exited');
    await engine.stop(l.id, 1000); // already stopped: not an error
    await engine.remove(l.id);
    expect((await codeOf(engine.inspect(l.id))).code).toBe('E_NOT_FOUND');
    expect((await codeOf(engine.remove(l.id))).code).toBe('E_NOT_FOUND');
    expect(await leftovers('s1')).toEqual([]);
  });

  it('refuses to remove a running container unless forced', async () => {
    const l = await launchContainer(engine, spec('r1'));
    expect((await codeOf(engine.remove(l.id))).code).toBe('E_CONFLICT');
    await engine.remove(l.id, { force: true });
    expect(await leftovers('r1')).toEqual([]);
  });

  it('unknown image → E_NOT_FOUND with a hint, never a pull, nothing left behind', async () => {
    const err = await codeOf(launchContainer(engine, spec('u1', { image: 'switchyard-test/absent:1' })));
    expect(err.code).toBe('E_NOT_FOUND');
    expect(err.message).toContain('image switchyard-test/absent:1 is not present on the Docker host');
    expect(await leftovers('u1')).toEqual([]);
    await expect(raw.getImage('switchyard-test/absent:1').inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  it('bad cmd → E_BAD_ARGS with Docker’s message, nothing left behind', async () => {
    const missing = await codeOf(launchContainer(engine, spec('b1', { cmd: ['/bin/no-such-binary'] })));
    expect(missing.code).toBe('E_BAD_ARGS');
    expect(missing.message).toContain('no-such-binary');
    expect(await leftovers('b1')).toEqual([]);

    const exits = await codeOf(launchContainer(engine, spec('b2', { cmd: ['sh', '-c', 'echo cannot bind >&2; exit 3'] })));
    expect(exits.code).toBe('E_BAD_ARGS');
    expect(exits.message).toContain('exited with code 3');
    expect(exits.details).toContain('| cannot bind');
    expect(await leftovers('b2')).toEqual([]);
  });

  it('invalid specs are refused before Docker is asked', async () => {
    expect((await codeOf(engine.create(spec('Bad Name')))).code).toBe('E_BAD_ARGS');
    expect((await codeOf(engine.create(spec('ok', { owner: '' })))).code).toBe('E_BAD_ARGS');
  });

  it('port clash → E_CONFLICT, nothing left behind', async () => {
    const { server, port } = await listen();
    try {
      const err = await codeOf(launchContainer(engine, spec('p1', { hostPort: port })));
      expect(err.code).toBe('E_CONFLICT');
      expect(err.message).toContain(String(port));
      expect(await leftovers('p1')).toEqual([]);
    } finally {
      server.close();
    }
  });

  it('waits for a HEALTHCHECK to report healthy', async () => {
    const l = await launchContainer(engine, spec('h1', { image: HEALTHY_IMAGE }), { timeoutMs: 10_000 });
    expect(l.info).toMatchObject({ hasHealthcheck: true, health: 'healthy' });

    const sick = await codeOf(launchContainer(engine, spec('h2', { image: HEALTHY_IMAGE, cmd: ['sleep', '30'] }), { timeoutMs: 10_000 }));
    expect(sick.code).toBe('E_UNAVAILABLE');
    expect(await leftovers('h2')).toEqual([]);
  });

  it('the events stream reconnects after its connection is cut, replays what it missed, and says so', async () => {
    const proxy = await startSocketProxy(host);
    const viaProxy = createDockerEngine({ host: proxy.host, log: silent });
    const events: EngineEvent[] = [];
    const reconnects: ReconnectInfo[] = [];
    const sub = viaProxy.events({ owner: OWNER, onEvent: (e) => events.push(e), onReconnect: (i) => reconnects.push(i), initialBackoffMs: 300 });
    try {
      await sub.ready;
      proxy.cut();
      // Started while the stream is down: must arrive through the `since` replay.
      const l = await launchContainer(engine, spec('e1'));
      const info = await waitFor('reconnect', () => reconnects[0]);
      expect(info.attempts).toBe(1);
      expect(info.cause).toMatch(/events stream/);
      await waitFor('replayed start event', () => events.find((e) => e.id === l.id && e.action === 'start'));
      await raw.getContainer(l.id).kill();
      await waitFor('die after reconnect', () => events.find((e) => e.id === l.id && e.action === 'die'), EVENT_MS);
      expect(events.filter((e) => e.id === l.id && e.action === 'start')).toHaveLength(1);
    } finally {
      sub.close();
      await proxy.close();
    }
  });
});

describe('docker engine adapter on a private engine', () => {
  let own: DockerdProcess | undefined;
  let e2: DockerEngine;

  beforeAll(async () => {
    own = await startDockerd();
    e2 = createDockerEngine({ host: own.host, log: silent });
    await buildBusyboxImage(own.host, IMAGE);
  });

  afterAll(async () => {
    await own?.stop();
  });

  it('an auto-assigned port that another process holds is skipped, not a clash', async () => {
    // Docker hands out ports per host IP in sequence, so the port after the last one it gave
    // is the one the next start tries first; its port mapper must move past a foreign listener.
    const first = await launchContainer(e2, spec('a1'));
    const next = createServer((s) => s.destroy());
    // Held by us, or already by some other process: either way not Docker's to hand out.
    await new Promise<void>((resolve, reject) => {
      next.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' ? resolve() : reject(err)));
      next.listen(first.hostPort + 1, '127.0.0.1', () => resolve());
    });
    try {
      const second = await launchContainer(e2, spec('a2'));
      expect(second.hostPort).toBeGreaterThan(first.hostPort + 1);
      expect((await fetch(`http://127.0.0.1:${second.hostPort}/`)).status).toBe(200);
    } finally {
      next.close();
    }
  });

  it('the events stream survives an engine restart and reports the reconnect', async () => {
    if (!own) throw new Error('no private engine');
    const events: EngineEvent[] = [];
    const reconnects: ReconnectInfo[] = [];
    const sub = e2.events({ owner: OWNER, onEvent: (e) => events.push(e), onReconnect: (i) => reconnects.push(i), initialBackoffMs: 50, maxBackoffMs: 200 });
    try {
      await sub.ready;
      for (const c of await e2.listManaged(OWNER)) await e2.remove(c.id, { force: true }); // a quick shutdown
      await own.restart();
      const info = await waitFor('reconnect after restart', () => reconnects[0], EVENT_MS);
      expect(info.downMs).toBeGreaterThan(0);
      const l = await launchContainer(e2, spec('e2'));
      await waitFor('start event after restart', () => events.find((e) => e.id === l.id && e.action === 'start'), EVENT_MS);
    } finally {
      sub.close();
    }
  });
});
