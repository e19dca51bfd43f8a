/**
 * Reconcile against a real Docker engine and etcd: after the bot is SIGKILLed in the middle
 * of a scale (a real `switchyard shell` process), no container is left without a
 * registration and no registration without a container; leftovers made behind our back
 * are put right; drift is reported.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ServiceLocks } from '../src/orchestrator/ports.js';
import { Reconciler } from '../src/orchestrator/reconciler.js';
import { ONCALL } from './helpers/workspace.js';
import { httpGet, orchestratorFixture, waitFor, WEB_CMD, type OrchestratorFixture } from './orchestrator-fixture.js';

const BIN = fileURLToPath(new URL('../bin/switchyard.js', import.meta.url));
/** A liveness bound for tests that start a bot, scale and wait out a dead bot's lock (~10 s expected). */
const SLOW_TEST_MS = 120_000;

let fx: OrchestratorFixture;

/** A config for `switchyard shell` on this file's etcd prefix, talking to Docker at `dockerHost`. */
async function writeConfig(name: string, dockerHost: string): Promise<string> {
  const path = join(fx.ws.dir, name);
  await writeFile(
    path,
    JSON.stringify({
      etcd: { endpoints: [fx.ws.endpoint] },
      registry: { prefix: fx.ws.prefixes.services, switchyardPrefix: fx.ws.prefixes.switchyard },
      acl: { path: './acl.yaml' },
      docker: { host: dockerHost, lockTtl: '2s', stopGrace: '2s', drainTimeout: '2s', startTimeout: '30s' },
      services: { web: { image: fx.image, port: 80, hostIp: '127.0.0.1', cmd: WEB_CMD, maxReplicas: 10 } },
    }),
  );
  return path;
}

/**
 * A proxy in front of the Docker socket that forwards the first `allowStarts` container
 * starts and holds every later one (the request never reaches the engine): a bot killed
 * while it waits there has created containers it has not started, let alone registered,
 * wherever the scheduler happens to be. Decides the crash point instead of racing it.
 */
async function startGate(targetHost: string, allowStarts: number) {
  const target = targetHost.replace(/^unix:\/\//, '');
  const dir = await mkdtemp(join(tmpdir(), 'sy-gate-'));
  const path = join(dir, 'docker.sock');
  const sockets = new Set<Socket>();
  let starts = 0;
  let onHeld: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (onHeld = resolve));
  const server = createServer((inbound) => {
    const outbound = connect(target);
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        inbound.destroy();
        outbound.destroy();
      });
    }
    outbound.pipe(inbound);
    let holding = false;
    inbound.on('data', (chunk: Buffer) => {
      if (holding) return;
      // One request line per chunk is all dockerode sends on a connection at a time.
      if (/^POST \S*\/containers\/[^/\s]+\/start[?\s]/m.test(chunk.toString('latin1')) && ++starts > allowStarts) {
        holding = true;
        onHeld();
        return;
      }
      outbound.write(chunk);
    });
    inbound.on('end', () => outbound.end());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, resolve);
  });
  return {
    host: `unix://${path}`,
    /** Resolves once a start is being held. */
    held,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

beforeAll(async () => {
  fx = await orchestratorFixture();
  await writeFile(join(fx.ws.dir, 'acl.yaml'), `rules:\n  - allow: ["*"]\n    users: [${ONCALL}]\n`);
});

afterAll(async () => {
  await fx?.dispose();
});

/** Whatever a test leaves (its lock, its containers, its registrations) does not reach the next one. */
afterEach(async () => {
  await new Reconciler(fx.deps).trigger('start'); // waits out a killed bot's lock
  await fx.registry.deregister('web', 'by-hand').catch(() => undefined); // absent unless that test failed midway
  const down = await fx.run('scale web 0 --yes');
  expect(down.ok, down.summary).toBe(true);
  expect(await fx.containers('web', true)).toEqual([]);
});

/**
 * `switchyard shell` running `command`, SIGKILLed as soon as its output matches `killWhen`:
 * the bot dying midway, with no chance to clean up (its lock stays until the lease expires).
 */
function killMidway(configPath: string, command: string, killWhen: RegExp | Promise<void>): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'shell', '--config', configPath, '--user', ONCALL], {
      env: { ...process.env, LOG_LEVEL: 'silent', DOCKER_HOST: '' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let killed = false;
    const kill = () => {
      if (killed) return;
      killed = true;
      child.kill('SIGKILL');
    };
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (killWhen instanceof RegExp && killWhen.test(out)) kill();
    });
    if (!(killWhen instanceof RegExp)) killWhen.then(kill, reject);
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => (signal === 'SIGKILL' ? resolve(out) : reject(new Error(`shell exited (${code}) before it could be killed:\n${out}`))));
    // stdin stays open: the shell must not reach EOF (and exit cleanly) before the kill.
    child.stdin.write(`${command}\n`);
  });
}

/** The invariant: every container of ours runs and is registered at its address, and vice versa. */
async function expectNoOrphans() {
  const [all, regs] = await Promise.all([fx.containers('web', true), fx.registrations('web')]);
  expect(all.filter((c) => c.status !== 'running').map((c) => `${c.name} ${c.status}`)).toEqual([]);
  expect(regs.map((r) => r.instance).sort()).toEqual(all.map((c) => c.instance).sort());
  for (const c of all) {
    const reg = regs.find((r) => r.instance === c.instance)!;
    expect(await httpGet(reg.address)).toBe(c.id.slice(0, 12));
  }
  return all.length;
}

describe('reconcile', () => {
  it.each([
    ['as soon as its first container exists', 0],
    ['after the first registration', 1],
  ])(
    'after the bot is SIGKILLed in the middle of a scale-up (%s): no container without a registration, no registration without a container',
    async (_when, allowStarts) => {
      const gate = await startGate(fx.host, allowStarts);
      try {
        const config = await writeConfig(`gated-${allowStarts}.yaml`, gate.host);
        // Killed while a container start is held: with none let through, before any container
        // runs; with one, once that one is registered and the rest are created but not started.
        await killMidway(config, 'scale web 6', allowStarts === 0 ? gate.held : /running at 127\.0\.0\.1:\d+, registered \(1\/6\)/);
      } finally {
        await gate.close();
      }
      const [containers, regs] = await Promise.all([fx.containers('web', true), fx.registrations('web')]);
      expect(regs).toHaveLength(allowStarts);
      expect(containers.filter((c) => c.status === 'running')).toHaveLength(allowStarts);
      // Created by the dead bot, never started nor registered: what reconcile must clear.
      expect(containers.filter((c) => c.status === 'created').length).toBeGreaterThan(0);

      const report = await new Reconciler(fx.deps).trigger('start'); // waits out the dead bot's lock
      const web = report.services.find((s) => s.service === 'web')!;
      expect(web.skipped).toBeUndefined();
      const n = await expectNoOrphans();
      expect(n).toBe(allowStarts);
      expect(web.running).toBe(n);
      expect(web.desired).toBe(6);
      expect(fx.feed.some((e) => e.kind === 'reconcile' && e.text.includes(`web: desired 6, running ${n}`))).toBe(true);
    },
    SLOW_TEST_MS,
  );

  it(
    'after the bot is SIGKILLed in the middle of a scale-down: the same holds',
    async () => {
      const up = await fx.run('scale web 4');
      expect(up.ok, [up.summary, ...(up.details ?? [])].join('\n')).toBe(true);
      await killMidway(await writeConfig('direct.yaml', fx.host), 'scale web 0 --yes', /drained, deregistered, stopped and removed \(1\/4\)/);
      expect((await fx.containers('web', true)).length).toBeLessThan(4);
      await new Reconciler(fx.deps).trigger('start');
      await expectNoOrphans();
    },
    SLOW_TEST_MS,
  );

  it(
    'puts right what was done behind its back: stopped containers, deleted containers, deleted keys',
    async () => {
      expect((await fx.run('scale web 3')).ok).toBe(true);
      const [stopped, deleted, unregistered] = await fx.containers('web');
      await fx.raw.getContainer(stopped!.id).stop({ t: 0 });
      await fx.raw.getContainer(deleted!.id).remove({ force: true });
      await fx.registry.deregister('web', unregistered!.instance);
      const manual = await fx.run('register web by-hand 10.1.2.3:80'); // not ours: stays
      expect(manual.ok).toBe(true);

      const report = await new Reconciler(fx.deps).trigger('manual');
      const web = report.services.find((s) => s.service === 'web')!;
      const address = (await fx.registry.get('web', unregistered!.instance))!.address;
      expect(web.changes).toHaveLength(4);
      expect(web.changes).toEqual(
        expect.arrayContaining([
          expect.stringMatching(new RegExp(`^web/${stopped!.instance} deregistered: its container is not running \\(Exited \\(\\d+\\) .*\\)$`)),
          `web/${stopped!.instance}: removed exited container ${stopped!.name}`,
          `web/${deleted!.instance} deregistered: its container no longer exists`,
          `web/${unregistered!.instance} registered at ${address}: its container was running unregistered`,
        ]),
      );
      expect(web).toMatchObject({ desired: 3, running: 1 });
      const regs = (await fx.registrations('web')).map((r) => r.instance).sort();
      expect(regs).toEqual(['by-hand', unregistered!.instance].sort());
      expect((await fx.containers('web', true)).map((c) => c.instance)).toEqual([unregistered!.instance]);
      const feed = fx.feed.filter((e) => e.kind === 'reconcile').at(-1)!;
      expect(feed.text.split('\n')).toContain('web: desired 3, running 1');

      // Nothing changed since: the same reconciler's next round reports nothing new (the drift
      // was reported once), and a round after the drift ends says it is back in line.
      const reconciler = new Reconciler(fx.deps);
      await reconciler.trigger('manual');
      const count = fx.feed.length;
      const again = await reconciler.trigger('manual');
      expect(again.services.find((s) => s.service === 'web')).toMatchObject({ changes: [], problems: [], desired: 3, running: 1 });
      expect(fx.feed.slice(count)).toEqual([]);
      await fx.registry.setDesired('web', 1, ONCALL); // the operator settles for what runs
      const before = fx.feed.length;
      await reconciler.trigger('manual');
      expect(
        fx.feed
          .slice(before)
          .filter((e) => e.kind === 'reconcile')
          .map((e) => e.text),
      ).toEqual(['reconcile (manual):\nweb: back in line (desired 1, running 1)']);
    },
    SLOW_TEST_MS,
  );

  it('a periodic round skips a service whose lock is held; one at start waits for it', async () => {
    const lock = await fx.locks.acquire('web', { by: 'U0BUSY', what: 'scale web 2' }, { waitMs: 0 });
    try {
      const interval = await new Reconciler(fx.deps).trigger('interval');
      expect(interval.services.find((s) => s.service === 'web')?.skipped).toMatch(/^web is locked by U0BUSY/);
      // The lock is let go once the round at start has found it held and waits, not after a guessed delay.
      const waitedFor: string[] = [];
      const locks: ServiceLocks = {
        acquire: (service, holder, o) => fx.locks.acquire(service, holder, { ...o, onWait: (h) => waitedFor.push(`${service} ${h.by}`) }),
      };
      const atStart = new Reconciler({ ...fx.deps, locks }).trigger('start');
      await waitFor('the round at start to wait for the lock', () => waitedFor.includes('web U0BUSY'), 20_000);
      await lock.release();
      expect((await atStart).services.find((s) => s.service === 'web')?.skipped).toBeUndefined();
    } finally {
      await lock.release();
    }
  });
});
