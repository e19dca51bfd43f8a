/**
 * Reconcile against a real Docker engine and etcd: after the bot is SIGKILLed in the middle
 * of a scale (a real `switchyard shell` process), no container is left without a
 * registration and no registration without a container; leftovers made behind our back
 * are put right; drift is reported.
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Reconciler } from '../src/orchestrator/reconciler.js';
import { ONCALL } from './helpers/workspace.js';
import { httpGet, orchestratorFixture, WEB_CMD, type OrchestratorFixture } from './orchestrator-fixture.js';

const BIN = fileURLToPath(new URL('../bin/switchyard.js', import.meta.url));

let fx: OrchestratorFixture;
let configPath: string;

beforeAll(async () => {
  fx = await orchestratorFixture();
  await writeFile(join(fx.ws.dir, 'acl.yaml'), `rules:\n  - allow: ["*"]\n    users: [${ONCALL}]\n`);
  configPath = join(fx.ws.dir, 'docker.yaml');
  await writeFile(
    configPath,
    JSON.stringify({
      etcd: { endpoints: [fx.ws.endpoint] },
      registry: { prefix: fx.ws.prefixes.services, switchyardPrefix: fx.ws.prefixes.switchyard },
      acl: { path: './acl.yaml' },
      docker: { host: fx.host, lockTtl: '2s', stopGrace: '2s', drainTimeout: '2s' },
      services: { web: { image: fx.image, port: 80, hostIp: '127.0.0.1', cmd: WEB_CMD, maxReplicas: 10 } },
    }),
  );
});

afterAll(async () => {
  await fx?.dispose();
});

/**
 * `switchyard shell` running `command`, SIGKILLed as soon as its output matches `killWhen`:
 * the bot dying midway, with no chance to clean up (its lock stays until the lease expires).
 */
function killMidway(command: string, killWhen: RegExp | (() => Promise<boolean>)): Promise<string> {
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
    if (!(killWhen instanceof RegExp)) {
      void (async () => {
        while (!killed && child.exitCode === null) {
          if (await killWhen()) kill();
          else await new Promise((r) => setTimeout(r, 5));
        }
      })().catch(reject);
    }
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
    ['as soon as its first container exists', async () => (await fx.containers('web', true)).length > 0, false],
    ['after the first registration', /running at 127\.0\.0\.1:\d+, registered \(1\/6\)/, true],
  ])(
    'after the bot is SIGKILLed in the middle of a scale-up (%s): no container without a registration, no registration without a container',
    async (_when, killWhen, caughtMidway) => {
      await killMidway('scale web 6', killWhen);
      const [containers, regs] = await Promise.all([fx.containers('web', true), fx.registrations('web')]);
      console.info(`killed ${_when}: ${containers.length} containers (${containers.map((c) => c.status).join(', ')}), ${regs.length} registered`);
      if (caughtMidway) {
        // Caught midway: one registered, and containers the dead bot never registered.
        expect(regs.length).toBeGreaterThanOrEqual(1);
        expect(containers.length).toBeGreaterThan(regs.length);
      }

      const report = await new Reconciler(fx.deps).trigger('start'); // waits out the dead bot's lock
      const web = report.services.find((s) => s.service === 'web')!;
      expect(web.skipped).toBeUndefined();
      const n = await expectNoOrphans();
      expect(web.running).toBe(n);
      expect(web.desired).toBe(6);
      if (n !== 6) expect(fx.feed.some((e) => e.kind === 'reconcile' && e.text.includes(`web: desired 6, running ${n}`))).toBe(true);
      expect((await fx.run('scale web 0 --yes')).ok).toBe(true);
    },
  );

  it('after the bot is SIGKILLed in the middle of a scale-down: the same holds', async () => {
    const up = await fx.run('scale web 4');
    expect(up.ok, up.summary).toBe(true);
    await killMidway('scale web 0 --yes', /drained, deregistered, stopped and removed \(1\/4\)/);
    const [containers, regs] = await Promise.all([fx.containers('web', true), fx.registrations('web')]);
    console.info(`killed midway down: ${containers.length} containers (${containers.map((c) => c.status).join(', ')}), ${regs.length} registered`);
    await new Reconciler(fx.deps).trigger('start');
    await expectNoOrphans();
    expect((await fx.run('scale web 0 --yes')).ok).toBe(true);
    expect(await fx.containers('web', true)).toEqual([]);
  });

  it('puts right what was done behind its back: stopped containers, deleted containers, deleted keys', async () => {
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

    // Nothing changed since: the next round is quiet (no repeated drift report).
    const count = fx.feed.length;
    const again = await new Reconciler(fx.deps).trigger('manual');
    expect(again.services.find((s) => s.service === 'web')!.changes).toEqual([]);
    expect(fx.feed.length).toBe(count + 1); // a new Reconciler reports the drift once
    await fx.registry.deregister('web', 'by-hand');
    await fx.run('scale web 0 --yes');
  });

  it('a periodic round skips a service whose lock is held; one at start waits for it', async () => {
    const lock = await fx.locks.acquire('web', { by: 'U0BUSY', what: 'scale web 2' }, { waitMs: 0 });
    const interval = await new Reconciler(fx.deps).trigger('interval');
    expect(interval.services.find((s) => s.service === 'web')?.skipped).toMatch(/^web is locked by U0BUSY/);
    const atStart = new Reconciler(fx.deps).trigger('start');
    await new Promise((r) => setTimeout(r, 200));
    await lock.release();
    expect((await atStart).services.find((s) => s.service === 'web')?.skipped).toBeUndefined();
  });
});
