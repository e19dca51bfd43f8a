/**
 * The agent end to end: real etcd (shared), real HAProxy 2.6, loopback HTTP backends.
 */
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { EtcdRegistry } from '../src/adapters/etcd/registry.js';
import { DEFAULT_TEMPLATE_PATH } from '../src/adapters/haproxy/template.js';
import { NAME_RE } from '../src/core/names.js';
import { sharedEtcdEndpoint, uniquePrefix, wipe } from './helpers/etcd.js';
import {
  agentConfig,
  freePort,
  httpGet,
  quiescent,
  registryAt,
  startAgent,
  startHaproxy,
  startHttpBackend,
  waitFor,
  whoAnswers,
  type HttpBackend,
  type RunningAgent,
  type TestHaproxy,
} from './helpers/haproxy.js';

const names = (m: Map<string, number>) => [...m.keys()].sort();

describe('HAProxy agent (real etcd + real haproxy)', () => {
  let endpoint: string;
  let raw: Etcd3;
  let backends: Record<string, HttpBackend>;
  // Per test: a registry prefix, HAProxy, template copy and agent of its own.
  let prefix: string;
  let registry: EtcdRegistry;
  let hap: TestHaproxy;
  let url: string;
  let running: RunningAgent;
  let templatePath: string;
  /** What this test started, for afterEach (unset parts were never started). */
  let owned: { registry?: EtcdRegistry; hap?: TestHaproxy; running?: RunningAgent } = {};

  /** Wait for a reported result matching `pred` after index `from`. */
  const resultAfter = (from: number, pred: (r: RunningAgent['results'][number]) => boolean, what = 'an apply result') =>
    waitFor(what, () => running.results.slice(from).find(pred), 8000, 5);

  beforeAll(async () => {
    endpoint = sharedEtcdEndpoint();
    raw = new Etcd3({ hosts: endpoint });
    backends = Object.fromEntries(await Promise.all(['web-1', 'web-2', 'web-3', 'api-1'].map(async (n) => [n, await startHttpBackend(n)] as const)));
  });

  afterAll(async () => {
    await Promise.all(Object.values(backends ?? {}).map((b) => b.close()));
    raw?.close();
  });

  beforeEach(async () => {
    owned = {};
    prefix = uniquePrefix('agent');
    registry = owned.registry = registryAt(endpoint, prefix);
    hap = owned.hap = await startHaproxy();
    const port = await freePort();
    url = `http://127.0.0.1:${port}/`;
    templatePath = join(hap.dir, 'haproxy.cfg.hbs');
    await copyFile(DEFAULT_TEMPLATE_PATH, templatePath);
    running = owned.running = await startAgent(agentConfig(endpoint, prefix, hap, 'lb-1', { web: { listen: `127.0.0.1:${port}` } }, templatePath), registry);
    await waitFor('the start-up apply', () => running.results[0]);
  });

  afterEach(async () => {
    await owned.running?.agent.stop();
    await owned.registry?.close();
    await owned.hap?.dispose();
    owned = {};
    await wipe(raw, `${prefix}/`);
  });

  /** Register and wait until HAProxy routes to every listed instance of web. */
  const routed = async (...instances: string[]) => {
    for (const i of instances) await registry.register('web', i, backends[i]!.address, { by: 'U1' });
    await waitFor(`${instances.join(', ')} routed`, async () => {
      const seen = await whoAnswers(url, 2 * instances.length + 2);
      return instances.every((i) => seen.has(i));
    });
  };

  it('routes registered servers, without a reload when the backend exists; deregistered ones stop', async () => {
    const { 'web-1': w1, 'web-2': w2 } = backends as Record<string, HttpBackend>;
    // Start-up renders the configured service's frontend and backend: a reload.
    const startup = await waitFor('start-up apply', () => running.results[0]);
    expect(startup).toMatchObject({ agentId: 'lb-1', ok: true, method: 'reload' });
    await registry.register('web', 'web-1', w1!.address, { by: 'U1' });
    await waitFor('web-1 routed', async () => (await httpGet(url).catch(() => undefined))?.body === 'web-1');
    expect(await resultAfter(1, (x) => x.changes.includes('+web-1'))).toMatchObject({ method: 'runtime' });
    const worker = await hap.workerPid();

    const n = running.results.length;
    await registry.register('web', 'web-2', w2!.address, { by: 'U1' });
    await waitFor('web-2 routed', async () => (await whoAnswers(url, 2)).has('web-2'));
    const r = await resultAfter(n, (x) => x.changes.includes('+web-2'));
    expect(r).toMatchObject({ method: 'runtime', ok: true, changes: ['+web-2'] });
    expect(await hap.workerPid()).toBe(worker);
    expect(running.feed[running.feed.length - 1]).toMatch(/^haproxy lb-1: runtime \+web-2 in [\d.]+ ms$/);

    // The status key: the last result, on a lease.
    const stored = await waitFor('status key', async () => {
      const v = JSON.parse((await raw.get(`${prefix}/switchyard/agents/lb-1`).string()) ?? '{}') as { changes?: string[] };
      return v.changes?.includes('+web-2') ? v : undefined;
    });
    expect(stored).toMatchObject({ agentId: 'lb-1', method: 'runtime', ok: true, changes: ['+web-2'] });
    const lease = (await raw.getAll().prefix(`${prefix}/switchyard/agents/`).exec()).kvs[0]?.lease;
    expect(lease && lease !== '0').toBeTruthy();

    await registry.deregister('web', 'web-1');
    await waitFor('web-1 gone', async () => names(await whoAnswers(url, 4)).join() === 'web-2');
    expect(await hap.workerPid()).toBe(worker);
    await waitFor('feed says −web-1', () => running.feed.some((t) => /^haproxy lb-1: runtime −web-1 in/.test(t)));
  });

  it('drain keeps an open request alive while new ones go elsewhere; undrain restores', async () => {
    const { 'web-2': w2 } = backends as Record<string, HttpBackend>;
    // Only web-2 is registered: the long request lands there.
    await routed('web-2');
    // Settled at once: if the test fails before awaiting it, its end (the afterEach stopping
    // HAProxy) is not an unhandled rejection that fails the run a second time.
    const held = httpGet(`${url}slow`, { timeoutMs: 10_000 }).then(
      (r) => r,
      (err: unknown) => err as Error,
    );
    await waitFor('session on web-2', async () => (await hap.runtime.showStat()).find((s) => s.backend === 'web' && s.name === 'web-2')?.scur === 1);
    await routed('web-3');

    const worker = await hap.workerPid();
    await registry.setState('web', 'web-2', 'drain', 'U1');
    await waitFor('web-2 DRAIN', async () => (await hap.runtime.showStat()).find((s) => s.name === 'web-2')?.status === 'DRAIN');
    expect(names(await whoAnswers(url, 6))).toEqual(['web-3']);
    expect((await hap.runtime.showStat()).find((s) => s.name === 'web-2')?.scur).toBe(1);
    w2!.release();
    expect(await held).toEqual({ status: 200, body: 'web-2' });
    expect(await hap.workerPid()).toBe(worker);
    await waitFor('feed says drain', () => running.feed.some((t) => /^haproxy lb-1: runtime web-2 drain in/.test(t)));

    await registry.setState('web', 'web-2', 'ready', 'U1');
    await waitFor('web-2 back', async () => (await whoAnswers(url, 4)).has('web-2'));
    expect(await hap.workerPid()).toBe(worker);
  });

  it('HAProxy changed behind its back: the next change is sent at once and HAProxy is then put where the registry says', async () => {
    await routed('web-1', 'web-2');
    const worker = await hap.workerPid();
    const server = async (name: string) => (await hap.runtime.showServersState('web')).find((r) => r.name === name);
    // Someone else's hand on the admin socket: web-1 forced into maintenance, web-2 deleted.
    await hap.runtime.setServerState('web', 'web-1', 'maint');
    await hap.runtime.setServerState('web', 'web-2', 'maint');
    await hap.runtime.delServer('web', 'web-2');
    expect(await server('web-2')).toBeUndefined();

    // The agent's baseline still says both are ready: its commands for web-3 go out first,
    // then HAProxy's own state shows the rest to put right.
    let n = running.results.length;
    await routed('web-3');
    await waitFor('web-1 and web-2 back in rotation', async () => {
      const seen = await whoAnswers(url, 9);
      return ['web-1', 'web-2', 'web-3'].every((i) => seen.has(i));
    });
    const fixed = await resultAfter(n, (x) => x.changes.includes('+web-3'));
    expect(fixed).toMatchObject({ ok: true, method: 'runtime' });

    // A command the baseline makes wrong (a weight for a server HAProxy no longer has) is
    // refused; the read that follows adds the server, with the new weight, and no reload.
    await hap.runtime.setServerState('web', 'web-3', 'maint');
    await hap.runtime.delServer('web', 'web-3');
    n = running.results.length;
    await registry.register('web', 'web-3', backends['web-3']!.address, { by: 'U1', weight: 42 });
    const readded = await resultAfter(n, (x) => x.changes.includes('web-3 weight 42'));
    expect(readded).toMatchObject({ ok: true, method: 'runtime' });
    expect((await server('web-3'))?.uweight).toBe(42);
    await waitFor('web-3 routed again', async () => (await whoAnswers(url, 9)).has('web-3'));
    expect(await hap.workerPid()).toBe(worker);
  });

  it('drain survives a reload (server-state-file)', async () => {
    await routed('web-2', 'web-3');
    await registry.setState('web', 'web-2', 'drain', 'U1');
    await waitFor('web-2 DRAIN', async () => (await hap.runtime.showStat()).find((s) => s.name === 'web-2')?.status === 'DRAIN');
    const worker = await hap.workerPid();
    const n = running.results.length;
    // A new service is a new backend: a reload.
    await registry.register('api', 'api-1', backends['api-1']!.address, { by: 'U1' });
    const r = await resultAfter(n, (x) => x.method === 'reload', 'a reload');
    expect(r).toMatchObject({ ok: true, changes: ['+backend api', '+api-1'] });
    expect(await hap.workerPid()).not.toBe(worker);
    // Saved just before the reload: web-2 with the forced-drain bit (0x08) in srv_admin_state.
    const state = await readFile(hap.stateFile, 'utf8');
    const fields = state
      .split('\n')
      .map((l) => l.split(' '))
      .find((f) => f[1] === 'web' && f[3] === 'web-2');
    expect(Number(fields?.[6]) & 0x08).toBe(0x08);
    expect((await hap.runtime.showStat()).find((s) => s.backend === 'web' && s.name === 'web-2')?.status).toBe('DRAIN');
    expect(names(await whoAnswers(url, 6))).toEqual(['web-3']);
    expect(running.feed[running.feed.length - 1]).toMatch(/^haproxy lb-1: reload OK in \d+ ms \(\+backend api \+api-1\)$/);
    await registry.setState('web', 'web-2', 'ready', 'U1');
    await waitFor('web-2 back', async () => (await whoAnswers(url, 4)).has('web-2'));
  });

  it('an invalid registry value is skipped and reported, with no reload and the live file unchanged', async () => {
    // The previous test's last change routes before the agent rewrites the file: start
    // from a file that already says everything the registry holds.
    await quiescent(running, hap);
    const before = await readFile(hap.config);
    const worker = await hap.workerPid();
    const n = running.results.length;
    await raw.put(`${prefix}/services/web/web-9`).value('999.1.1.1:80');
    try {
      const r = await resultAfter(n, (x) => (x.warnings ?? []).some((w) => w.includes('web-9')), 'a warning about web-9');
      // Nothing else was in flight (quiescent above): this apply had nothing to change.
      expect(r.method).toBe('none');
      expect(r.warnings?.join()).toMatch(/skipped ".*\/services\/web\/web-9": value "999\.1\.1\.1:80" is not host:port/);
      expect((await readFile(hap.config)).equals(before)).toBe(true);
      expect(await hap.workerPid()).toBe(worker);
    } finally {
      // Cleaned up even on failure, so the next test does not inherit the warning.
      await raw.delete().key(`${prefix}/services/web/web-9`).exec();
    }
  });

  it('a registry key with a newline is reported quoted, so it cannot forge a line of its own', async () => {
    const key = `${prefix}/services/web/web-x\n[ALERT] forged`;
    const n = running.results.length;
    await raw.put(key).value('127.0.0.1:1');
    try {
      const r = await resultAfter(n, (x) => (x.warnings ?? []).some((w) => w.includes('forged')), 'a warning about the key');
      const warning = r.warnings!.find((w) => w.includes('forged'))!;
      expect(warning).toBe(
        `skipped ${JSON.stringify(key)}: instance name ${JSON.stringify('web-x\n[ALERT] forged')} is invalid (must match ${NAME_RE.source})`,
      );
      const fed = await waitFor('the feed line', () => running.feed.find((t) => t.includes('forged')));
      expect(fed).not.toMatch(/[\n\r]/);
    } finally {
      await raw.delete().key(key).exec();
    }
  });

  it('a broken template is not applied: no reload, live config byte-identical, haproxy error reported', async () => {
    await quiescent(running, hap);
    const before = await readFile(hap.config);
    const worker = await hap.workerPid();
    const good = await readFile(templatePath, 'utf8');
    const n = running.results.length;
    await writeFile(templatePath, good.replace('balance {{balance}}', 'balance nonsense'));
    await running.agent.refreshTemplate();
    const r = await resultAfter(n, (x) => !x.ok, 'a failed apply');
    expect(r).toMatchObject({ method: 'reload', failure: 'check' });
    expect(r.error?.join('\n')).toMatch(/\[ALERT\] config : parsing \[.*haproxy\.cfg:\d+\] : balance only supports/);
    expect(running.feed[running.feed.length - 1]).toMatch(/^haproxy lb-1: check FAILED: .*balance only supports.* — kept last good config$/);
    expect((await readFile(hap.config)).equals(before)).toBe(true);
    expect(await hap.workerPid()).toBe(worker);

    // A template that does not even compile (SIGHUP): reported like a failed check, in the
    // agent's key too, and nothing is touched.
    const k = running.results.length;
    await writeFile(templatePath, '{{#each services}}\n');
    await running.agent.refreshTemplate();
    const parse = await resultAfter(k, (x) => !x.ok && x.failure === 'render', 'a failed template load');
    expect(parse.error?.[0]).toMatch(new RegExp(`^template does not compile: ${templatePath.replace(/[.]/g, '\\.')}:\\d+: `));
    expect(running.feed[running.feed.length - 1]).toMatch(/^haproxy lb-1: render FAILED: template does not compile: .* — kept last good config$/);
    const stored = await waitFor('the failure in the agent key', async () => {
      const v = JSON.parse((await raw.get(`${prefix}/switchyard/agents/lb-1`).string()) ?? '{}') as { ok?: boolean; failure?: string; error?: string[] };
      return v.failure === 'render' ? v : undefined;
    });
    expect(stored).toMatchObject({ ok: false, error: parse.error });
    expect((await readFile(hap.config)).equals(before)).toBe(true);
    expect(await hap.workerPid()).toBe(worker);

    await writeFile(templatePath, good);
    const m = running.results.length;
    await running.agent.refreshTemplate();
    await resultAfter(m, (x) => x.ok, 'recovery');
    // The good template renders what is live: nothing to reload.
    expect(await hap.workerPid()).toBe(worker);
  });
});
