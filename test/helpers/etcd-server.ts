/**
 * Real etcd processes for tests, without any vitest import so that test/global-setup.ts
 * (which runs outside the test context) can use it. Test files import test/helpers/etcd.ts.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { createServer, type Server, type Socket, connect } from 'node:net';
import { freePort, splice } from './net.js';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';

export const ETCD_NOT_FOUND = 'etcd not found: install it with "apt-get install -y etcd-server etcd-client"';

export interface EtcdProcess {
  /** Client URL, e.g. http://127.0.0.1:41234 — what goes into `etcd.endpoints`. */
  readonly endpoint: string;
  readonly dataDir: string;
  /** PID of the running etcd, undefined while stopped. */
  readonly pid: number | undefined;
  /** SIGTERM and wait for exit; the data directory is kept for start()/restart(). */
  stop(): Promise<void>;
  /** SIGKILL (a crash) and wait for exit; the data directory is kept. */
  kill(): Promise<void>;
  /** Start again on the same ports and data directory; resolves once healthy. */
  start(): Promise<void>;
  restart(): Promise<void>;
  /** Kill and remove the data directory. Idempotent. */
  dispose(): Promise<void>;
}

export function findOnPath(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, bin))) return join(dir, bin);
  }
  return undefined;
}

/** Serve clients over TLS (`https://` endpoint); PEM file paths. */
export interface EtcdTls {
  ca: string;
  cert: string;
  key: string;
  /** Refuse clients without a certificate signed by `ca` (--client-cert-auth). */
  clientCertAuth?: boolean;
}

/** Over TLS, etcd's /health is asked with the same CA and, when required, a client certificate. */
function healthyTls(endpoint: string, tls: EtcdTls): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpsRequest(
      `${endpoint}/health`,
      { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key), timeout: 500 },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c));
        res.on('end', () => resolve(/"health":\s*"true"/.test(body)));
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false)); // not listening yet
    req.end();
  });
}

async function healthy(endpoint: string, tls?: EtcdTls): Promise<boolean> {
  if (tls) return healthyTls(endpoint, tls);
  try {
    const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(500) });
    const body = (await res.json()) as { health?: string };
    return body.health === 'true';
  } catch {
    return false; // not listening yet
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Start a private single-member etcd on random loopback ports. */
export async function startEtcd(opts: { startTimeoutMs?: number; tls?: EtcdTls } = {}): Promise<EtcdProcess> {
  const bin = findOnPath('etcd');
  if (!bin) throw new Error(ETCD_NOT_FOUND);
  // tmpfs when available: etcd fsyncs every write, and that dominates test time on disks.
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dataDir = await mkdtemp(join(base, 'switchyard-etcd-'));
  // Ports picked from the kernel may be taken again by another worker before etcd binds
  // them; a failed start with fresh ports is retried a few times.
  for (let attempt = 1; ; attempt++) {
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    const proc = new LocalEtcd(bin, dataDir, clientPort, peerPort, opts.startTimeoutMs ?? 15_000, undefined, opts.tls);
    try {
      await proc.start();
      return proc;
    } catch (err) {
      await proc.kill();
      // etcd's log line is the only signal of a port clash (this is test scaffolding).
      if (attempt >= 3 || !/address already in use/.test(proc.lastStderr())) {
        await rm(dataDir, { recursive: true, force: true });
        throw err;
      }
      await rm(join(dataDir, 'member'), { recursive: true, force: true });
    }
  }
}

/** A member of a multi-member cluster: its name and the whole `--initial-cluster` list. */
interface ClusterMember {
  name: string;
  initialCluster: string;
}

class LocalEtcd implements EtcdProcess {
  readonly endpoint: string;
  private child: ChildProcess | undefined;
  private stderr = '';
  private disposed = false;
  private readonly args: string[];
  private readonly killOnExit = () => this.child?.kill('SIGKILL');

  constructor(
    private readonly bin: string,
    readonly dataDir: string,
    clientPort: number,
    peerPort: number,
    private readonly startTimeoutMs: number,
    member?: ClusterMember,
    private readonly tls?: EtcdTls,
  ) {
    this.endpoint = `${tls ? 'https' : 'http'}://127.0.0.1:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    const name = member?.name ?? 'test';
    this.args = [
      `--name=${name}`,
      `--data-dir=${dataDir}`,
      `--listen-client-urls=${this.endpoint}`,
      `--advertise-client-urls=${this.endpoint}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=${member?.initialCluster ?? `test=${peer}`}`,
      '--initial-cluster-state=new',
      '--logger=zap',
      '--log-outputs=stderr',
      '--log-level=error',
      ...(tls ? [`--cert-file=${tls.cert}`, `--key-file=${tls.key}`, `--trusted-ca-file=${tls.ca}`] : []),
      ...(tls?.clientCertAuth ? ['--client-cert-auth'] : []),
    ];
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  lastStderr(): string {
    return this.stderr;
  }

  async start(): Promise<void> {
    if (this.disposed) throw new Error('etcd test instance was disposed');
    if (this.child) throw new Error('etcd test instance is already running');
    this.stderr = '';
    const child = spawn(this.bin, this.args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    // A test runner that dies must not leave etcd behind.
    process.once('exit', this.killOnExit);
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-4000);
    });
    const spawnError = new Promise<never>((_, reject) => child.once('error', reject));
    spawnError.catch(() => undefined); // observed through the race below
    const deadline = Date.now() + this.startTimeoutMs;
    while (!(await Promise.race([healthy(this.endpoint, this.tls), spawnError]))) {
      if (child.exitCode !== null || child.signalCode !== null) {
        this.forget();
        throw new Error(`etcd exited during start (${child.exitCode ?? child.signalCode}): ${this.stderr.trim()}`);
      }
      if (Date.now() > deadline) throw new Error(`etcd did not become healthy in ${this.startTimeoutMs}ms: ${this.stderr.trim()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    await this.signal('SIGTERM');
  }

  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    await this.kill();
    this.disposed = true;
    await rm(this.dataDir, { recursive: true, force: true });
  }

  private async signal(sig: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child) return;
    const done = exited(child);
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
    const escalate = setTimeout(() => child.kill('SIGKILL'), 5000);
    // Node may not emit 'exit' for a child that failed to spawn: do not wait forever.
    let giveUp: NodeJS.Timeout | undefined;
    await Promise.race([done, new Promise((r) => (giveUp = setTimeout(r, 7000)))]);
    clearTimeout(escalate);
    clearTimeout(giveUp);
    this.forget();
  }

  private forget(): void {
    this.child = undefined;
    process.removeListener('exit', this.killOnExit);
  }
}

export interface EtcdCluster {
  readonly members: readonly EtcdProcess[];
  /** Every member's client URL, in member order. */
  readonly endpoints: string[];
  /** Kill every member and remove the data directories. Idempotent. */
  dispose(): Promise<void>;
}

/**
 * A private etcd cluster of `size` members on random loopback ports, for quorum tests:
 * stop a majority and the rest has no leader. Members start together (a member is healthy
 * only once the cluster has elected a leader); a stopped member start()s again into it.
 */
export async function startEtcdCluster(size = 3, opts: { startTimeoutMs?: number } = {}): Promise<EtcdCluster> {
  const bin = findOnPath('etcd');
  if (!bin) throw new Error(ETCD_NOT_FOUND);
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const ports = [];
  for (let i = 0; i < size; i++) ports.push({ client: await freePort(), peer: await freePort() });
  const initialCluster = ports.map((p, i) => `m${i}=http://127.0.0.1:${p.peer}`).join(',');
  const members: LocalEtcd[] = [];
  for (const [i, p] of ports.entries()) {
    const dataDir = await mkdtemp(join(base, `switchyard-etcd-m${i}-`));
    members.push(new LocalEtcd(bin, dataDir, p.client, p.peer, opts.startTimeoutMs ?? 30_000, { name: `m${i}`, initialCluster }));
  }
  const dispose = async () => {
    await Promise.all(members.map((m) => m.dispose()));
  };
  try {
    await Promise.all(members.map((m) => m.start()));
  } catch (err) {
    await dispose();
    throw err;
  }
  return { members, endpoints: members.map((m) => m.endpoint), dispose };
}

/** Run etcdctl (v3 API) against an endpoint; resolves to stdout. */
export async function etcdctl(endpoint: string, ...args: string[]): Promise<string> {
  const bin = findOnPath('etcdctl');
  if (!bin) throw new Error(ETCD_NOT_FOUND);
  const { stdout } = await promisify(execFile)(bin, [`--endpoints=${endpoint}`, ...args], {
    env: { ...process.env, ETCDCTL_API: '3' },
    timeout: 10_000,
  });
  return stdout;
}

/** The member leading `cluster` now, from each member's own status: the harshest one to lose. */
export async function clusterLeader(cluster: EtcdCluster): Promise<EtcdProcess> {
  const statuses = JSON.parse(await etcdctl(cluster.endpoints.join(','), 'endpoint', 'status', '--write-out=json')) as {
    Endpoint: string;
    Status: { header: { member_id: number | string }; leader: number | string };
  }[];
  const leader = statuses.find((s) => String(s.Status.header.member_id) === String(s.Status.leader))?.Endpoint;
  const member = cluster.members.find((m) => m.endpoint === leader);
  if (!member) throw new Error(`no member of ${cluster.endpoints.join(', ')} says it leads: ${JSON.stringify(statuses)}`);
  return member;
}

/**
 * A TCP proxy in front of an etcd endpoint, so a test can cut one client off ("partition")
 * while other clients keep writing — etcd itself cannot be both down for the watcher and
 * up for the writer. `block()` resets every connection and refuses new ones until
 * `unblock()`.
 */
export interface EtcdProxy {
  readonly endpoint: string;
  block(): void;
  unblock(): void;
  close(): Promise<void>;
}

export async function startProxy(target: string): Promise<EtcdProxy> {
  const url = new URL(target);
  const sockets = new Set<Socket>();
  let blocked = false;
  const server: Server = createServer((inbound) => {
    if (blocked) {
      inbound.resetAndDestroy();
      return;
    }
    splice(inbound, connect(Number(url.port), url.hostname), sockets);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('proxy did not bind');
  return {
    endpoint: `http://127.0.0.1:${addr.port}`,
    block() {
      blocked = true;
      for (const s of sockets) s.resetAndDestroy();
    },
    unblock() {
      blocked = false;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
