/**
 * A switchyard with Docker orchestration on the run-wide dockerd and the shared etcd, for
 * the scale, orchestrator and reconcile suites: private registry prefixes (so a private
 * owner label, derived from them), a test image, a router over the real plugins, and a
 * recording feed. dispose() removes every container of its owner and wipes its keys.
 */
import { randomBytes } from 'node:crypto';
import Dockerode from 'dockerode';
import pino from 'pino';
import { createDockerEngine, dockerodeOptions, LABEL_OWNER, type DockerEngine } from '../src/adapters/docker/index.js';
import { createEtcdRegistry, type EtcdRegistry } from '../src/adapters/etcd/registry.js';
import { configSchema, type Config } from '../src/config/schema.js';
import type { FeedEvent } from '../src/core/feed.js';
import type { Instance } from '../src/core/registry.js';
import { logNotices } from '../src/app/orchestration.js';
import type { OrchestratorDeps } from '../src/orchestrator/deps.js';
import { EtcdServiceLocks } from '../src/orchestrator/lock.js';
import type { ObservedHaproxy } from '../src/orchestrator/ports.js';
import { orchestratorSettings, type OrchestratorSettings } from '../src/orchestrator/settings.js';
import { buildBusyboxImage, sharedDockerHost } from './helpers/docker.js';
import { makeWorkspace, ONCALL, type Workspace } from './helpers/workspace.js';
import { routerOver } from './helpers/core.js';

export const silent = pino({ level: 'silent' });
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * busybox httpd behind a shell that exits on SIGTERM (httpd as PID 1 would ignore it and
 * every stop would wait out the grace), serving the container's hostname so a response
 * says which container answered.
 */
export const WEB_CMD = ['/bin/sh', '-c', 'hostname >/www/index.html; trap "exit 0" TERM; /bin/busybox httpd -f -p 80 -h /www & wait'];

export async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 5000, pollMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await sleep(pollMs);
  }
}

let imagePromise: Promise<string> | undefined;
/** One test image per file (built offline, removed by the engine's teardown). */
export function testImage(host: string): Promise<string> {
  imagePromise ??= (async () => {
    const tag = `switchyard-test/orch:${process.pid}-${randomBytes(3).toString('hex')}`;
    await buildBusyboxImage(host, tag);
    return tag;
  })();
  return imagePromise;
}

export interface FixtureOptions {
  /** services: entries (image defaults to the test image, cmd to WEB_CMD, port 80). */
  services?: Record<string, Record<string, unknown>>;
  docker?: Record<string, unknown>;
  settings?: Partial<OrchestratorSettings>;
  /** The local HAProxy scale-down watches sessions in. */
  haproxy?: ObservedHaproxy;
}

export async function orchestratorFixture(opts: FixtureOptions = {}) {
  const host = await sharedDockerHost();
  const image = await testImage(host);
  const ws: Workspace = await makeWorkspace();
  const services = Object.fromEntries(
    Object.entries(opts.services ?? { web: {} }).map(([name, s]) => [name, { image, port: 80, hostIp: '127.0.0.1', cmd: WEB_CMD, maxReplicas: 10, ...s }]),
  );
  const config: Config = configSchema.parse({
    etcd: { endpoints: [ws.endpoint] },
    registry: { prefix: ws.prefixes.services, switchyardPrefix: ws.prefixes.switchyard },
    // startTimeout is a liveness bound (a start takes ~0.5 s): a loaded engine must not fail a scale.
    docker: { host, lockTtl: '2s', stopGrace: '2s', drainTimeout: '2s', startTimeout: '30s', lockWait: '20s', ...opts.docker },
    services,
  });
  const settings: OrchestratorSettings = { ...orchestratorSettings(config), drainGraceMs: 100, ...opts.settings };
  const registry: EtcdRegistry = createEtcdRegistry(config, { log: silent });
  // A liveness bound per engine call (~0.1–1 s expected): a loaded engine must not fail a scale.
  const engine: DockerEngine = createDockerEngine({ host, log: silent, requestTimeoutMs: 60_000 });
  const locks = new EtcdServiceLocks(registry.client, {
    keyOf: (s) => registry.layout.lockKey(s),
    ttlMs: settings.lockTtlMs,
    endpoints: config.etcd.endpoints,
    log: silent,
  });
  const feed: FeedEvent[] = [];
  const feedSink = { publish: (e: FeedEvent) => void feed.push(e) };
  // Notices go where production sends them, the log (logNotices); the fixture reads them there.
  const notices: FeedEvent[] = [];
  const noticeLog = pino({ level: 'info' }, { write: (line: string) => void notices.push(noticeOf(line)) });
  const deps: OrchestratorDeps = {
    registry,
    engine,
    locks,
    feed: feedSink,
    notices: logNotices(noticeLog),
    config,
    settings,
    log: silent,
    ...(opts.haproxy ? { haproxy: opts.haproxy } : {}),
  };
  const router = routerOver({ registry, feed: feedSink, config, orchestration: deps });
  const raw = new Dockerode(dockerodeOptions(host));

  return {
    host,
    image,
    ws,
    config,
    settings,
    registry,
    engine,
    locks,
    deps,
    /** What the orchestrator publishes to the feed (reconcile reports, failed restarts). */
    feed,
    /** Its notices (deaths, restarts), read back from the log they go to. */
    notices,
    raw,
    owner: settings.owner,
    /** Run a command as the on-call user (progress lines collected). */
    async run(text: string, user = ONCALL) {
      const progress: string[] = [];
      const reply = await router.dispatch({ text, caller: { userId: user, channel: 'dm', source: 'shell' }, onProgress: (t) => progress.push(t) });
      return { ...reply, progress };
    },
    /** Our containers of a service, running ones only unless `all`. */
    async containers(service = 'web', all = false) {
      const list = await engine.listManaged(settings.owner, service);
      return all ? list : list.filter((c) => c.status === 'running');
    },
    async registrations(service = 'web'): Promise<Instance[]> {
      return (await registry.list(service)).instances;
    },
    async dispose() {
      const ours = await raw.listContainers({ all: true, filters: { label: [`${LABEL_OWNER}=${settings.owner}`] } });
      await Promise.all(
        ours.map((c) =>
          raw
            .getContainer(c.Id)
            .remove({ force: true })
            .catch(() => undefined),
        ),
      ); // some are going already
      await registry.close();
      await ws.dispose();
    },
  };
}

function noticeOf(line: string): FeedEvent {
  const l = JSON.parse(line) as { kind: string; msg: string; time: number };
  return { kind: l.kind, text: l.msg, at: new Date(l.time).toISOString() };
}

export type OrchestratorFixture = Awaited<ReturnType<typeof orchestratorFixture>>;

/** The body served at an address (the answering container's hostname), or the error. */
export async function httpGet(address: string): Promise<string> {
  const res = await fetch(`http://${address}/`, { signal: AbortSignal.timeout(3000) });
  return (await res.text()).trim();
}
