/**
 * Issue-13 benchmarks (`switchyard watch`), against a private dockerd, a private etcd and a
 * real HAProxy driven by the agent:
 *  - `docker run -d -l switchyard.register=web -p 127.0.0.1::80` returns → the first request
 *    through HAProxy answered by that container;
 *  - `docker kill` → out of HAProxy's rotation;
 *  - watcher SIGKILL (a `switchyard watch` process, TTL 2 s) → all its keys gone.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import pino from 'pino';
import { dockerodeOptions } from '../src/adapters/docker/index.js';
import { createEtcdRegistry } from '../src/adapters/etcd/registry.js';
import { Watcher } from '../src/watch/watcher.js';
import { buildBusyboxImage, startDockerd, type DockerdProcess } from '../test/helpers/docker.js';
import { startEtcd } from '../test/helpers/etcd-server.js';
import { agentConfig, freePort, httpGet, startAgent, startHaproxy, type RunningAgent, type TestHaproxy } from '../test/helpers/haproxy.js';
import { fmt, summarize, writeSection } from './lib.js';

const run = promisify(execFile);
const silent = pino({ level: 'silent' });
const BIN = fileURLToPath(new URL('../bin/switchyard.js', import.meta.url));
const WEB_CMD = ['/bin/sh', '-c', 'hostname >/www/index.html; exec /bin/busybox httpd -f -p 80 -h /www'];
const SAMPLES = Number(process.env.WATCH_BENCH_SAMPLES ?? 50);
const KILL_ROUNDS = 3;
const KILL_CONTAINERS = 10;
const TTL_MS = 2000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(what: string, cond: () => Promise<boolean>, timeoutMs: number, pollMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(pollMs);
  }
}

async function main() {
  const loadBefore = loadavg()[0]!;
  const dockerd: DockerdProcess = await startDockerd();
  const host = dockerd.host;
  const etcd = await startEtcd();
  const raw = new Dockerode(dockerodeOptions(host));
  const image = `switchyard-bench/watch:${randomBytes(3).toString('hex')}`;
  const root = `/bench-${randomBytes(3).toString('hex')}`;
  const label = `switchyard.bench=${root}`;
  const dir = await mkdtemp(join(tmpdir(), 'sy-watch-bench-'));
  let hap: TestHaproxy | undefined;
  let agent: RunningAgent | undefined;
  let watcher: Watcher | undefined;
  const docker = (...args: string[]) => run('docker', ['-H', host, ...args]).then((r) => r.stdout.trim());
  try {
    await buildBusyboxImage(host, image);
    hap = await startHaproxy();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/`;
    const config = { etcd: { endpoints: [etcd.endpoint] }, registry: { prefix: `${root}/services`, switchyardPrefix: `${root}/switchyard` } };
    const registry = createEtcdRegistry(config, { log: silent });
    const watcherRegistry = createEtcdRegistry(config, { log: silent });
    agent = await startAgent(agentConfig(etcd.endpoint, root, hap, 'lb-bench', { web: { listen: `127.0.0.1:${port}` } }), registry);
    watcher = new Watcher({ registry: watcherRegistry, docker: raw, host: 'bench', advertise: '127.0.0.1', ttlMs: TTL_MS, log: silent });
    await watcher.start();

    const runWeb = (name: string, service = 'web') =>
      docker('run', '-d', '--name', name, '-l', label, '-l', `switchyard.register=${service}`, '-p', '127.0.0.1::80', image, ...WEB_CMD);
    // One container stays up throughout, so the backend exists and each change is a runtime one.
    await runWeb('base');
    await until('the base container routed', async () => (await httpGet(url, { timeoutMs: 1000 }).catch(() => ({ status: 0 }))).status === 200, 30_000, 20);

    const routedMs: number[] = [];
    const outMs: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const name = `w-${i}`;
      const id = await runWeb(name);
      const returned = performance.now();
      const short = id.slice(0, 12);
      // Round robin over two servers: the new one answers within a couple of requests once routed.
      await until(`${name} routed`, async () => (await httpGet(url, { timeoutMs: 1000 }).catch(() => ({ body: '' }))).body === short, 10_000, 0);
      routedMs.push(performance.now() - returned);
      const killed = performance.now();
      await docker('kill', id);
      await until(
        `${name} out of rotation`,
        async () => {
          const row = (await hap!.runtime.showStat()).find((r) => r.backend === 'web' && r.name === name);
          return row === undefined || row.status === 'MAINT';
        },
        10_000,
      );
      outMs.push(performance.now() - killed);
      await docker('rm', '-f', id);
    }
    const routed = summarize(routedMs);
    const out = summarize(outMs);
    console.log(
      `docker run → routed p50 ${fmt(routed.p50, 0)} p99 ${fmt(routed.p99, 0)} ms; docker kill → out of rotation p50 ${fmt(out.p50, 0)} p99 ${fmt(out.p99, 0)} ms`,
    );
    await watcher.stop();
    watcher = undefined;

    // Watcher SIGKILL: a `switchyard watch` process, its keys left to expire with its lease.
    const cfg = join(dir, 'switchyard.yaml');
    await writeFile(
      cfg,
      `etcd:\n  endpoints: [${etcd.endpoint}]\nregistry:\n  prefix: ${root}/services\n  switchyardPrefix: ${root}/switchyard\ndocker:\n  host: ${host}\nwatch:\n  advertise: 127.0.0.1\n  ttl: ${TTL_MS}ms\n  host: killed\n`,
    );
    for (let i = 0; i < KILL_CONTAINERS; i++) await runWeb(`bulk-${i}`, 'bulk');
    const goneMs: number[] = [];
    for (let round = 0; round < KILL_ROUNDS; round++) {
      const child = spawn(process.execPath, [BIN, 'watch', '--config', cfg], { stdio: 'ignore' });
      await until('the process watcher to register everything', async () => (await registry.list('bulk')).instances.length === KILL_CONTAINERS, 60_000, 50);
      const exited = new Promise((r) => child.once('exit', r));
      const t0 = performance.now();
      child.kill('SIGKILL');
      await exited;
      await until('its keys to expire', async () => (await registry.list('bulk')).instances.length === 0, 5 * TTL_MS + 10_000, 10);
      goneMs.push(performance.now() - t0);
    }
    const gone = summarize(goneMs);
    console.log(`watcher SIGKILL → keys gone: ${goneMs.map((x) => fmt(x, 0)).join(', ')} ms (TTL ${TTL_MS} ms)`);

    await writeSection(
      '13-watch',
      'switchyard watch (issue 13)',
      [
        {
          metric: `\`docker run -d\` returns → first request routed through HAProxy (n=${routed.n}) p50`,
          value: `${fmt(routed.p50, 0)} ms`,
          target: '—',
          pass: undefined,
        },
        { metric: '`docker run -d` returns → first request routed p99', value: `${fmt(routed.p99, 0)} ms`, target: '≤ 1000 ms', pass: routed.p99 <= 1000 },
        { metric: `\`docker kill\` → out of HAProxy's rotation (n=${out.n}) p50`, value: `${fmt(out.p50, 0)} ms`, target: '—', pass: undefined },
        { metric: "`docker kill` → out of HAProxy's rotation p99", value: `${fmt(out.p99, 0)} ms`, target: '≤ 1000 ms', pass: out.p99 <= 1000 },
        {
          metric: `watcher SIGKILL → all its ${KILL_CONTAINERS} keys gone (TTL ${TTL_MS / 1000} s, worst of ${gone.n})`,
          value: `${fmt(gone.max, 0)} ms`,
          target: `≤ ${TTL_MS + 1000} ms`,
          pass: gone.max <= TTL_MS + 1000,
        },
      ],
      [
        '`npm run bench -- watch` (bench/watch.ts): private dockerd (userland proxy), etcd on loopback, HAProxy + agent in-process, the watcher in-process for the first two rows and as a `switchyard watch` process for the third.',
        `"Routed" = a request through HAProxy answered by the new container (two servers in round robin); "out of rotation" = gone from \`show stat\` or in MAINT. Samples run one after another; both are timed around the \`docker\` CLI call (its process start included). On SIGKILL the watcher acts on Docker's \`kill\` event rather than waiting for \`die\`, which comes after the container's teardown. SIGKILL rounds (ms): ${goneMs.map((x) => fmt(x, 0)).join(', ')}; etcd checks lease expiry about every 500 ms, hence up to TTL + 0.5 s.`,
        `1-min load average ${fmt(loadBefore, 2)} before, ${fmt(loadavg()[0]!, 2)} after (${cpus().length} cores, shared with other work).`,
      ],
    );
    await watcherRegistry.close();
    await registry.close();
  } finally {
    await watcher?.stop().catch(() => undefined);
    await agent?.agent.stop();
    await hap?.dispose();
    const ours = await raw.listContainers({ all: true, filters: { label: [label] } }).catch(() => []);
    await Promise.all(
      ours.map((c) =>
        raw
          .getContainer(c.Id)
          .remove({ force: true })
          .catch(() => undefined),
      ),
    );
    await rm(dir, { recursive: true, force: true });
    await etcd.dispose();
    await dockerd.stop();
  }
}

await main();
