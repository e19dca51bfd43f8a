/**
 * `render [--diff] [--apply]` through the router with an in-process agent: real etcd,
 * real HAProxy 2.6.
 */
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_TEMPLATE_PATH } from '../src/adapters/haproxy/template.js';
import { agentRouter, type AgentRouter } from './helpers/agent-router.js';
import { httpGet, startHttpBackend, waitFor, whoAnswers, type HttpBackend } from './helpers/haproxy.js';

const cells = (r: { tables?: { table: { header: string[]; rows: string[][] } }[] }) =>
  (r.tables ?? []).flatMap((t) => [t.table.header[0] ?? '', ...t.table.rows.map((row) => row[0] ?? '')]);

describe('render (real etcd + haproxy, in-process agent)', () => {
  let fx: AgentRouter;
  /** The fixture this test started, for afterEach (unset when beforeEach failed before it). */
  let owned: AgentRouter | undefined;
  let backends: HttpBackend[];
  /** Each test's own copy of the template (in its own temp dir), its own HAProxy, agent and prefix. */
  let dir: string | undefined;
  let template: string;
  let goodTemplate: string;

  beforeAll(async () => {
    backends = await Promise.all([startHttpBackend('web-1'), startHttpBackend('web-2')]);
  });

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchyard-render-'));
    template = join(dir, 'haproxy.cfg.hbs');
    await copyFile(DEFAULT_TEMPLATE_PATH, template);
    goodTemplate = await readFile(template, 'utf8');
    fx = await agentRouter('lb-render', { template });
    owned = fx;
    await fx.registry.register('web', 'web-1', backends[0]!.address, { by: 'U1' });
    await waitFor('web-1 routed', async () => (await httpGet(fx.url).catch(() => undefined))?.body === 'web-1');
    // Traffic moves first; the agent writes the file right after.
    await waitFor('web-1 in the live file', async () => (await readFile(fx.hap.config, 'utf8')).includes(`server web-1 `));
  });

  afterEach(async () => {
    await owned?.dispose();
    owned = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  /** The agent's last apply result as stored in etcd ({} when there is none). */
  const agentKey = async () =>
    JSON.parse((await fx.raw.get(`${fx.prefix}/switchyard/agents/lb-render`).string()) ?? '{}') as { ok?: boolean; failure?: string; error?: string[] };

  afterAll(async () => {
    await Promise.all((backends ?? []).map((b) => b.close()));
  });

  it('shows the candidate config, identical to the live one once the agent has applied it', async () => {
    const r = await fx.run('render');
    expect(r).toMatchObject({ ok: true, summary: 'haproxy.cfg as the registry would produce it (agent lb-render): identical to the live config' });
    const lines = cells(r);
    expect(lines[0]).toMatch(/^# .*haproxy\.cfg \(candidate, \d+ lines\)$/);
    expect(lines).toContain(`    server web-1 ${backends[0]!.address} check inter 500 weight 100`);
    expect((await fx.run('render --diff')).tables?.[0]?.table.header[0]).toMatch(/^# no difference/);
  });

  it('--diff shows what the template file on disk would change in the live config', async () => {
    await writeFile(template, goodTemplate.replace('defaults\n', 'defaults\n    # not loaded yet\n'));
    try {
      const diff = await fx.run('render --diff');
      expect(diff.summary).toMatch(/differs from the live config$/);
      expect(diff.details?.[0]).toMatch(/^the template file changed since the agent loaded it/);
      const lines = cells(diff);
      expect(lines[0]).toMatch(/^--- .*haproxy\.cfg \(live\) {2}\+1 −0$/);
      expect(lines).toContain('+    # not loaded yet');
    } finally {
      await writeFile(template, goodTemplate);
    }
  });

  it('HAProxy down: a registry change is written for HAProxy to start from, --apply says it waits, and HAProxy back converges', async () => {
    const [, w2] = backends as [HttpBackend, HttpBackend];
    await fx.hap.stop();
    await fx.registry.register('web', 'web-2', w2.address, { by: 'U1' });
    await waitFor('web-2 in the file HAProxy will start from', async () => (await readFile(fx.hap.config, 'utf8')).includes(`server web-2 ${w2.address} `));
    expect((await fx.run('render --diff')).tables?.[0]?.table.header[0]).toMatch(/^# no difference/);
    const r = await fx.run('render --apply');
    expect(r).toMatchObject({ ok: false, code: 'E_UNAVAILABLE' });
    expect(r.summary).toMatch(/^haproxy lb-render: waiting for HAProxy: .* — will retry$/);
    // The key is written just after the reply's result: wait for it rather than race it.
    expect(await waitFor('"waiting" in the agent key', async () => (await agentKey()).failure === 'unavailable')).toBe(true);
    expect(await agentKey()).toMatchObject({ ok: false, error: [expect.stringMatching(/^waiting for HAProxy: /), expect.any(String)] });
    // HAProxy back, from that file: the agent converges by itself.
    await fx.hap.start();
    await waitFor('web-2 routed', async () => (await whoAnswers(fx.url, 4)).has('web-2'), 10_000);
    await waitFor('the agent key ok again', async () => (await agentKey()).ok === true);
  });

  it('--apply with an invalid template keeps the live config byte-identical and reports haproxy’s error', async () => {
    const before = await readFile(fx.hap.config);
    const worker = await fx.hap.workerPid();
    await writeFile(template, goodTemplate.replace('balance {{balance}}', 'balance nonsense'));
    const shown = await fx.run('render');
    expect(shown.details?.[0]).toMatch(/^the template file changed since the agent loaded it/);
    const r = await fx.run('render --apply');
    expect(r).toMatchObject({
      ok: false,
      code: 'E_CONFIG',
      summary: 'haproxy -c rejected the candidate config: nothing was applied, the live config is unchanged',
    });
    expect(r.details?.join('\n')).toMatch(/\[ALERT\] config : parsing \[.*haproxy\.cfg:\d+\] : balance only supports/);
    expect((await readFile(fx.hap.config)).equals(before)).toBe(true);
    expect(await fx.hap.workerPid()).toBe(worker);

    // A template that does not compile: file:line, nothing applied, and the agent reports
    // it like a failed check — in its key, so #ops and status show it.
    await writeFile(template, '{{#each services}}\n');
    const broken = await fx.run('render --apply');
    expect(broken).toMatchObject({ ok: false, code: 'E_CONFIG' });
    expect(broken.summary).toMatch(new RegExp(`^haproxy lb-render: render FAILED: template does not compile: ${template.replace(/[.]/g, '\\.')}:\\d+`));
    const key = await waitFor('the refusal in the agent key', async () => {
      const k = await agentKey();
      return k.failure === 'render' ? k : undefined;
    });
    expect(key.ok).toBe(false);
    expect(key.error?.[0]).toMatch(/^template does not compile: .*:\d+: /);
    const status = await fx.run('status');
    expect(JSON.stringify(status.tables)).toMatch(/"lb-render","FAILED","render FAILED: template does not compile/);
    expect((await readFile(fx.hap.config)).equals(before)).toBe(true);
    expect(await fx.hap.workerPid()).toBe(worker);
    await writeFile(template, goodTemplate);
  });

  it('--apply with an invalid registry value applies the rest and names the skipped key', async () => {
    const [, w2] = backends as [HttpBackend, HttpBackend];
    await fx.raw.put(`${fx.prefix}/services/web/web-9`).value('999.1.1.1:80');
    await fx.registry.register('web', 'web-2', w2.address, { by: 'U1' });
    const r = await fx.run('render --apply');
    expect(r).toMatchObject({ ok: true });
    expect(r.details?.join('\n')).toMatch(/skipped ".*\/services\/web\/web-9": value "999\.1\.1\.1:80" is not host:port/);
    // The valid registration beside it is applied: routed, and in the live file…
    await waitFor('web-2 routed', async () => (await whoAnswers(fx.url, 4)).has('web-2'));
    const live = await waitFor('web-2 in the live file', async () => {
      const text = await readFile(fx.hap.config, 'utf8');
      return text.includes(`server web-2 ${w2.address} `) ? text : undefined;
    });
    // …the invalid one is not, in any form.
    expect(live).not.toContain('web-9');
    expect(live).not.toContain('999.1.1.1');
    expect(live).toContain(`server web-1 ${backends[0]!.address} `);
  });

  it('--apply of a changed template validates, writes and reloads through the agent', async () => {
    await fx.registry.register('web', 'web-2', backends[1]!.address, { by: 'U1' });
    await waitFor('web-2 routed', async () => (await whoAnswers(fx.url, 4)).has('web-2'));
    await waitFor('web-2 in the live file', async () => (await readFile(fx.hap.config, 'utf8')).includes(`server web-2 `));
    const worker = await fx.hap.workerPid();
    await writeFile(template, goodTemplate.replace('defaults\n', 'defaults\n    # applied by render --apply\n'));
    const r = await fx.run('render --apply');
    expect(r).toMatchObject({ ok: true });
    expect(r.summary).toMatch(/^applied: haproxy lb-render: reload OK in \d+ ms \(template changed\)/);
    expect(await readFile(fx.hap.config, 'utf8')).toContain('# applied by render --apply');
    expect(await fx.hap.workerPid()).not.toBe(worker);
    expect(names(await whoAnswers(fx.url, 4))).toEqual(['web-1', 'web-2']);
    await writeFile(template, goodTemplate);
  });

  it('without an agent in this process, render says it needs haproxy: configured', async () => {
    const r = await fx.runWithoutAgent('render --diff');
    expect(r).toMatchObject({ ok: false, code: 'E_UNAVAILABLE' });
    expect(r.summary).toMatch(/^render needs haproxy: configured on this bot/);
  });
});

const names = (m: Map<string, number>) => [...m.keys()].sort();
