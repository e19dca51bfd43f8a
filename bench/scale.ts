/**
 * Issue-4 benchmarks, against a real Docker engine (a private dockerd, or
 * SWITCHYARD_TEST_DOCKER_HOST), a private etcd and, when haproxy is installed, a real
 * HAProxy driven by the agent:
 *  - scale 0→10 wall time vs the launch script it replaces, run sequentially 10 times
 *    (`docker run -d -p`, `docker port`, `etcdctl put`), in the same run, alternating,
 *    median of 3 each;
 *  - container death (docker kill) → registration gone, and → out of HAProxy's rotation.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import pino from 'pino';
import { createDockerEngine, dockerodeOptions, LABEL_OWNER } from '../src/adapters/docker/index.js';
import { createEtcdRegistry } from '../src/adapters/etcd/registry.js';
import { configSchema } from '../src/config/schema.js';
import type { OrchestratorDeps } from '../src/orchestrator/deps.js';
import { serverLookup } from '../src/agent/routing.js';
import { EtcdServiceLocks } from '../src/orchestrator/lock.js';
import { startOrchestrator } from '../src/orchestrator/orchestrator.js';
import { scaleService } from '../src/orchestrator/scaler.js';
import { orchestratorSettings } from '../src/orchestrator/settings.js';
import { buildBusyboxImage, startDockerd, type DockerdProcess } from '../test/helpers/docker.js';
import { etcdctl, startEtcd } from '../test/helpers/etcd-server.js';
import { agentConfig, freePort, startAgent, startHaproxy, type RunningAgent, type TestHaproxy } from '../test/helpers/haproxy.js';
import { fmt, summarize, writeSection } from './lib.js';

const run = promisify(execFile);
const silent = pino({ level: 'silent' });
const WEB_CMD = ['/bin/sh', '-c', 'hostname >/www/index.html; trap "exit 0" TERM; /bin/busybox httpd -f -p 80 -h /www & wait'];
const N = 10;
const ROUNDS = 3;
const DEATH_SAMPLES = 40;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(what: string, cond: () => Promise<boolean>, timeoutMs: number, pollMs = 2): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(pollMs);
  }
}

async function main() {
  const loadBefore = loadavg()[0]!;
  const external = process.env.SWITCHYARD_TEST_DOCKER_HOST;
  const dockerd: DockerdProcess | undefined = external ? undefined : await startDockerd();
  const host = external ?? dockerd!.host;
  const etcd = await startEtcd();
  let hap: TestHaproxy | undefined;
  let agent: RunningAgent | undefined;
  const raw = new Dockerode(dockerodeOptions(host));
  const image = `switchyard-bench/web:${randomBytes(3).toString('hex')}`;
  const root = `/bench-${randomBytes(3).toString('hex')}`;
  try {
    await buildBusyboxImage(host, image);
    try {
      hap = await startHaproxy();
    } catch (err) {
      console.error(`no HAProxy (${(err as Error).message}): measuring deregistration only`);
    }
    const listen = `127.0.0.1:${await freePort()}`;
    const config = configSchema.parse({
      etcd: { endpoints: [etcd.endpoint] },
      registry: { prefix: `${root}/services`, switchyardPrefix: `${root}/switchyard` },
      docker: { host, stopGrace: '2s', drainTimeout: '2s' },
      services: { web: { image, port: 80, hostIp: '127.0.0.1', cmd: WEB_CMD, maxReplicas: 50, listen } },
    });
    const registry = createEtcdRegistry(config, { log: silent });
    const settings = orchestratorSettings(config);
    const deps: OrchestratorDeps = {
      registry,
      engine: createDockerEngine({ host, log: silent }),
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
      ...(hap
        ? {
            haproxy: {
              agentId: 'bench',
              lookup: serverLookup(
                (
                  (h) => () =>
                    h.runtime.showStat()
                )(hap),
              ),
            },
          }
        : {}),
    };
    if (hap) agent = await startAgent(agentConfig(etcd.endpoint, root, hap, 'lb-bench', { web: { listen } }), registry);

    // 1. scale 0→10 vs the launch-script loop, alternating so both see the same machine state.
    const scaleMs: number[] = [];
    const seqMs: number[] = [];
    const floorMs: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      let t0 = performance.now();
      const r = await scaleService(deps, { service: 'web', replicas: N, actor: 'UBENCH', progress: () => {} });
      scaleMs.push(performance.now() - t0);
      if (r.failed.length) throw new Error(`scale failed: ${r.failed.map((f) => f.error.message).join('; ')}`);
      await scaleService(deps, { service: 'web', replicas: 0, actor: 'UBENCH', progress: () => {} });

      const owner = `bench-seq-${round}`;
      t0 = performance.now();
      for (let i = 0; i < N; i++) {
        const { stdout: id } = await run('docker', ['-H', host, 'run', '-d', '--label', `${LABEL_OWNER}=${owner}`, '-p', '127.0.0.1::80', image, ...WEB_CMD]);
        const { stdout: port } = await run('docker', ['-H', host, 'port', id.trim(), '80/tcp']);
        // What the launch script did to announce the instance (the confd-era layout, plain host:port).
        await etcdctl(etcd.endpoint, 'put', `${root}/services/seq/seq-${i}`, port.trim().split('\n')[0]!);
      }
      seqMs.push(performance.now() - t0);

      // Docker's own floor: the same N containers started in parallel, nothing else.
      const floorOwner = `bench-floor-${round}`;
      t0 = performance.now();
      await Promise.all(
        Array.from({ length: N }, () =>
          run('docker', ['-H', host, 'run', '-d', '--label', `${LABEL_OWNER}=${floorOwner}`, '-p', '127.0.0.1::80', image, ...WEB_CMD]),
        ),
      );
      floorMs.push(performance.now() - t0);

      // Label filters are ANDed: one listing per owner.
      const leftovers = (
        await Promise.all([owner, floorOwner].map((o) => raw.listContainers({ all: true, filters: { label: [`${LABEL_OWNER}=${o}`] } })))
      ).flat();
      await Promise.all(leftovers.map((c) => raw.getContainer(c.Id).remove({ force: true })));
      for (let i = 0; i < N; i++) await registry.deregister('seq', `seq-${i}`);
    }
    const scaleMed = median(scaleMs);
    const seqMed = median(seqMs);
    const floorMed = median(floorMs);
    const ratio = scaleMed / seqMed;
    const floorRatio = floorMed / seqMed;
    console.log(
      `scale 0→${N}: ${scaleMs.map((x) => fmt(x, 0)).join(', ')} ms; sequential: ${seqMs.map((x) => fmt(x, 0)).join(', ')} ms; ` +
        `parallel docker run: ${floorMs.map((x) => fmt(x, 0)).join(', ')} ms; ratio ${fmt(ratio, 2)} (floor ${fmt(floorRatio, 2)})`,
    );

    // 2. docker kill → deregistered (the key's delete, seen by a watch) and → out of HAProxy's rotation.
    const orch = startOrchestrator(deps);
    await orch.started;
    const deletedAt = new Map<string, number>();
    const watch = await registry.watch(`${root}/services`, {
      onEvents: (events) => {
        for (const e of events) if (e.type === 'delete') deletedAt.set(e.key, Date.now());
      },
      onResync: () => {},
    });
    const deregMs: number[] = [];
    const rotationMs: number[] = [];
    try {
      while (deregMs.length < DEATH_SAMPLES) {
        await scaleService(deps, { service: 'web', replicas: N, actor: 'UBENCH', progress: () => {} });
        const containers = (await deps.engine.listManaged(settings.owner, 'web')).filter((c) => c.status === 'running');
        if (hap) {
          const names = new Set(containers.map((c) => c.instance));
          await until(
            'HAProxy to have every server',
            async () => (await hap!.runtime.showStat()).filter((r) => r.backend === 'web' && names.has(r.name) && r.status !== 'MAINT').length === names.size,
            5000,
            20,
          );
        }
        // Keep one alive so the backend stays and the agent applies each removal at runtime.
        for (const c of containers.slice(1)) {
          if (deregMs.length >= DEATH_SAMPLES) break;
          const key = `${root}/services/web/${c.instance}`;
          const killedAt = Date.now();
          await raw.getContainer(c.id).kill();
          const out = hap
            ? until(
                'HAProxy to drop it',
                async () => {
                  const row = (await hap!.runtime.showStat()).find((r) => r.backend === 'web' && r.name === c.instance);
                  return row === undefined || row.status === 'MAINT';
                },
                5000,
              ).then(() => Date.now() - killedAt)
            : Promise.resolve(undefined);
          await until('the key to be deleted', async () => deletedAt.has(key), 5000);
          deregMs.push(deletedAt.get(key)! - killedAt);
          const r = await out;
          if (r !== undefined) rotationMs.push(r);
        }
        await scaleService(deps, { service: 'web', replicas: 0, actor: 'UBENCH', progress: () => {} });
      }
    } finally {
      await watch.close();
      await orch.close();
    }
    const dereg = summarize(deregMs);
    const rotation = rotationMs.length ? summarize(rotationMs) : undefined;
    console.log(
      `death → deregistered p50 ${fmt(dereg.p50, 0)} p99 ${fmt(dereg.p99, 0)} ms${rotation ? `; → out of HAProxy rotation p50 ${fmt(rotation.p50, 0)} p99 ${fmt(rotation.p99, 0)} ms` : ''}`,
    );

    await writeSection(
      '04-scale',
      'Scale and death detection (issue 4)',
      [
        {
          metric: `scale 0→${N} (create + start in parallel, wait until running, register), median of ${ROUNDS}`,
          value: `${fmt(scaleMed, 0)} ms`,
          target: '—',
          pass: undefined,
        },
        {
          metric: `launch-script loop ×${N} (\`docker run -d -p\`, \`docker port\`, \`etcdctl put\`), median of ${ROUNDS}`,
          value: `${fmt(seqMed, 0)} ms`,
          target: '—',
          pass: undefined,
        },
        {
          metric: `Docker's floor: ${N} parallel \`docker run -d -p\`, median of ${ROUNDS}`,
          value: `${fmt(floorMed, 0)} ms (ratio to the loop ${fmt(floorRatio, 2)})`,
          target: '—',
          pass: undefined,
        },
        { metric: 'ratio scale / sequential', value: fmt(ratio, 2), target: '≤ 0.55', pass: ratio <= 0.55 },
        {
          metric: "scale / Docker's floor, same run",
          value: fmt(scaleMed / floorMed, 2),
          target: '≤ 1.10',
          pass: scaleMed / floorMed <= 1.1,
        },
        { metric: `docker kill → registration deleted (n=${dereg.n}) p50`, value: `${fmt(dereg.p50, 0)} ms`, target: '—', pass: undefined },
        { metric: 'docker kill → registration deleted p99', value: `${fmt(dereg.p99, 0)} ms`, target: '≤ 1000 ms', pass: dereg.p99 <= 1000 },
        ...(rotation
          ? [
              { metric: `docker kill → out of HAProxy's rotation (n=${rotation.n}) p50`, value: `${fmt(rotation.p50, 0)} ms`, target: '—', pass: undefined },
              { metric: "docker kill → out of HAProxy's rotation p99", value: `${fmt(rotation.p99, 0)} ms`, target: '≤ 1000 ms', pass: rotation.p99 <= 1000 },
            ]
          : []),
      ],
      [
        '`npm run bench -- scale` (bench/scale.ts): private dockerd (userland proxy, no iptables), etcd on loopback, HAProxy + agent in-process when installed.',
        `Rounds (ms): scale ${scaleMs.map((x) => fmt(x, 0)).join(', ')}; launch-script loop ${seqMs.map((x) => fmt(x, 0)).join(', ')}; parallel \`docker run -d\` ${floorMs.map((x) => fmt(x, 0)).join(', ')}. scale waits for each container to be running and settled (250 ms from the engine's StartedAt) before registering it; \`docker run -d\` returns once started, registers nothing and does not check that the container stays up. 1-min load average ${fmt(loadBefore, 2)} before, ${fmt(loadavg()[0]!, 2)} after (${cpus().length} cores): dockerd serialises much of each container start (≈1.5× speed-up from parallel starts here), so the ratio depends on spare CPU.`,
        'Death latency is measured from the `docker kill` call; "out of rotation" = the server is gone from `show stat` or in MAINT (the agent removes it at runtime).',
      ],
    );
    await registry.close();
  } finally {
    await agent?.agent.stop();
    await hap?.dispose();
    const ours = await raw.listContainers({ all: true, filters: { label: [LABEL_OWNER] } }).catch(() => []);
    await Promise.all(
      ours.map((c) =>
        raw
          .getContainer(c.Id)
          .remove({ force: true })
          .catch(() => undefined),
      ),
    ); // best effort before the engine goes
    await etcd.dispose();
    await dockerd?.stop();
  }
}

await main();
