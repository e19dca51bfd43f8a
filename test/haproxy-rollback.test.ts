/**
 * A reload that fails after the new config was renamed into place: the agent puts the last
 * good file back byte for byte, the old worker keeps serving, and the failure is reported
 * (the apply result, the agent's key in etcd, the feed line). Real etcd, real HAProxy 2.6.
 *
 * The failing config passes `haproxy -c` and the bind pre-flight (which only tries TCP
 * addresses): it binds a unix socket in a directory that does not exist, which HAProxy only
 * finds out when the master re-executes with it — after the rename.
 */
import { copyFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EtcdRegistry } from '../src/adapters/etcd/registry.js';
import { DEFAULT_TEMPLATE_PATH } from '../src/adapters/haproxy/template.js';
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
  type HttpBackend,
  type RunningAgent,
  type TestHaproxy,
} from './helpers/haproxy.js';

/** Liveness bound for one apply (a reload is ~0.1 s on an idle machine). */
const APPLIED_WITHIN_MS = 20_000;

describe('HAProxy reload failing after the rename (real etcd + haproxy)', () => {
  let raw: Etcd3;
  let prefix: string;
  let registry: EtcdRegistry;
  let hap: TestHaproxy;
  let backend: HttpBackend;
  let running: RunningAgent | undefined;
  let templatePath: string;
  let url: string;

  beforeEach(async () => {
    const endpoint = sharedEtcdEndpoint();
    raw = new Etcd3({ hosts: endpoint });
    prefix = uniquePrefix('rollback');
    registry = registryAt(endpoint, prefix);
    [hap, backend] = await Promise.all([startHaproxy(), startHttpBackend('web-1')]);
    const port = await freePort();
    url = `http://127.0.0.1:${port}/`;
    templatePath = join(hap.dir, 'haproxy.cfg.hbs');
    await copyFile(DEFAULT_TEMPLATE_PATH, templatePath);
    running = await startAgent(agentConfig(endpoint, prefix, hap, 'lb-rb', { web: { listen: `127.0.0.1:${port}` } }, templatePath), registry);
  });

  afterEach(async () => {
    await running?.agent.stop();
    await registry?.close();
    await hap?.dispose();
    await backend?.close();
    if (raw) {
      await wipe(raw, `${prefix}/`);
      raw.close();
    }
  });

  it('restores the last good config byte for byte, keeps the old worker serving, and reports the failure', async () => {
    const agent = running!;
    await registry.register('web', 'web-1', backend.address, { by: 'test' });
    await waitFor('web-1 routed', async () => (await httpGet(url).catch(() => undefined))?.body === 'web-1', APPLIED_WITHIN_MS);
    await quiescent(agent, hap);
    const before = await readFile(hap.config);
    const worker = await hap.workerPid();
    const failedBefore = (await hap.master.showProc()).master.failed ?? 0;
    const filesBefore = (await readdir(hap.dir)).sort();

    const good = await readFile(templatePath, 'utf8');
    const missingDir = join(hap.dir, 'no-such-dir');
    await writeFile(templatePath, `${good}\nfrontend unbindable\n    bind unix@${missingDir}/f.sock\n    default_backend web\n`);
    const n = agent.results.length;
    await agent.agent.refreshTemplate();
    const r = await waitFor('the failed reload', () => agent.results.slice(n).find((x) => !x.ok), APPLIED_WITHIN_MS);

    // It did get as far as the master: HAProxy counted a failed reload (so the file had been
    // renamed into place), and the agent says so.
    expect(r).toMatchObject({ method: 'reload', ok: false, failure: 'reload' });
    expect(r.error?.join('\n')).toMatch(/HAProxy reload failed: the master reports \d+ failed reload\(s\); worker \d+ kept serving/);
    expect((await hap.master.showProc()).master.failed ?? 0).toBeGreaterThan(failedBefore);
    // The last good config is back, byte for byte; no temp file is left beside it.
    expect((await readFile(hap.config)).equals(before)).toBe(true);
    expect((await readdir(hap.dir)).sort()).toEqual(filesBefore);
    // The old worker still serves the old config.
    expect(await hap.workerPid()).toBe(worker);
    expect(await httpGet(url)).toEqual({ status: 200, body: 'web-1' });
    // Reported where #ops and `status` read it, and in the feed line.
    const stored = await waitFor(
      'the failure in the agent key',
      async () => {
        const v = JSON.parse((await raw.get(`${prefix}/switchyard/agents/lb-rb`).string()) ?? '{}') as { ok?: boolean; failure?: string; error?: string[] };
        return v.failure === 'reload' ? v : undefined;
      },
      APPLIED_WITHIN_MS,
    );
    expect(stored).toMatchObject({ ok: false, error: r.error });
    expect(agent.feed.some((line) => /^haproxy lb-rb: reload FAILED: .* — kept last good config/.test(line))).toBe(true);

    // Fixed template: the agent converges again, through the master the failure left behind.
    await writeFile(templatePath, `${good}\nfrontend unbindable\n    bind unix@${hap.dir}/f.sock\n    default_backend web\n`);
    const m = agent.results.length;
    await agent.agent.refreshTemplate();
    const ok = await waitFor('a good reload', () => agent.results.slice(m).find((x) => x.ok && x.method === 'reload'), APPLIED_WITHIN_MS);
    expect(ok.worker).not.toBe(worker);
    expect(await hap.workerPid()).toBe(ok.worker);
    expect(await readFile(hap.config, 'utf8')).toContain(`bind unix@${hap.dir}/f.sock`);
    expect(await httpGet(url)).toEqual({ status: 200, body: 'web-1' });
  });
});
