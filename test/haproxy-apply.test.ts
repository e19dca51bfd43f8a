/**
 * The apply engine against a real HAProxy 2.6 (no etcd: listings are built by hand).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HaproxyApplier } from '../src/adapters/haproxy/apply.js';
import { compileTemplate, loadTemplate } from '../src/adapters/haproxy/template.js';
import { createServer } from 'node:net';
import { Converger, type ConvergerOptions } from '../src/agent/converge.js';
import { configSchema } from '../src/config/schema.js';
import { createLogger } from '../src/core/log.js';
import type { Instance, InstanceState, Listing } from '../src/core/registry.js';
import { freePort, httpGet, startHaproxy, startHttpBackend, waitFor, whoAnswers, type HttpBackend, type TestHaproxy } from './helpers/haproxy.js';

const log = createLogger({ level: process.env.TEST_LOG ?? 'silent' });

type Row = [service: string, instance: string, address: string, state?: InstanceState, weight?: number];

function listing(rows: Row[]): Listing {
  const instances: Instance[] = rows.map(([service, instance, address, state, weight]) => ({
    service,
    instance,
    address,
    ...(state || weight !== undefined ? { state: { state: state ?? 'ready', weight: weight ?? 100, by: 'test', at: '' } } : {}),
    modRevision: '1',
  }));
  return { instances, problems: [], revision: '1' };
}

describe('HAProxy apply (real haproxy)', () => {
  let hap: TestHaproxy;
  let backends: HttpBackend[];
  let port: number;
  let converger: Converger;
  let convergerOpts: ConvergerOptions;
  let url: string;

  const step = async (rows: Row[]) => {
    const out = await converger.step(listing(rows));
    return out;
  };

  /** This test's HAProxy, for afterEach (unset when it did not start). */
  let owned: TestHaproxy | undefined;

  beforeAll(async () => {
    backends = await Promise.all(['web-1', 'web-2', 'web-3'].map(startHttpBackend));
  });

  afterAll(async () => {
    await Promise.all((backends ?? []).map((b) => b.close()));
  });

  // A fresh HAProxy and converger per test: each starts from the bootstrap config.
  beforeEach(async () => {
    hap = owned = await startHaproxy();
    port = await freePort();
    url = `http://127.0.0.1:${port}/`;
    const config = configSchema.parse({
      etcd: {},
      haproxy: hap.configSection('lb-test'),
      services: { web: { image: 'x', port: 80, listen: `127.0.0.1:${port}` } },
    });
    const applier = new HaproxyApplier({
      agentId: 'lb-test',
      configPath: hap.config,
      binary: hap.binary,
      runtime: hap.runtime,
      master: hap.master,
      log,
      removeGraceMs: 1500,
    });
    convergerOpts = {
      agentId: 'lb-test',
      haproxy: config.haproxy!,
      services: config.services,
      servicesPrefix: '/services',
      template: await loadTemplate(),
      applier,
      checkInterMs: 500,
    };
    converger = new Converger(convergerOpts);
  });

  afterEach(async () => {
    await owned?.dispose();
    owned = undefined;
  });

  it('first apply reloads; adding a server to an existing backend is runtime-only', async () => {
    const [b1, b2] = backends as [HttpBackend, HttpBackend];
    const first = await step([['web', 'web-1', b1.address]]);
    expect(first.result).toMatchObject({ method: 'reload', ok: true });
    const worker = await hap.workerPid();
    expect((await httpGet(url)).body).toBe('web-1');

    const second = await step([
      ['web', 'web-1', b1.address],
      ['web', 'web-2', b2.address],
    ]);
    expect(second.result).toMatchObject({ method: 'runtime', ok: true, changes: ['+web-2'] });
    const seen = await waitFor('web-2 to answer', async () => {
      const r = await whoAnswers(url, 4);
      return r.has('web-2') ? r : undefined;
    });
    expect(seen.has('web-1')).toBe(true);
    expect(await hap.workerPid()).toBe(worker);
    // The file was written too, so a restart starts the same way.
    expect(await readFile(hap.config, 'utf8')).toContain(`server web-2 ${b2.address}`);
  });

  it('removal at runtime; a reload for a new backend; drain is kept through a reload', async () => {
    const [b1, b2, b3] = backends as [HttpBackend, HttpBackend, HttpBackend];
    const live = await step([
      ['web', 'web-1', b1.address],
      ['web', 'web-2', b2.address],
    ]);
    expect(live.result).toMatchObject({ method: 'reload', ok: true });
    const worker = await hap.workerPid();
    const removed = await step([['web', 'web-2', b2.address]]);
    expect(removed.result).toMatchObject({ method: 'runtime', ok: true, changes: ['-web-1'] });
    expect(await hap.workerPid()).toBe(worker);
    const only = await whoAnswers(url, 4);
    expect([...only.keys()]).toEqual(['web-2']);

    const drained = await step([
      ['web', 'web-2', b2.address, 'drain'],
      ['web', 'web-3', b3.address],
    ]);
    expect(drained.result).toMatchObject({ method: 'runtime', ok: true });
    expect(drained.result.changes.sort()).toEqual(['+web-3', 'web-2 drain']);
    expect([...(await whoAnswers(url, 4)).keys()]).toEqual(['web-3']);

    // A new backend forces a reload; web-2 stays drained in the new worker.
    const reload = await step([
      ['web', 'web-2', b2.address, 'drain'],
      ['web', 'web-3', b3.address],
      ['api', 'api-1', b1.address],
    ]);
    expect(reload.result).toMatchObject({ method: 'reload', ok: true });
    expect(reload.result.worker).not.toBe(worker);
    expect(await hap.workerPid()).toBe(reload.result.worker);
    const state = (await hap.runtime.showStat()).find((r) => r.backend === 'web' && r.name === 'web-2');
    expect(state?.status).toBe('DRAIN');
    expect([...(await whoAnswers(url, 4)).keys()]).toEqual(['web-3']);
  });

  it('a template that HAProxy rejects keeps the live config byte-identical and reports haproxy lines', async () => {
    const [, b2, b3] = backends as [HttpBackend, HttpBackend, HttpBackend];
    const rows: Row[] = [
      ['web', 'web-2', b2.address],
      ['web', 'web-3', b3.address],
    ];
    expect((await step(rows)).result).toMatchObject({ method: 'reload', ok: true });
    const before = await readFile(hap.config);
    const worker = await hap.workerPid();
    const good = (await loadTemplate()).source;
    converger.setTemplate(compileTemplate(good.replace('balance {{balance}}', 'balance bogus'), 'bad.hbs'));
    const out = await step(rows);
    expect(out.result.ok).toBe(false);
    expect(out.result.method).toBe('reload');
    expect(out.result.error?.join('\n')).toMatch(/\[ALERT\] .*haproxy\.cfg:\d+\] : balance only supports/);
    expect((await readFile(hap.config)).equals(before)).toBe(true);
    expect(await hap.workerPid()).toBe(worker);
    converger.setTemplate(compileTemplate(good, 'good.hbs'));
    const fixed = await step(rows);
    expect(fixed.result).toMatchObject({ ok: true });
  });

  it('a listener that cannot bind is caught before the reload; the live config stays', async () => {
    const [, b2, b3] = backends as [HttpBackend, HttpBackend, HttpBackend];
    const blocker = createServer();
    const taken = await freePort();
    await new Promise<void>((r) => blocker.listen(taken, '127.0.0.1', r));
    try {
      const rows: Row[] = [
        ['web', 'web-2', b2.address],
        ['web', 'web-3', b3.address],
      ];
      expect((await step(rows)).result).toMatchObject({ method: 'reload', ok: true });
      const before = await readFile(hap.config);
      const worker = await hap.workerPid();
      const blocked = new Converger({
        ...convergerOpts,
        services: { ...convergerOpts.services, db: { ...convergerOpts.services.web!, listen: `127.0.0.1:${taken}` } },
      });
      const out = await blocked.step(listing(rows));
      expect(out.result).toMatchObject({ ok: false, method: 'reload', failure: 'check' });
      expect(out.result.error).toContain(`cannot bind 127.0.0.1:${taken}: EADDRINUSE (address already in use)`);
      expect((await readFile(hap.config)).equals(before)).toBe(true);
      expect(await hap.workerPid()).toBe(worker);
    } finally {
      blocker.close();
    }
  });

  it('a template that does not compile is refused with file:line', () => {
    expect(() => compileTemplate('global\n{{#each services}}\n  x {{name}\n', 'broken.hbs')).toThrow(/broken\.hbs:3/);
    expect(() => compileTemplate('backend {{nosuchfield}}\n', 'typo.hbs')).toThrow(/typo\.hbs:1.*nosuchfield/);
  });

  it('a removed server with an open session is deleted once the session ends', async () => {
    const [, b2, b3] = backends as [HttpBackend, HttpBackend, HttpBackend];
    await step([['web', 'web-3', b3.address]]);
    // Hold a session on web-3, then deregister it.
    // Settled at once: if the test fails before awaiting it, its end (the afterEach stopping
    // HAProxy) is not an unhandled rejection that fails the run a second time.
    const held = httpGet(`${url}slow`, { timeoutMs: 8000 }).then(
      (r) => r,
      (err: unknown) => err as Error,
    );
    await waitFor('web-3 session', async () => (await hap.runtime.showStat()).find((r) => r.name === 'web-3')?.scur === 1);
    const out = await step([['web', 'web-2', b2.address]]);
    expect(out.result).toMatchObject({ method: 'runtime', ok: true, pending: ['web-3'] });
    expect([...(await whoAnswers(url, 3)).keys()]).toEqual(['web-2']);
    b3.release();
    expect(await held).toEqual({ status: 200, body: 'web-3' });
    // The agent re-applies while deletions are pending; here the test does.
    await waitFor('web-3 deleted', async () => (await step([['web', 'web-2', b2.address]])).result.pending === undefined, 8000, 100);
    const names = (await hap.runtime.showServersState('web')).map((r) => r.name);
    expect(names).toEqual(['web-2']);
  });
});

describe('HAProxy master CLI (real haproxy)', () => {
  it('reports a reload the master could not complete (old worker kept)', async () => {
    const hap = await startHaproxy();
    const blocker = createServer();
    const taken = await freePort();
    await new Promise<void>((r) => blocker.listen(taken, '127.0.0.1', r));
    try {
      const good = await readFile(hap.config, 'utf8');
      const worker = await hap.workerPid();
      await writeFile(hap.config, `${good}frontend f\n    bind 127.0.0.1:${taken}\n`);
      await expect(hap.master.reload()).rejects.toMatchObject({ code: 'E_CONFLICT' });
      expect(await hap.runtime.workerPid()).toBe(worker);
      await writeFile(hap.config, good);
      const ok = await hap.master.reload();
      expect(ok.previous).toEqual([worker]);
      expect(await hap.workerPid()).toBe(ok.worker);
    } finally {
      blocker.close();
      await hap.dispose();
    }
  });
});
