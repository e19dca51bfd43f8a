/**
 * The agent's command-line entry points as processes: `switchyard agent` converges a
 * registration into HAProxy and withdraws its status key on SIGTERM; `render --once
 * --dry-run` prints and changes nothing; `render --once` applies; `check` reports the
 * template's file:line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { EtcdRegistry } from '../src/adapters/etcd/registry.js';
import { sharedEtcdEndpoint, uniquePrefix, wipe } from './helpers/etcd.js';
import { DEFAULT_TEMPLATE_PATH } from '../src/adapters/haproxy/template.js';
import {
  freePort,
  httpGet,
  prepareHaproxy,
  registryAt,
  startHaproxy,
  startHttpBackend,
  waitFor,
  whoAnswers,
  type HttpBackend,
  type TestHaproxy,
} from './helpers/haproxy.js';

const BIN = fileURLToPath(new URL('../bin/switchyard.js', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function start(args: string[]): { child: ChildProcess; done: Promise<Run>; stderr: () => string } {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Run>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, done, stderr: () => stderr };
}

/**
 * waitFor a sign from a process just spawned, with its stderr so far in the failure. The
 * bound covers node's start-up, which takes tens of seconds on a loaded 2-core machine.
 */
const waitForProcess = <T>(proc: { stderr: () => string }, what: string, probe: Parameters<typeof waitFor<T>>[1]) =>
  waitFor(what, probe, 60_000, 50).catch((err: unknown) => {
    throw new Error(`${String(err)}\n--- process stderr:\n${proc.stderr().slice(-4000)}`);
  });

const run = (args: string[]) => start(args).done;

// Every test spawns node processes (a few seconds each on a loaded 2-core machine).
describe('switchyard agent / render / check (processes, real etcd + haproxy)', { timeout: 120_000 }, () => {
  let dir: string;
  let configPath: string;
  let hap: TestHaproxy;
  let raw: Etcd3;
  let registry: EtcdRegistry;
  let prefix: string;
  let url: string;
  let w1: HttpBackend;
  let w2: HttpBackend;
  let agent: ChildProcess | undefined;
  let endpoint: string;
  /** This test's HAProxy and registry, for afterEach (unset when they did not start). */
  let owned: { hap?: TestHaproxy; registry?: EtcdRegistry; dir?: string } = {};

  const agentKey = () => raw.get(`${prefix}/switchyard/agents/cli-1`).string();

  beforeAll(async () => {
    endpoint = sharedEtcdEndpoint();
    raw = new Etcd3({ hosts: endpoint });
    [w1, w2] = await Promise.all([startHttpBackend('web-1'), startHttpBackend('web-2')]);
  });

  afterAll(async () => {
    await Promise.all([w1?.close(), w2?.close()]);
    raw?.close();
  });

  // A fresh HAProxy (bootstrap config), registry prefix and config dir per test.
  beforeEach(async () => {
    owned = {};
    prefix = uniquePrefix('cli');
    registry = owned.registry = registryAt(endpoint, prefix);
    hap = owned.hap = await startHaproxy();
    const port = await freePort();
    url = `http://127.0.0.1:${port}/`;
    dir = owned.dir = await mkdtemp(join(tmpdir(), 'switchyard-cli-agent-'));
    await writeFile(join(dir, 'acl.yaml'), 'rules:\n  - allow: [help]\n    users: ["*"]\n');
    const config = (template?: string) =>
      [
        `etcd: { endpoints: [${endpoint}] }`,
        `registry: { prefix: ${prefix}/services, switchyardPrefix: ${prefix}/switchyard }`,
        'acl: { path: ./acl.yaml }',
        'haproxy:',
        `  config: ${hap.config}`,
        `  adminSocket: ${hap.adminSocket}`,
        `  masterSocket: ${hap.masterSocket}`,
        `  binary: ${hap.binary}`,
        '  agentId: cli-1',
        ...(template ? [`  template: ${template}`] : []),
        'services:',
        `  web: { image: test, port: 80, listen: 127.0.0.1:${port} }`,
        '',
      ].join('\n');
    configPath = join(dir, 'switchyard.yaml');
    await writeFile(configPath, config());
    await writeFile(join(dir, 'broken.yaml'), config('./broken.hbs'));
    await writeFile(join(dir, 'broken.hbs'), 'global\n{{#each services}}\n  backend {{name}\n{{/each}}\n');
  });

  afterEach(async () => {
    if (agent && agent.exitCode === null) agent.kill('SIGKILL');
    agent = undefined;
    await owned.registry?.close();
    await owned.hap?.dispose();
    if (owned.dir) await rm(owned.dir, { recursive: true, force: true });
    owned = {};
    await wipe(raw, `${prefix}/`);
  });

  /** web-1 registered and applied by one `render --once`: HAProxy routes it. */
  const web1Applied = async () => {
    await registry.register('web', 'web-1', w1.address, { by: 'U1' });
    const applied = await run(['render', '--once', '--config', configPath]);
    expect(applied.code, applied.stderr).toBe(0);
    await waitFor('web-1 routed', async () => (await httpGet(url).catch(() => undefined))?.body === 'web-1');
  };

  it('`switchyard agent` converges a registration into HAProxy and withdraws its status on SIGTERM', async () => {
    const proc = start(['agent', '--config', configPath]);
    agent = proc.child;
    await registry.register('web', 'web-1', w1.address, { by: 'U1' });
    await waitForProcess(proc, 'web-1 routed through the agent process', async () => (await httpGet(url).catch(() => undefined))?.body === 'web-1');
    const status = JSON.parse(await waitFor('status key', async () => (await agentKey()) ?? undefined)) as { agentId?: string; ok?: boolean };
    expect(status).toMatchObject({ agentId: 'cli-1', ok: true });
    agent.kill('SIGTERM');
    const { code, stderr } = await proc.done;
    expect(code).toBe(0);
    expect(stderr).toMatch(/"msg":"haproxy agent started"/);
    expect(await agentKey()).toBeNull();
  });

  it('`render --once --dry-run` prints the config and its check, and changes nothing', async () => {
    await web1Applied();
    await registry.register('web', 'web-2', w2.address, { by: 'U1' });
    const before = await readFile(hap.config);
    const worker = await hap.workerPid();
    const { code, stdout, stderr } = await run(['render', '--once', '--dry-run', '--config', configPath]);
    expect(stderr).toContain(`haproxy -c: valid (dry run: ${hap.config} was not touched)`);
    expect(code).toBe(0);
    expect(stdout).toContain(`    server web-2 ${w2.address} check inter 2000 weight 100\n`);
    expect(stdout).toMatch(/^# Generated by switchyard/);
    expect((await readFile(hap.config)).equals(before)).toBe(true);
    expect(await hap.workerPid()).toBe(worker);
    expect([...(await whoAnswers(url, 4)).keys()]).toEqual(['web-1']);
  });

  it('`render --once` applies once and exits 0; `check` reports a broken template with file:line', async () => {
    await registry.register('web', 'web-2', w2.address, { by: 'U1' });
    const applied = await run(['render', '--once', '--config', configPath]);
    expect(applied.stdout).toMatch(/^haproxy cli-1: (runtime|reload OK) .*\n$/);
    expect(applied.code).toBe(0);
    await waitFor('web-2 routed', async () => (await whoAnswers(url, 4)).has('web-2'));
    expect(await readFile(hap.config, 'utf8')).toContain(`server web-2 ${w2.address}`);

    const checked = await run(['check', '--config', join(dir, 'broken.yaml')]);
    expect(checked.code, checked.stderr).toBe(1);
    expect(checked.stderr).toMatch(/the HAProxy template .*broken\.hbs is invalid/);
    expect(checked.stderr).toMatch(/broken\.hbs:\d+: /);
  });
});

/**
 * First boot on a host whose HAProxy is not running yet (the confd `-onetime` boot order):
 * the file is rendered, validated and written without HAProxy, HAProxy starts from it,
 * and the agent converges through the runtime API from there.
 */
describe('first boot: HAProxy not running yet (processes, real etcd + haproxy)', { timeout: 120_000 }, () => {
  let dir: string;
  let configPath: string;
  let badPath: string;
  /** The same config with a copy of the shipped template, to edit under a running agent. */
  let hupPath: string;
  let hupTemplate: string;
  let hap: TestHaproxy;
  let raw: Etcd3;
  let registry: EtcdRegistry;
  let prefix: string;
  let url: string;
  let w1: HttpBackend;
  let w2: HttpBackend;
  let agent: ChildProcess | undefined;

  const agentKey = async () => {
    const v = await raw.get(`${prefix}/switchyard/agents/boot-1`).string();
    return v === null ? undefined : (JSON.parse(v) as { ok?: boolean; failure?: string; error?: string[] });
  };
  const tempFiles = async () => (await readdir(hap.dir)).filter((f) => f.endsWith('.tmp'));
  let endpoint: string;
  /** This test's HAProxy, registry and dir, for afterEach (unset when they did not start). */
  let owned: { hap?: TestHaproxy; registry?: EtcdRegistry; dir?: string } = {};

  beforeAll(async () => {
    endpoint = sharedEtcdEndpoint();
    raw = new Etcd3({ hosts: endpoint });
    [w1, w2] = await Promise.all([startHttpBackend('web-1'), startHttpBackend('web-2')]);
  });

  afterAll(async () => {
    await Promise.all([w1?.close(), w2?.close()]);
    raw?.close();
  });

  // Per test: a host on first boot — HAProxy prepared but not running, no haproxy.cfg yet.
  beforeEach(async () => {
    owned = {};
    prefix = uniquePrefix('boot');
    registry = owned.registry = registryAt(endpoint, prefix);
    hap = owned.hap = await prepareHaproxy();
    const port = await freePort();
    url = `http://127.0.0.1:${port}/`;
    dir = owned.dir = await mkdtemp(join(tmpdir(), 'switchyard-first-boot-'));
    await writeFile(join(dir, 'acl.yaml'), 'rules:\n  - allow: [help]\n    users: ["*"]\n');
    const config = (template?: string) =>
      [
        `etcd: { endpoints: [${endpoint}] }`,
        `registry: { prefix: ${prefix}/services, switchyardPrefix: ${prefix}/switchyard }`,
        'acl: { path: ./acl.yaml }',
        'haproxy:',
        `  config: ${hap.config}`,
        `  adminSocket: ${hap.adminSocket}`,
        `  masterSocket: ${hap.masterSocket}`,
        `  binary: ${hap.binary}`,
        '  agentId: boot-1',
        ...(template ? [`  template: ${template}`] : []),
        // Routed only: instances are registered by hand, nothing to scale.
        'services:',
        `  web: { listen: 127.0.0.1:${port} }`,
        '',
      ].join('\n');
    configPath = join(dir, 'switchyard.yaml');
    badPath = join(dir, 'bad.yaml');
    hupPath = join(dir, 'hup.yaml');
    hupTemplate = join(dir, 'hup.hbs');
    const shipped = await readFile(DEFAULT_TEMPLATE_PATH, 'utf8');
    await writeFile(configPath, config());
    await writeFile(badPath, config('./bad.hbs'));
    await writeFile(join(dir, 'bad.hbs'), shipped.replace('balance {{balance}}', 'balance nonsense'));
    await writeFile(hupPath, config('./hup.hbs'));
    await writeFile(hupTemplate, shipped);
    await registry.register('web', 'web-1', w1.address, { by: 'U1' });
  });

  afterEach(async () => {
    if (agent && agent.exitCode === null) agent.kill('SIGKILL');
    agent = undefined;
    await owned.registry?.close();
    await owned.hap?.dispose();
    if (owned.dir) await rm(owned.dir, { recursive: true, force: true });
    owned = {};
    await wipe(raw, `${prefix}/`);
  });

  it('`render --once` refuses a candidate haproxy -c rejects: exit 1, nothing written', async () => {
    const r = await run(['render', '--once', '--config', badPath]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/balance only supports/);
    expect(existsSync(hap.config)).toBe(false);
    expect(await tempFiles()).toEqual([]);
  });

  it('`render --once` writes the validated config without HAProxy, says it did not reload, and HAProxy starts from it', async () => {
    const r = await run(['render', '--once', '--config', configPath]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      `haproxy boot-1: wrote ${hap.config} (haproxy -c: valid); HAProxy did not answer, so nothing was reloaded — start HAProxy from this file\n`,
    );
    expect(r.stderr).toMatch(/waiting for HAProxy: .*not reachable .*\((ENOENT|ECONNREFUSED)\)/);
    const written = await readFile(hap.config, 'utf8');
    expect(written).toContain(`    server web-1 ${w1.address} check inter 2000 weight 100\n`);
    expect(written).toMatch(/^frontend fe_web$/m);
    expect(await tempFiles()).toEqual([]);

    await hap.start();
    await waitFor('web-1 routed by HAProxy started from the file', async () => (await httpGet(url).catch(() => undefined))?.body === 'web-1', 10_000);
    // Run again with HAProxy up: now it says what it applied (nothing to change here).
    const again = await run(['render', '--once', '--config', configPath]);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe('haproxy boot-1: no change\n');
  });

  it('`switchyard agent` writes the file, reports "waiting for HAProxy" in its key, converges by runtime API once HAProxy starts; a template that does not parse on SIGHUP shows in its key', async () => {
    expect(existsSync(hap.config)).toBe(false);
    const proc = start(['agent', '--config', hupPath]);
    agent = proc.child;
    const waiting = await waitForProcess(proc, '"waiting for HAProxy" in the agent key', async () => {
      const v = await agentKey();
      return v?.failure === 'unavailable' ? v : undefined;
    });
    expect(waiting.ok).toBe(false);
    expect(waiting.error?.[0]).toMatch(/^waiting for HAProxy: /);
    expect(await readFile(hap.config, 'utf8')).toContain(`server web-1 ${w1.address} `);

    await hap.start();
    const worker = await hap.workerPid();
    await waitFor('the agent sees HAProxy', async () => (await agentKey())?.ok === true, 20_000, 50);
    await registry.register('web', 'web-2', w2.address, { by: 'U1' });
    await waitFor('web-2 routed', async () => (await whoAnswers(url, 4)).has('web-2'), 20_000, 50);
    expect(await hap.workerPid()).toBe(worker);
    await waitFor('web-2 in the file', async () => (await readFile(hap.config, 'utf8')).includes(`server web-2 ${w2.address} `));

    // SIGHUP with a template that does not parse: refused like a failed haproxy -c, in the key.
    const live = await readFile(hap.config);
    const good = await readFile(hupTemplate, 'utf8');
    await writeFile(hupTemplate, 'global\n{{#each services}}\n');
    agent.kill('SIGHUP');
    const refused = await waitFor(
      'the refusal in the agent key',
      async () => {
        const v = await agentKey();
        return v?.failure === 'render' ? v : undefined;
      },
      20_000,
      50,
    );
    expect(refused.ok).toBe(false);
    expect(refused.error?.[0]).toMatch(/^template does not compile: .*hup\.hbs:\d+: /);
    expect((await readFile(hap.config)).equals(live)).toBe(true);
    expect(await hap.workerPid()).toBe(worker);
    await writeFile(hupTemplate, good);
    agent.kill('SIGHUP');
    await waitFor('the agent key ok again', async () => (await agentKey())?.ok === true, 20_000, 50);
    expect(await hap.workerPid()).toBe(worker);

    agent.kill('SIGTERM');
    const { code } = await proc.done;
    expect(code).toBe(0);
    expect(await agentKey()).toBeUndefined();
  });
});
