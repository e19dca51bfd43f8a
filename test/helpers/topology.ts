/**
 * The multi-host topology on loopback, with every role a real process: a 3-member etcd
 * cluster, two "HAProxy hosts" (an HAProxy each, with its own `switchyard agent` and agent
 * id), two `switchyard serve` replicas behind the Slack stand-in, and a private dockerd made
 * a single-node Swarm. Free of vitest imports, so bench/topology.ts starts the same stack.
 * Every process is started here and stopped by PID in dispose().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { adminModeOf, type ServerStateRow } from '../../src/adapters/haproxy/runtime-parse.js';
import { buildBusyboxImage, startDockerd, type DockerdProcess } from './docker.js';
import { startEtcdCluster, type EtcdCluster } from './etcd-server.js';
import { freePort, startHaproxy, waitFor, type TestHaproxy } from './haproxy.js';
import { postSlashCommand, startSlackStandIn, type SlackCall, type SlackStandIn } from './slack.js';
import { initSwarm, type TestSwarm } from './swarm.js';

const BIN = fileURLToPath(new URL('../../bin/switchyard.js', import.meta.url));
export const ONCALL = 'U0ONCALL';
export const OPS_CHANNEL = 'C0OPS';
export const SIGNING_SECRET = 'topology-signing-secret';
/** A task's page names its container (hostname), so a GET tells which task answered. */
export const SWARM_CMD = ['/bin/sh', '-c', 'hostname >/www/index.html; trap "exit 0" TERM; /bin/busybox httpd -f -p 80 -h /www & wait'];
/** Start-up of a process through tsx on a loaded 2-core machine: a liveness bound, not a figure. */
export const START_WITHIN_MS = 90_000;

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  /** stderr + stdout so far (pino lines). */
  output(): string;
  /** Messages of the pino lines logged so far. */
  messages(): string[];
  /** Send a signal and wait for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const live = new Set<ChildProcess>();
const killAll = () => {
  for (const c of live) c.kill('SIGKILL');
};

function spawnSwitchyard(name: string, args: string[], env: Record<string, string>): Proc {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  if (live.size === 0) process.once('exit', killAll);
  live.add(child);
  let out = '';
  const keep = (d: Buffer) => {
    out = (out + d.toString()).slice(-200_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => {
    child.once('error', () => resolve());
    child.once('exit', () => {
      live.delete(child);
      if (live.size === 0) process.removeListener('exit', killAll);
      resolve();
    });
  });
  return {
    name,
    child,
    exited,
    output: () => out,
    messages: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .flatMap((l) => {
          try {
            return [String((JSON.parse(l) as { msg?: unknown }).msg ?? '')];
          } catch {
            return []; // a line still being written
          }
        }),
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const escalate = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(escalate);
    },
  };
}

export interface LbHost {
  agentId: string;
  hap: TestHaproxy;
  configPath: string;
  /** Frontend ports on this host, per service. */
  listen: Record<string, number>;
  agent: Proc | undefined;
}

export interface ServeReplica {
  name: string;
  /** Its feed client token: tells in the stand-in which replica posted. */
  token: string;
  port: number;
  events: string;
  proc: Proc | undefined;
}

export interface TopologyOptions {
  /** Start the two serve replicas (default true). */
  serve?: boolean;
  /** Start the private dockerd and its Swarm (default true). */
  swarm?: boolean;
  /** Routed-only services besides the swarm one (each gets a frontend on both hosts). */
  routed?: string[];
}

export interface Topology {
  cluster: EtcdCluster;
  /** A client over all three members. */
  etcd: Etcd3;
  prefixes: { services: string; switchyard: string };
  dockerd: DockerdProcess | undefined;
  swarm: TestSwarm | undefined;
  image: string;
  standIn: SlackStandIn;
  hosts: LbHost[];
  replicas: ServeReplica[];
  /** The Swarm-backed service. */
  swarmService: string;
  startAgent(host: LbHost): Promise<void>;
  startServe(replica: ServeReplica): Promise<void>;
  /** A signed slash command to a replica; resolves with the final reply (progress skipped). */
  slash(text: string, replica?: ServeReplica, timeoutMs?: number): Promise<{ ok: boolean; text: string }>;
  /** `show servers state <service>` on one host. */
  servers(host: LbHost, service: string): Promise<ServerStateRow[]>;
  /** Every feed message posted to the feed channel, in arrival order. */
  feed(): SlackCall[];
  dispose(): Promise<void>;
}

const yamlList = (xs: string[]) => `[${xs.join(', ')}]`;

export async function startTopology(opts: TopologyOptions = {}): Promise<Topology> {
  const withServe = opts.serve ?? true;
  const withSwarm = opts.swarm ?? true;
  const routed = opts.routed ?? ['web'];
  const swarmService = 'sw';
  const dir = await mkdtemp(join(tmpdir(), 'sy-topology-'));
  const root = `/topo-${randomBytes(3).toString('hex')}`;
  const prefixes = { services: `${root}/services`, switchyard: `${root}/switchyard` };
  const image = `switchyard-topology/web:${randomBytes(3).toString('hex')}`;
  const cleanups: (() => Promise<unknown>)[] = [];
  const procs = new Set<Proc>();
  /** Started things are cleaned up whatever fails later, each as soon as it is up. */
  const owned = async <T>(started: Promise<T>, stop: (x: T) => Promise<unknown>): Promise<T> => {
    const x = await started;
    cleanups.push(() => stop(x));
    return x;
  };
  const dispose = async () => {
    await Promise.allSettled([...procs].map((p) => p.stop('SIGKILL')));
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const starting = [
      owned(startEtcdCluster(3), (c) => c.dispose()),
      owned(startSlackStandIn(), (s) => s.close()),
      withSwarm ? owned(startDockerd(), (d) => d.stop()) : Promise.resolve(undefined),
      Promise.all([0, 1].map(() => owned(startHaproxy(), (h) => h.dispose()))),
    ] as const;
    // Everything settles first, so what did start is in `cleanups` before a failure is thrown.
    await Promise.allSettled(starting);
    const [cluster, standIn, dockerd, haps] = await Promise.all(starting);
    const etcd = new Etcd3({ hosts: cluster.endpoints });
    cleanups.push(async () => etcd.close());
    let swarm: TestSwarm | undefined;
    if (dockerd) {
      swarm = await initSwarm(dockerd.host);
      // Before the engine stops: leaving removes the Swarm services (and their tasks).
      cleanups.push(() => swarm!.leave());
      await buildBusyboxImage(dockerd.host, image);
    }
    await writeFile(
      join(dir, 'acl.yaml'),
      `groups:\n  oncall: [${ONCALL}]\nrules:\n  - allow: [status, help]\n    users: ["*"]\n  - allow: ["*"]\n    groups: [oncall]\n    channels: [${OPS_CHANNEL}, dm]\n`,
    );
    const common = [
      `etcd: { endpoints: ${yamlList(cluster.endpoints)} }`,
      `registry: { prefix: ${prefixes.services}, switchyardPrefix: ${prefixes.switchyard} }`,
      'acl: { path: ./acl.yaml }',
    ];
    const services = (listen?: Record<string, number>) => [
      'services:',
      ...routed.map((s) => `  ${s}: { ${listen ? `listen: 127.0.0.1:${listen[s]}` : ''} }`),
      `  ${swarmService}:`,
      '    backend: swarm',
      `    image: ${image}`,
      '    port: 80',
      `    cmd: ${JSON.stringify(SWARM_CMD)}`,
      ...(listen ? [`    listen: 127.0.0.1:${listen[swarmService]}`] : []),
    ];
    const hosts: LbHost[] = [];
    for (const [i, hap] of haps.entries()) {
      const agentId = `lb-${i + 1}`;
      const listen: Record<string, number> = {};
      for (const s of [...routed, swarmService]) listen[s] = await freePort();
      const configPath = join(dir, `agent-${agentId}.yaml`);
      await writeFile(
        configPath,
        [
          ...common,
          'haproxy:',
          `  config: ${hap.config}`,
          `  adminSocket: ${hap.adminSocket}`,
          `  masterSocket: ${hap.masterSocket}`,
          `  binary: ${hap.binary}`,
          `  agentId: ${agentId}`,
          ...services(listen),
          '',
        ].join('\n'),
      );
      hosts.push({ agentId, hap, configPath, listen, agent: undefined });
    }
    const serveConfig = join(dir, 'serve.yaml');
    await writeFile(
      serveConfig,
      [
        ...common,
        `slack: { feedChannel: ${OPS_CHANNEL} }`,
        ...(dockerd ? [`docker: { host: "${dockerd.host}", startTimeout: 60s, drainTimeout: 2s }`] : []),
        ...services(),
        '',
      ].join('\n'),
    );
    const replicas: ServeReplica[] = [];
    for (const name of ['serve-a', 'serve-b']) {
      const port = await freePort();
      replicas.push({ name, token: `xoxb-${name}`, port, events: `http://127.0.0.1:${port}/slack/events`, proc: undefined });
    }

    const agentKey = (id: string) => `${prefixes.switchyard}/agents/${id}`;
    const startAgent = async (host: LbHost) => {
      const proc = spawnSwitchyard(`agent ${host.agentId}`, ['agent', '--config', host.configPath], {});
      procs.add(proc);
      void proc.exited.then(() => procs.delete(proc));
      host.agent = proc;
      // Up once it has applied and reported: its status key is in etcd, written by this process.
      const since = Date.now();
      await waitFor(
        `agent ${host.agentId} to report its first apply`,
        async () => {
          if (proc.child.exitCode !== null) throw new Error(`agent ${host.agentId} exited: ${proc.output().slice(-2000)}`);
          const kv = (await etcd.get(agentKey(host.agentId)).exec()).kvs[0];
          return kv !== undefined && Date.parse((JSON.parse(kv.value.toString()) as { at: string }).at) >= since - 1000;
        },
        START_WITHIN_MS,
        100,
      );
    };
    const startServe = async (r: ServeReplica) => {
      const proc = spawnSwitchyard(r.name, ['serve', '--config', serveConfig], {
        SLACK_BOT_TOKEN: r.token,
        SLACK_SIGNING_SECRET: SIGNING_SECRET,
        SLACK_API_URL: standIn.apiUrl,
        HOST: '127.0.0.1',
        PORT: String(r.port),
      });
      procs.add(proc);
      void proc.exited.then(() => procs.delete(proc));
      r.proc = proc;
      await waitFor(
        `${r.name} to be healthy`,
        async () => {
          if (proc.child.exitCode !== null) throw new Error(`${r.name} exited: ${proc.output().slice(-2000)}`);
          return (await fetch(`http://127.0.0.1:${r.port}/healthz`, { signal: AbortSignal.timeout(2000) })).status === 200;
        },
        START_WITHIN_MS,
        200,
      );
    };

    await Promise.all([...hosts.map(startAgent), ...(withServe ? replicas.map(startServe) : [])]);

    let n = 0;
    const slash = async (text: string, replica = replicas[0]!, timeoutMs = 60_000) => {
      const id = `topo-${++n}-${randomBytes(3).toString('hex')}`;
      const res = await postSlashCommand(replica.events, SIGNING_SECRET, {
        text,
        user_id: ONCALL,
        channel_id: OPS_CHANNEL,
        response_url: standIn.responseUrl(id),
      });
      if (res.status !== 200) return { ok: false, text: `HTTP ${res.status}: ${res.text}` };
      // An ack that is not "running …" is the whole answer (e.g. the request could not be checked).
      const acked = (res.json as { text?: unknown } | undefined)?.text;
      if (typeof acked === 'string' && !acked.startsWith('running')) return { ok: false, text: `${acked}\n${problems(replica.proc)}` };
      const first = (c: SlackCall) => String((c.body.blocks as { text?: { text?: string } }[] | undefined)?.[0]?.text?.text ?? c.body.text ?? '');
      const reply = await standIn
        .waitFor((c) => c.kind === 'response' && c.method === id && !first(c).startsWith(':hourglass'), timeoutMs)
        .catch((err: unknown) => {
          throw new Error(`no reply to "${text}" from ${replica.name} (ack: ${res.text}): ${String(err)}\n${problems(replica.proc)}`);
        });
      const body = first(reply);
      const ok = !body.startsWith(':x:');
      return { ok, text: `${String(reply.body.text ?? body)}${ok ? '' : `\n${problems(replica.proc)}`}` };
    };

    return {
      cluster,
      etcd,
      prefixes,
      dockerd,
      swarm,
      image,
      standIn,
      hosts,
      replicas,
      swarmService,
      startAgent,
      startServe,
      slash,
      servers: (host, service) => host.hap.runtime.showServersState(service).catch(() => []),
      feed: () => standIn.calls.filter((c) => c.kind === 'api' && c.method === 'chat.postMessage' && c.body.channel === OPS_CHANNEL),
      dispose,
    };
  } catch (err) {
    await dispose();
    throw err;
  }
}

/** A process's warnings and errors so far (pino level ≥ 40), for a failure message. */
export function problems(proc: Proc | undefined): string {
  if (!proc) return '';
  const lines = proc
    .output()
    .split('\n')
    .filter((l) => /^\{"level":[5-6]0|^\{"level":40/.test(l));
  return `${proc.name}: ${lines.slice(-8).join('\n').slice(-4000)}`;
}

/** The servers of `service` HAProxy routes to on a host: name → `addr:port`, ready ones only. */
export function routedServers(rows: ServerStateRow[]): Map<string, string> {
  return new Map(rows.filter((r) => adminModeOf(r) === 'ready').map((r) => [r.name, `${r.addr}:${r.port}`]));
}
