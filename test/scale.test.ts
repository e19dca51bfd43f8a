/**
 * `scale` against a real Docker engine and a real etcd: containers, registry keys and the
 * published ports agree at every step; failures leave nothing behind; the per-service lock
 * serialises concurrent scales; nothing that is not ours is ever touched.
 */
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABEL_INSTANCE, LABEL_OWNER, LABEL_SERVICE } from '../src/adapters/docker/index.js';
import { isSwitchyardError } from '../src/core/errors.js';
import { Reconciler } from '../src/orchestrator/reconciler.js';
import { scaleService } from '../src/orchestrator/scaler.js';
import { httpGet, orchestratorFixture, waitFor, WEB_CMD, type OrchestratorFixture } from './orchestrator-fixture.js';
import { ONCALL } from './helpers/workspace.js';

let fx: OrchestratorFixture;
let held: Server;
let heldPort: number;

function listenOn(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const s = createServer((c) => c.destroy());
    s.once('error', () => resolve(undefined));
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

/** A port we hold (the clash) whose next port is free (for the partial-failure case). */
async function holdPortWithFreeNeighbour(): Promise<{ server: Server; port: number }> {
  for (let i = 0; i < 20; i++) {
    const server = (await listenOn(0))!;
    const port = (server.address() as { port: number }).port;
    const probe = await listenOn(port + 1);
    if (probe) {
      await new Promise<void>((r) => probe.close(() => r()));
      return { server, port };
    }
    await new Promise<void>((r) => server.close(() => r()));
  }
  throw new Error('no port with a free neighbour');
}

/** Containers (running) and registrations of a service agree, and every address answers. */
async function expectConsistent(service: string, n: number) {
  const [containers, regs] = await Promise.all([fx.containers(service, true), fx.registrations(service)]);
  expect(containers.filter((c) => c.status === 'running')).toHaveLength(n);
  expect(containers).toHaveLength(n); // nothing stopped left behind
  expect(regs.map((r) => r.instance).sort()).toEqual(containers.map((c) => c.instance).sort());
  for (const c of containers) {
    const reg = regs.find((r) => r.instance === c.instance)!;
    const port = c.ports.find((p) => p.containerPort === 80)!;
    expect(reg.address).toBe(`127.0.0.1:${port.hostPort}`);
    expect(reg.state?.by).toBe(`${ONCALL}@${fx.owner}`);
    // busybox hostname = the container ID's first 12 characters: this container answered.
    expect(await httpGet(reg.address)).toBe(c.id.slice(0, 12));
  }
  return { containers, regs };
}

/** Runs a test body, then scales the services back to 0 whatever happened, so one failure stays one. */
async function thenScaleToZero(services: string[], body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } finally {
    for (const s of services) {
      const r = await fx.run(`scale ${s} 0 --yes`);
      expect(r.ok, r.summary).toBe(true);
    }
  }
}

beforeAll(async () => {
  ({ server: held, port: heldPort } = await holdPortWithFreeNeighbour());
  fx = await orchestratorFixture({
    services: {
      web: {},
      ghost: { image: 'switchyard-test/does-not-exist:nope' },
      badcmd: { cmd: ['/bin/no-such-binary'] },
      crashy: { cmd: ['/bin/sh', '-c', 'echo "config missing" >&2; exit 3'] },
      clash: { hostPorts: String(heldPort) },
      mixed: { hostPorts: `${heldPort}-${heldPort + 1}` },
      small: { maxReplicas: 2 },
    },
  });
});

afterAll(async () => {
  await fx?.dispose();
  await new Promise<void>((r) => (held ? held.close(() => r()) : r()));
});

describe('scale', () => {
  it('scales 0→3→1→0: containers, registry keys and published ports match at each step', () =>
    thenScaleToZero(['web'], async () => {
      const up = await fx.run('scale web 3');
      expect(up.ok, up.summary).toBe(true);
      expect(up.summary).toMatch(/^scaled web from 0 to 3: started web-[0-9a-f]{8}, web-[0-9a-f]{8}, web-[0-9a-f]{8}$/);
      expect(up.progress.filter((p) => /running at 127\.0\.0\.1:\d+, registered/.test(p))).toHaveLength(3);
      const three = await expectConsistent('web', 3);
      for (const c of three.containers) expect(c.name).toBe(c.instance); // first run: container named after the instance
      expect((await fx.registry.getDesired('web'))?.replicas).toBe(3);

      const down = await fx.run('scale web 1');
      expect(down.ok, down.summary).toBe(true);
      expect(down.summary).toMatch(/^scaled web from 3 to 1: removed /);
      expect(down.progress.filter((p) => p.startsWith('draining '))).toHaveLength(2);
      const one = await expectConsistent('web', 1);
      expect(three.containers.map((c) => c.instance)).toContain(one.containers[0]!.instance);
      expect((await fx.registry.getDesired('web'))?.replicas).toBe(1);

      // To 0 is an outage: asked first, nothing changes without --yes.
      const asked = await fx.run('scale web 0');
      expect(asked.code).toBe('E_CONFIRM_REQUIRED');
      expect(asked.summary).toContain('scaling web to 0 stops every instance of web');
      await expectConsistent('web', 1);

      const zero = await fx.run('scale web 0 --yes');
      expect(zero.ok, zero.summary).toBe(true);
      await expectConsistent('web', 0);
      expect((await fx.registry.getDesired('web'))?.replicas).toBe(0);
      expect((await fx.run('scale web 0 --yes')).summary).toBe('web already runs 0: nothing to change');
    }));

  it('refuses an unconfigured service and more than maxReplicas, writing nothing', async () => {
    const unknown = await fx.run('scale nope 1');
    expect(unknown.code).toBe('E_NOT_FOUND');
    expect(unknown.summary).toContain('nope is not a configured service');
    const tooMany = await fx.run('scale small 3');
    expect(tooMany.code).toBe('E_BAD_ARGS');
    expect(tooMany.summary).toBe('small allows at most 2 replicas (services.small.maxReplicas); asked for 3');
    expect(await fx.registry.getDesired('nope')).toBeUndefined();
    expect(await fx.registry.getDesired('small')).toBeUndefined();
  });

  it.each([
    ['ghost', 'E_NOT_FOUND', /image switchyard-test\/does-not-exist:nope is not present/],
    ['badcmd', 'E_BAD_ARGS', /no-such-binary/],
    ['crashy', 'E_BAD_ARGS', /exited with code 3 right after start/],
    ['clash', 'E_CONFLICT', /port clash/],
  ])('%s: a clear error, nothing registered, nothing left running', async (service, code, message) => {
    const r = await fx.run(`scale ${service} 2`);
    expect(r.ok).toBe(false);
    expect(r.code).toBe(code);
    expect(r.summary).toMatch(new RegExp(`^${service}: 0 of 2 running — could not start 2 instances$`));
    const failures = r.details!.filter((d) => new RegExp(`^${service}-[0-9a-f]{8}: `).test(d));
    expect(failures.length).toBe(2);
    expect(failures.join('\n')).toMatch(message);
    if (service === 'crashy') expect(r.details!.join('\n')).toContain('| config missing');
    expect(await fx.containers(service, true)).toEqual([]);
    expect(await fx.registrations(service)).toEqual([]);
  });

  it('partial failure keeps what started and names exactly what failed', async () => {
    await thenScaleToZero(['mixed'], async () => {
      const r = await fx.run('scale mixed 2');
      expect(r.ok).toBe(false);
      expect(r.code).toBe('E_CONFLICT');
      expect(r.summary).toMatch(/^mixed: 1 of 2 running — could not start 1 instance \(started mixed-[0-9a-f]{8}\)$/);
      const [started] = await fx.containers('mixed', true);
      expect(started?.ports[0]?.hostPort).toBe(heldPort + 1);
      const regs = await fx.registrations('mixed');
      expect(regs.map((x) => x.instance)).toEqual([started!.instance]);
      const failed = r.details!.find((d) => /^mixed-[0-9a-f]{8}: port clash/.test(d));
      expect(failed).toBeDefined();
      expect(failed).not.toContain(started!.instance);
    });
    expect(await fx.containers('mixed', true)).toEqual([]);
  });

  it('two concurrent scales of one service are serialised; the later request wins', () =>
    thenScaleToZero(['web'], async () => {
      const first = fx.run('scale web 3');
      // The second is sent once the first holds the service's lock, not after a guessed delay.
      const lockKey = fx.registry.layout.lockKey('web');
      await waitFor('the first scale to hold the lock', async () => (await fx.registry.client.get(lockKey).string())?.includes('"what":"scale web 3"'), 20_000);
      const second = fx.run('scale web 1', 'U0SECOND');
      const [a, b] = await Promise.all([first, second]);
      expect(a.ok, a.summary).toBe(true);
      expect(b.ok, b.summary).toBe(true);
      expect(a.summary).toMatch(/^scaled web from 0 to 3/);
      expect(b.summary).toMatch(/^scaled web from 3 to 1/);
      expect(b.progress[0]).toMatch(/^waiting for U0ONCALL \(scale web 3 since .* pid \d+\) to finish$/);
      expect((await fx.registry.getDesired('web'))?.replicas).toBe(1);
      expect(await fx.containers('web')).toHaveLength(1);
      expect(await fx.registrations('web')).toHaveLength(1);
    }));

  it('a scale that cannot get the lock in time is refused, naming the holder', async () => {
    const held = await fx.locks.acquire('web', { by: 'U0OTHER', what: 'scale web 5' }, { waitMs: 0 });
    try {
      const err = await scaleService(
        { ...fx.deps, settings: { ...fx.settings, lockWaitMs: 300 } },
        { service: 'web', replicas: 2, actor: ONCALL, progress: () => {} },
      ).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isSwitchyardError(err, 'E_CONFLICT')).toBe(true);
      expect((err as Error).message).toMatch(/^web is locked by U0OTHER \(scale web 5 since \S+ on \S+ pid \d+\); try again when it is done$/);
      expect(await fx.containers('web', true)).toEqual([]);
    } finally {
      await held.release();
    }
  });

  it('a crashed holder’s lock expires with its lease', async () => {
    // What a crashed holder leaves: its lock key on a lease that nobody renews any more.
    const lease = fx.registry.client.lease(2, { autoKeepAlive: false });
    await lease.put(fx.registry.layout.lockKey('web')).value(JSON.stringify({ by: 'U0CRASHED', what: 'scale web 9' }));
    const crashedLease = await lease.grant();
    const waited: string[] = [];
    // The 2 s lease expires in 2–3 s; waitMs is only the liveness bound.
    const lock = await fx.locks.acquire('web', { by: ONCALL, what: 'scale web 1' }, { waitMs: 20_000, onWait: (h) => waited.push(h.by) });
    try {
      expect(waited).toEqual(['U0CRASHED']);
      // It waited for the lease to run out rather than taking the lock over: etcd has let the
      // crashed holder's lease go (TTL -1), and the key is now on another lease, ours.
      expect(Number((await fx.registry.client.leaseClient.leaseTimeToLive({ ID: crashedLease, keys: false })).TTL)).toBe(-1);
      const kv = (await fx.registry.client.get(fx.registry.layout.lockKey('web')).exec()).kvs[0];
      expect(kv?.lease).not.toBe(crashedLease);
      expect(JSON.parse(kv!.value.toString())).toMatchObject({ by: ONCALL, what: 'scale web 1' });
    } finally {
      await lock.release();
    }
  });

  it('never touches unmanaged containers, other owners’ containers or manual registrations', async () => {
    const image = fx.image;
    const unmanaged = await fx.raw.createContainer({ Image: image, Cmd: WEB_CMD });
    const foreign = await fx.raw.createContainer({
      Image: image,
      Cmd: WEB_CMD,
      Labels: { [LABEL_SERVICE]: 'web', [LABEL_INSTANCE]: 'web-foreign', [LABEL_OWNER]: `${fx.owner}-other` },
    });
    const stoppedForeign = await fx.raw.createContainer({
      Image: image,
      Cmd: ['/bin/true'],
      Labels: { [LABEL_SERVICE]: 'web', [LABEL_INSTANCE]: 'web-foreign2', [LABEL_OWNER]: `${fx.owner}-other` },
    });
    try {
      await Promise.all([unmanaged.start(), foreign.start(), stoppedForeign.start()]);
      expect((await fx.run('register web manual-1 10.0.0.9:80')).ok).toBe(true);
      await fx.registry.register('web', 'web-foreign', '10.0.0.10:80', { by: `U0X@${fx.owner}-other` });

      expect((await fx.run('scale web 2')).ok).toBe(true);
      const down = await fx.run('scale web 0 --yes');
      expect(down.ok, down.summary).toBe(true);
      await new Reconciler(fx.deps).trigger('manual');

      const regs = (await fx.registrations('web')).map((r) => r.instance).sort();
      expect(regs).toEqual(['manual-1', 'web-foreign']);
      expect((await unmanaged.inspect()).State.Running).toBe(true);
      expect((await foreign.inspect()).State.Running).toBe(true);
      expect((await stoppedForeign.inspect()).State.Status).toBe('exited');
    } finally {
      await Promise.all([unmanaged, foreign, stoppedForeign].map((c) => c.remove({ force: true }).catch(() => undefined)));
      await fx.registry.deregister('web', 'manual-1').catch(() => undefined); // absent if the test failed before registering it
      await fx.registry.deregister('web', 'web-foreign').catch(() => undefined);
      await fx.run('scale web 0 --yes');
    }
  }, 90_000); // many engine round trips: a liveness bound for a loaded machine
});
