/**
 * Issue-11 Swarm benchmarks, against a private dockerd made a single-node Swarm and a
 * private etcd:
 *  - `scale 0→10` (create/update the service, wait until every task runs and is registered)
 *    and `10→0` (drain each, update, wait until deregistered) vs `docker service scale` alone
 *    on an identical service, alternating, median of 3 each;
 *  - task death (`docker kill` of a task's container) → registration deleted, with the task
 *    watcher's poll as the backstop.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import pino from 'pino';
import { createDockerEngine, dockerodeOptions } from '../src/adapters/docker/index.js';
import { SwarmEngine } from '../src/adapters/docker/swarm.js';
import { createEtcdRegistry } from '../src/adapters/etcd/registry.js';
import { configSchema } from '../src/config/schema.js';
import type { OrchestratorDeps } from '../src/orchestrator/deps.js';
import { EtcdServiceLocks } from '../src/orchestrator/lock.js';
import { orchestratorSettings } from '../src/orchestrator/settings.js';
import { swarmBackendOf } from '../src/orchestrator/swarm/backend.js';
import { scaleSwarmService } from '../src/orchestrator/swarm/scale.js';
import { SwarmWatcher } from '../src/orchestrator/swarm/watcher.js';
import { buildBusyboxImage, startDockerd } from '../test/helpers/docker.js';
import { startEtcd } from '../test/helpers/etcd-server.js';
import { initSwarm } from '../test/helpers/swarm.js';
import { fmt, summarize, writeSection } from './lib.js';

const run = promisify(execFile);
const silent = pino({ level: 'silent' });
const WEB_CMD = ['/bin/sh', '-c', 'hostname >/www/index.html; trap "exit 0" TERM; /bin/busybox httpd -f -p 80 -h /www & wait'];
const N = 10;
const ROUNDS = 3;
const DEATH_SAMPLES = 20;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
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
  const dockerd = await startDockerd();
  const etcd = await startEtcd();
  const host = dockerd.host;
  const raw = new Dockerode(dockerodeOptions(host));
  const image = `switchyard-bench/web:${randomBytes(3).toString('hex')}`;
  const root = `/bench-${randomBytes(3).toString('hex')}`;
  const swarm = await initSwarm(host);
  try {
    await buildBusyboxImage(host, image);
    const config = configSchema.parse({
      etcd: { endpoints: [etcd.endpoint] },
      registry: { prefix: `${root}/services`, switchyardPrefix: `${root}/switchyard` },
      docker: { host, drainTimeout: '2s', startTimeout: '60s' },
      services: { web: { image, port: 80, cmd: WEB_CMD, maxReplicas: 50, backend: 'swarm' } },
    });
    const registry = createEtcdRegistry(config, { log: silent });
    const settings = { ...orchestratorSettings(config), drainGraceMs: 100 };
    const deps: OrchestratorDeps = {
      registry,
      engine: createDockerEngine({ host, log: silent }),
      swarm: new SwarmEngine(host, silent),
      locks: new EtcdServiceLocks(registry.client, {
        keyOf: (s) => registry.layout.lockKey(s),
        ttlMs: settings.lockTtlMs,
        endpoints: [etcd.endpoint],
        log: silent,
      }),
      feed: { publish: () => {} },
      notices: { publish: () => {} },
      config,
      settings,
      log: silent,
    };
    const backend = swarmBackendOf(deps)!;
    const scale = (replicas: number) => scaleSwarmService(backend, { service: 'web', replicas, actor: 'UBENCH', progress: () => {} });
    // The bare service: same spec, driven by the CLI alone.
    await run('docker', ['-H', host, 'service', 'create', '-d', '--name', 'bare', '--replicas', '0', '--publish', 'mode=host,target=80', image, ...WEB_CMD]);
    await scale(0); // nothing to create at 0; the first timed round includes the create, as a first `scale` does

    const upMs: number[] = [];
    const downMs: number[] = [];
    const bareUpMs: number[] = [];
    const bareDownMs: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      let t0 = performance.now();
      const up = await scale(N);
      upMs.push(performance.now() - t0);
      if (up.running.length !== N || (await registry.list('web')).instances.length !== N)
        throw new Error(`scale up: ${up.running.length} running; ${up.problems.join('; ')}`);
      t0 = performance.now();
      await scale(0);
      downMs.push(performance.now() - t0);

      t0 = performance.now();
      await run('docker', ['-H', host, 'service', 'scale', 'bare=10']);
      bareUpMs.push(performance.now() - t0);
      t0 = performance.now();
      await run('docker', ['-H', host, 'service', 'scale', 'bare=0']);
      bareDownMs.push(performance.now() - t0);
    }
    console.log(`swarm scale 0→${N}: ${upMs.map((x) => fmt(x, 0)).join(', ')} ms; docker service scale: ${bareUpMs.map((x) => fmt(x, 0)).join(', ')} ms`);
    console.log(`swarm scale ${N}→0: ${downMs.map((x) => fmt(x, 0)).join(', ')} ms; docker service scale: ${bareDownMs.map((x) => fmt(x, 0)).join(', ')} ms`);

    // Task death → registration deleted (the key's delete, seen by a watch).
    const watcher = new SwarmWatcher(backend, { reconcileIntervalMs: 600_000 });
    watcher.start();
    const deletedAt = new Map<string, number>();
    const watch = await registry.watch(`${root}/services/web`, {
      onEvents: (events) => {
        for (const e of events) if (e.type === 'delete') deletedAt.set(`${e.key}@${e.prevValue ?? ''}`, Date.now());
      },
      onResync: () => {},
    });
    const deregMs: number[] = [];
    try {
      await scale(4);
      while (deregMs.length < DEATH_SAMPLES) {
        const view = await backend.sync('web', 'bench');
        const t = view.view.running.find((x) => x.task.slot === 1 + (deregMs.length % 4));
        if (!t?.task.containerId) {
          await sleep(100);
          continue;
        }
        const key = `${root}/services/web/${t.instance}@${t.address}`;
        const killedAt = Date.now();
        await raw.getContainer(t.task.containerId).kill();
        await until('the key to be deleted', async () => deletedAt.has(key), 10_000);
        deregMs.push(deletedAt.get(key)! - killedAt);
        await until('the replacement to be registered', async () => (await registry.list('web')).instances.length === 4, 30_000, 50);
      }
    } finally {
      await watch.close();
      await watcher.close();
    }
    const dereg = summarize(deregMs);
    console.log(`task death → deregistered p50 ${fmt(dereg.p50, 0)} p99 ${fmt(dereg.p99, 0)} ms`);
    await scale(0);

    const up = median(upMs);
    const bareUp = median(bareUpMs);
    const down = median(downMs);
    const bareDown = median(bareDownMs);
    await writeSection(
      '11-swarm',
      'Swarm backend (issue 11)',
      [
        { metric: `swarm scale 0→${N} until every task runs and is registered, median of ${ROUNDS}`, value: `${fmt(up, 0)} ms`, target: '—', pass: undefined },
        {
          metric: `\`docker service scale bare=${N}\` (waits for convergence), median of ${ROUNDS}`,
          value: `${fmt(bareUp, 0)} ms`,
          target: '—',
          pass: undefined,
        },
        { metric: 'ratio scale up / docker service scale', value: fmt(up / bareUp, 2), target: '—', pass: undefined },
        {
          metric: `swarm scale ${N}→0 with drain (no local HAProxy: 100 ms grace each, in parallel), median of ${ROUNDS}`,
          value: `${fmt(down, 0)} ms`,
          target: '—',
          pass: undefined,
        },
        { metric: `\`docker service scale bare=0\`, median of ${ROUNDS}`, value: `${fmt(bareDown, 0)} ms`, target: '—', pass: undefined },
        { metric: `task container killed → registration deleted (n=${dereg.n}) p50`, value: `${fmt(dereg.p50, 0)} ms`, target: '—', pass: undefined },
        { metric: 'task container killed → registration deleted p99', value: `${fmt(dereg.p99, 0)} ms`, target: '≤ 2000 ms', pass: dereg.p99 <= 2000 },
      ],
      [
        '`npm run bench -- swarm` (bench/swarm.ts): private dockerd made a single-node Swarm (`--advertise-addr 127.0.0.1`), etcd on loopback, no HAProxy (routing to both HAProxies is not measured here).',
        `Rounds (ms): up ${upMs.map((x) => fmt(x, 0)).join(', ')} vs ${bareUpMs.map((x) => fmt(x, 0)).join(', ')}; down ${downMs.map((x) => fmt(x, 0)).join(', ')} vs ${bareDownMs.map((x) => fmt(x, 0)).join(', ')}. The first up round includes creating the service. 1-min load average ${fmt(loadBefore, 2)} before, ${fmt(loadavg()[0]!, 2)} after (${cpus().length} cores).`,
        "Death latency is measured from the `docker kill` call to the registration key's delete seen by an etcd watch; the watcher polls tasks every 500 ms and also looks on every service/container event.",
      ],
    );
    await registry.close();
  } finally {
    await swarm.leave().catch(() => undefined); // the engine is stopped next either way
    await etcd.dispose();
    await dockerd.stop();
  }
}

await main();
