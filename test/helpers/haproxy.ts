/**
 * A real HAProxy for tests, in master-worker mode (`-W -S <master socket>`), with a private
 * temp directory for its config, sockets and server-state file, and small loopback HTTP
 * backends that answer their own name. Each instance only ever signals the PID it
 * spawned; dispose() removes its directory.
 */
import { freePort } from './net.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, request, type Agent, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveBinary } from '../../src/adapters/haproxy/check.js';
import { HaproxyMaster } from '../../src/adapters/haproxy/master.js';
import { HaproxyRuntime } from '../../src/adapters/haproxy/runtime.js';
import { createEtcdRegistry, type EtcdRegistry } from '../../src/adapters/etcd/registry.js';
import type { ApplyResult } from '../../src/core/apply-result.js';
import { formatApplyResult } from '../../src/agent/format.js';
import type { HaproxyAgent } from '../../src/agent/agent.js';
import { createHaproxyAgent } from '../../src/app/agent.js';
import { configSchema, type Config } from '../../src/config/schema.js';
import { createLogger } from '../../src/core/log.js';

export const HAPROXY_NOT_FOUND = 'haproxy not found: install it with "apt-get install -y haproxy"';

/** The binary's path, or throws the install hint. */
export function haproxyBinary(): string {
  const bin = resolveBinary('haproxy');
  if (!bin) throw new Error(HAPROXY_NOT_FOUND);
  return bin;
}

export { freePort };

/** Poll `probe` until it returns something other than undefined/false, or fail at the deadline. */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 8000,
  intervalMs = 10,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${String(lastErr)})` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface HaproxyPaths {
  dir: string;
  config: string;
  adminSocket: string;
  masterSocket: string;
  stateFile: string;
}

export interface TestHaproxy extends HaproxyPaths {
  readonly binary: string;
  /** Master PID while running. */
  readonly pid: number | undefined;
  readonly runtime: HaproxyRuntime;
  readonly master: HaproxyMaster;
  /** HAProxy's stderr so far (last 20 kB). */
  output(): string;
  /** Current worker PID according to the master's `show proc`. */
  workerPid(): Promise<number>;
  /** (Re)start with whatever haproxy.cfg now holds; resolves once both sockets answer. */
  start(): Promise<void>;
  /** SIGTERM the master (its workers follow) and wait for it to exit. */
  stop(): Promise<void>;
  dispose(): Promise<void>;
  /** The `haproxy:` section of a switchyard config for this instance. */
  configSection(agentId?: string): { config: string; adminSocket: string; masterSocket: string; binary: string; agentId?: string };
}

/**
 * A minimal config carrying only the admin socket: what a host has before its agent
 * renders the real one.
 */
export function bootstrapConfig(p: Pick<HaproxyPaths, 'adminSocket' | 'stateFile'>): string {
  return [
    'global',
    `    stats socket ${p.adminSocket} mode 600 level admin expose-fd listeners`,
    `    server-state-file ${p.stateFile}`,
    'defaults',
    '    mode http',
    '    timeout connect 2s',
    '    timeout client 10s',
    '    timeout server 10s',
    '',
  ].join('\n');
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

class LocalHaproxy implements TestHaproxy {
  readonly runtime: HaproxyRuntime;
  readonly master: HaproxyMaster;
  readonly config: string;
  readonly adminSocket: string;
  readonly masterSocket: string;
  readonly stateFile: string;
  private child: ChildProcess | undefined;
  private stderr = '';
  private disposed = false;
  private readonly killOnExit = () => this.child?.kill('SIGKILL');

  constructor(
    readonly binary: string,
    readonly dir: string,
  ) {
    this.config = join(dir, 'haproxy.cfg');
    this.adminSocket = join(dir, 'admin.sock');
    this.masterSocket = join(dir, 'master.sock');
    this.stateFile = `${this.config}.state`;
    this.runtime = new HaproxyRuntime(this.adminSocket, { timeoutMs: 3000 });
    this.master = new HaproxyMaster(this.masterSocket);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  output(): string {
    return this.stderr;
  }

  configSection(agentId?: string) {
    return {
      config: this.config,
      adminSocket: this.adminSocket,
      masterSocket: this.masterSocket,
      binary: this.binary,
      ...(agentId ? { agentId } : {}),
    };
  }

  async workerPid(): Promise<number> {
    const table = await this.master.showProc();
    const pid = HaproxyMaster.currentWorker(table);
    if (pid === undefined) throw new Error('no HAProxy worker');
    return pid;
  }

  async start(): Promise<void> {
    if (this.disposed) throw new Error('HAProxy test instance was disposed');
    if (this.child) throw new Error('HAProxy test instance is already running');
    const child = spawn(this.binary, ['-W', '-S', `${this.masterSocket},mode,600`, '-f', this.config], {
      cwd: this.dir,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    // A test runner that dies must not leave HAProxy behind.
    process.once('exit', this.killOnExit);
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-20_000);
    });
    // Rejects when HAProxy dies before it is up (bad config, port taken, missing binary).
    const died = new Promise<never>((_, reject) => {
      child.once('error', reject);
      child.once('exit', (code, sig) => reject(new Error(`HAProxy exited during start (${code ?? sig}): ${this.stderr.trim()}`)));
    });
    died.catch(() => undefined); // observed through the race below
    try {
      await Promise.race([
        died,
        waitFor(
          'HAProxy sockets',
          async () => {
            await this.runtime.workerPid();
            await this.master.showProc();
            return true;
          },
          10_000,
          10,
        ),
      ]);
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    const done = exited(child);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await done;
    clearTimeout(timer);
    this.child = undefined;
    process.removeListener('exit', this.killOnExit);
    // Workers exit when their master goes; wait until nothing answers on the admin socket.
    await waitFor(
      'HAProxy workers to exit',
      async () => {
        try {
          await this.runtime.raw('show info');
          return false;
        } catch {
          return true;
        }
      },
      5000,
      10,
    );
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    await this.stop();
    this.disposed = true;
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * A private HAProxy that is not running and has no haproxy.cfg yet: a host on first boot.
 * start() runs it from whatever the agent (or `render --once`) has written by then.
 */
export async function prepareHaproxy(): Promise<TestHaproxy> {
  const binary = haproxyBinary();
  // Short: unix socket paths are limited to 108 bytes.
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  return new LocalHaproxy(binary, await mkdtemp(join(base, 'sy-hap-')));
}

/**
 * Start a private HAProxy. `config` is the initial haproxy.cfg (default: bootstrapConfig,
 * i.e. only the admin socket); it may use the paths it is given.
 */
export async function startHaproxy(opts: { config?: (p: HaproxyPaths) => string } = {}): Promise<TestHaproxy> {
  const hap = await prepareHaproxy();
  const { dir } = hap;
  const paths: HaproxyPaths = { dir, config: hap.config, adminSocket: hap.adminSocket, masterSocket: hap.masterSocket, stateFile: hap.stateFile };
  await writeFile(hap.config, (opts.config ?? bootstrapConfig)(paths));
  try {
    await hap.start();
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return hap;
}

export interface HttpBackend {
  name: string;
  port: number;
  /** 127.0.0.1:<port> */
  address: string;
  /** Requests received so far. */
  readonly hits: number;
  /** Requests to /slow wait this long (or until release()). */
  release(): void;
  close(): Promise<void>;
}

/**
 * A loopback HTTP server answering its own name. `GET /slow` holds the response until
 * release() (or 20 s), to keep a session open through a drain or a reload.
 */
export async function startHttpBackend(name: string): Promise<HttpBackend> {
  let hits = 0;
  const held: ServerResponse[] = [];
  const sockets = new Set<Socket>();
  const server: HttpServer = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    hits++;
    if (req.url === '/slow') {
      held.push(res);
      const t = setTimeout(() => res.end(`${name}\n`), 20_000);
      res.on('close', () => clearTimeout(t));
      return;
    }
    res.setHeader('content-type', 'text/plain');
    res.end(`${name}\n`);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('backend did not bind');
  return {
    name,
    port: addr.port,
    address: `127.0.0.1:${addr.port}`,
    get hits() {
      return hits;
    },
    release() {
      for (const res of held.splice(0)) res.end(`${name}\n`);
    },
    async close() {
      for (const res of held.splice(0)) res.destroy();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** GET through a fresh connection (no keep-alive): every call is a new routing decision. */
export function httpGet(url: string, opts: { agent?: Agent; timeoutMs?: number } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: opts.agent ?? false, timeout: opts.timeoutMs ?? 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** The set of backend names answering `n` fresh requests to `url` (non-200 answers count as "<status>"). */
export async function whoAnswers(url: string, n: number): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    let key: string;
    try {
      const r = await httpGet(url, { timeoutMs: 2000 });
      key = r.status === 200 ? r.body : String(r.status);
    } catch {
      key = 'error';
    }
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  return seen;
}

// ---------------------------------------------------------------------------------------
// Agents on the shared etcd: an EtcdRegistry on a private prefix, agents bound to test
// HAProxy instances.

export const testLog = createLogger({ level: process.env.TEST_LOG ?? 'silent' });

export function registryAt(endpoint: string, prefix: string): EtcdRegistry {
  return createEtcdRegistry(
    { etcd: { endpoints: [endpoint] }, registry: { prefix: `${prefix}/services`, switchyardPrefix: `${prefix}/switchyard` } },
    { log: testLog, watchBackoff: { minMs: 50, maxMs: 400 } },
  );
}

export function agentConfig(
  endpoint: string,
  prefix: string,
  hap: TestHaproxy,
  agentId: string,
  services: Record<string, { listen?: string; mode?: 'http' | 'tcp' }>,
  template?: string,
): Config {
  return configSchema.parse({
    etcd: { endpoints: [endpoint] },
    registry: { prefix: `${prefix}/services`, switchyardPrefix: `${prefix}/switchyard` },
    haproxy: { ...hap.configSection(agentId), ...(template ? { template } : {}) },
    services: Object.fromEntries(Object.entries(services).map(([name, s]) => [name, { image: 'test', port: 80, ...s }])),
  });
}

export interface RunningAgent {
  agent: HaproxyAgent;
  results: ApplyResult[];
  /** Each reported apply in the agent's own words (its log line; formatApplyResult). */
  feed: string[];
}

/**
 * Wait until the agent has nothing left to do: the live file is what its registry snapshot
 * renders and no removal waits for sessions. Traffic moves before the agent rewrites the
 * file, so a test that compares the file before and after must start from here.
 */
export async function quiescent(running: RunningAgent, hap: TestHaproxy): Promise<void> {
  await waitFor('a quiescent agent', async () => {
    const r = running.agent.lastResult;
    if (!r?.ok || (r.pending ?? []).length > 0) return false;
    return (await readFile(hap.config, 'utf8')) === running.agent.candidate().rendered;
  });
}

export async function startAgent(config: Config, registry: EtcdRegistry, extra: { retry?: { minMs: number; maxMs: number } } = {}): Promise<RunningAgent> {
  const results: ApplyResult[] = [];
  const feed: string[] = [];
  const agent = createHaproxyAgent(config, registry, {
    log: testLog,
    checkInterMs: 500,
    removeGraceMs: 2000,
    statusTtlSeconds: 2,
    retry: extra.retry ?? { minMs: 50, maxMs: 400 },
    // No feed sink, as in production: applies reach #ops through the agent's key in etcd.
    // `feed` holds the line the agent logs for each reported apply.
    onApply: (r) => {
      results.push(r);
      feed.push(formatApplyResult(r));
    },
  });
  await agent.start();
  return { agent, results, feed };
}
