/**
 * A real Docker engine for tests, without touching the host's own.
 *
 * startDockerd() runs a private dockerd (as root) on its own socket, data-root, exec-root
 * and bridge, with iptables off; published ports still work on loopback through Docker's
 * userland proxy. Private bridge + no iptables is what lets several engines (two test
 * workers, the demo, someone's system dockerd) coexist: on the default docker0 bridge two
 * daemons hand out the same container IPs and each rewrites the other's iptables chains.
 * stop() kills only the PID it started, unmounts whatever the engine left mounted under its
 * directory, deletes its bridge and removes the directory.
 *
 * sharedDockerHost() gives every test file of a run ONE engine, started lazily by the first
 * file that asks (a run without Docker tests never starts one) and stopped by this file's
 * global-setup teardown — register it in vitest.config.ts `globalSetup`.
 * SWITCHYARD_TEST_DOCKER_HOST=unix:///… uses an engine you run yourself instead.
 *
 * buildBusyboxImage() builds a test image offline (no registry is reachable): a rootfs with
 * the static busybox, imported with `docker import`.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, writeFile, copyFile } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer, connect, type Socket } from 'node:net';
import { splice } from './net.js';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import type { TestProject } from 'vitest/node';
import { dockerodeOptions } from '../../src/adapters/docker/host.js';

export const DOCKERD_NOT_FOUND = 'dockerd not found: install it with "apt-get install -y docker.io busybox-static"';
export const BUSYBOX_NOT_FOUND = 'a static /bin/busybox is needed for test images: install it with "apt-get install -y busybox-static"';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Directory where the run-wide shared dockerd is coordinated (see sharedDockerHost). */
    dockerRunDir: string | undefined;
    /** An engine given by SWITCHYARD_TEST_DOCKER_HOST, used instead of a private one. */
    dockerExternalHost: string | undefined;
  }
}

const run = promisify(execFile);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Everything needed to stop a daemon — plain data, so another process can stop it. */
export interface DockerdState {
  pid: number;
  dir: string;
  socket: string;
  bridge: string;
  args: string[];
}

export interface DockerdProcess {
  /** `unix:///…/docker.sock` — what goes into DOCKER_HOST or `docker.host`. */
  readonly host: string;
  readonly pid: number;
  readonly state: DockerdState;
  /** SIGTERM the engine and start it again on the same dirs and socket (its containers stop). */
  restart(): Promise<void>;
  /** Remove every container, stop the engine, unmount, delete the bridge and the directory. Idempotent. */
  stop(): Promise<void>;
}

function findBinary(bin: string): string | undefined {
  // dockerd lives in /usr/sbin, often missing from a non-login PATH.
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/bin', '/usr/local/sbin'];
  for (const dir of dirs) if (dir && existsSync(join(dir, bin))) return join(dir, bin);
  return undefined;
}

/** GET /_ping over the unix socket; true when the engine answers OK. */
export function pingSocket(socket: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, path: '/_ping', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false)); // not listening (yet)
    req.end();
  });
}

/** True while `pid` is a live (non-zombie) process whose command line mentions `marker`. */
function isOurProcess(pid: number, marker: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (/\) Z /.test(stat)) return false; // exited, waiting to be reaped
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
  } catch {
    return false; // gone
  }
}

async function waitGone(pid: number, marker: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isOurProcess(pid, marker)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

async function freeSubnet(): Promise<string> {
  const { stdout } = await run('ip', ['-4', '-o', 'addr', 'show']);
  const { stdout: routes } = await run('ip', ['-4', 'route', 'show', 'table', 'all']);
  const used = stdout + routes;
  for (let i = 0; i < 50; i++) {
    const net = `10.${200 + Math.floor(Math.random() * 55)}.${Math.floor(Math.random() * 256)}`;
    if (!used.includes(`${net}.`)) return net;
  }
  throw new Error('no free 10.x.y.0/24 subnet for a test Docker bridge');
}

async function createBridge(): Promise<string> {
  const name = `sy${randomBytes(4).toString('hex')}`;
  const net = await freeSubnet();
  await run('ip', ['link', 'add', 'name', name, 'type', 'bridge']);
  try {
    await run('ip', ['addr', 'add', `${net}.1/24`, 'dev', name]);
    await run('ip', ['link', 'set', name, 'up']);
  } catch (err) {
    await run('ip', ['link', 'del', name]).catch(() => undefined); // best effort; the original error matters
    throw err;
  }
  return name;
}

function spawnDockerd(bin: string, state: Pick<DockerdState, 'dir' | 'args'>): number {
  const log = openSync(join(state.dir, 'dockerd.log'), 'a');
  try {
    // Detached, own process group, output to a file: the shared engine outlives the worker
    // that started it and is stopped by the global teardown in another process.
    const child = spawn(bin, state.args, { detached: true, stdio: ['ignore', log, log] });
    // A failed spawn shows as pid === undefined below; without a listener its 'error' event would crash the worker.
    child.once('error', () => undefined);
    child.unref();
    if (child.pid === undefined) throw new Error(`could not spawn ${bin}`);
    return child.pid;
  } finally {
    closeSync(log);
  }
}

async function logTail(dir: string, lines = 15): Promise<string> {
  const text = await readFile(join(dir, 'dockerd.log'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.trim())
    .slice(-lines)
    .join('\n');
}

async function waitReady(state: DockerdState, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pingSocket(state.socket, 500))) {
    if (!isOurProcess(state.pid, state.dir)) throw new Error(`dockerd exited during start:\n${await logTail(state.dir)}`);
    if (Date.now() > deadline) throw new Error(`dockerd did not answer in ${timeoutMs}ms:\n${await logTail(state.dir)}`);
    await sleep(100);
  }
}

/**
 * Beside each engine's files: which process answers for it. An engine whose owner is gone
 * was left by an interrupted run, and the next run's setup stops it (sweepStaleEngines).
 */
const OWNER_FILE = 'owner.json';
const DIR_PREFIX = 'sy-dockerd-';

interface OwnerRecord {
  ownerPid: number;
  state: DockerdState;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Stop an engine from a process that is about to exit: a detached shell outlives it and does
 * what stopDockerd does (SIGTERM, SIGKILL after 20 s, then whatever still names the engine's
 * directory — containerd and its shims — unmount, bridge, directory). Synchronous to start,
 * so it can run from an 'exit' handler.
 */
export function reapInBackground(state: DockerdState): void {
  const script = [
    'd="$1"; pid="$2"; br="$3"',
    'ours() { grep -qF "$d" "/proc/$1/cmdline" 2>/dev/null; }',
    'if ours "$pid"; then kill -TERM "$pid"; i=0; while ours "$pid" && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; kill -KILL "$pid" 2>/dev/null; fi',
    // This shell names the directory too: it must not kill itself.
    'for p in /proc/[0-9]*; do q=$(basename "$p"); [ "$q" = "$$" ] || ! ours "$q" || kill -KILL "$q" 2>/dev/null; done',
    'sleep 0.5',
    'awk -v d="$d" \'$5 == d || index($5, d "/") == 1 { print $5 }\' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done',
    'ip link del "$br" 2>/dev/null',
    'rm -rf "$d"',
  ].join('\n');
  const child = spawn('/bin/sh', ['-c', script, 'reap', state.dir, String(state.pid), state.bridge], { detached: true, stdio: 'ignore' });
  child.once('error', () => undefined); // nothing more can be done from an exiting process
  child.unref();
}

/**
 * Until `isDone()`, an exit of this process (normal, or SIGINT/SIGTERM/SIGHUP, which would
 * otherwise skip 'exit' handlers) stops the engine in the background. Returns the remover.
 */
function reapOnExit(state: () => DockerdState | undefined): () => void {
  const onExit = () => {
    const st = state();
    if (st) reapInBackground(st);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const onSignal = (sig: NodeJS.Signals) => {
    remove();
    onExit();
    // Whatever else listens (vitest) still hears it; without other listeners this ends the process as the signal would.
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  const remove = () => {
    process.removeListener('exit', onExit);
    for (const sig of signals) process.removeListener(sig, onSignal);
  };
  process.once('exit', onExit);
  for (const sig of signals) process.once(sig, onSignal);
  return remove;
}

async function writeOwner(state: DockerdState, ownerPid: number): Promise<void> {
  const record: OwnerRecord = { ownerPid, state };
  await writeFile(join(state.dir, `${OWNER_FILE}.tmp`), JSON.stringify(record));
  await rename(join(state.dir, `${OWNER_FILE}.tmp`), join(state.dir, OWNER_FILE));
}

/**
 * Stop the engines (and remove the bridges and directories) that interrupted runs left: each
 * engine directory whose owner process is gone. Engines of live runs — other checkouts,
 * other users of this machine — are left alone, as are directories without an owner record
 * younger than a minute (an engine still being set up).
 */
export async function sweepStaleEngines(base = tmpdir()): Promise<string[]> {
  const swept: string[] = [];
  for (const name of await readdir(base).catch(() => [] as string[])) {
    if (!name.startsWith(DIR_PREFIX)) continue;
    const dir = join(base, name);
    const record = await readFile(join(dir, OWNER_FILE), 'utf8').then(
      (t) => JSON.parse(t) as OwnerRecord,
      () => undefined,
    );
    if (!record || alive(record.ownerPid) || record.state.dir !== dir) continue;
    try {
      await stopDockerd(record.state);
      swept.push(dir);
    } catch {
      // Still mounted or busy: the next run tries again.
    }
  }
  return swept;
}

export async function startDockerd(opts: { startTimeoutMs?: number; ownerPid?: number } = {}): Promise<DockerdProcess> {
  const bin = findBinary('dockerd');
  if (!bin) throw new Error(DOCKERD_NOT_FOUND);
  if (process.getuid?.() !== 0) throw new Error('a private dockerd needs root (or set SWITCHYARD_TEST_DOCKER_HOST to an engine you run)');
  if (!findBinary('ip')) throw new Error('the "ip" command is needed for the test bridge: apt-get install -y iproute2');
  // Short path: containerd's socket lives under exec-root and unix socket paths max out at 108 bytes.
  const dir = await mkdtemp(join(tmpdir(), DIR_PREFIX));
  let bridge: string | undefined;
  try {
    bridge = await createBridge();
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const socket = join(dir, 'docker.sock');
  const args = [
    `--config-file=${join(dir, 'daemon.json')}`,
    `--host=unix://${socket}`,
    `--data-root=${join(dir, 'data')}`,
    `--exec-root=${join(dir, 'exec')}`,
    `--pidfile=${join(dir, 'docker.pid')}`,
    `--bridge=${bridge}`,
    '--iptables=false',
    '--ip-forward=false',
    '--userland-proxy=true',
    '--log-level=warn',
  ];
  const state: DockerdState = { pid: 0, dir, socket, bridge, args };
  const ownerPid = opts.ownerPid ?? process.pid;
  // An engine this process answers for goes with it, however it ends; one owned by another
  // process (the run-wide engine, owned by the vitest main process) is that process's to stop.
  const proc = new LocalDockerd(bin, state, ownerPid === process.pid ? reapOnExit(() => (state.pid ? state : undefined)) : () => undefined);
  try {
    // The trust key would otherwise land in /etc/docker; keep everything in our directory.
    await writeFile(join(dir, 'daemon.json'), JSON.stringify({ 'deprecated-key-path': join(dir, 'key.json') }));
    await writeOwner(state, ownerPid); // before the spawn: a crash from here on leaves a record to sweep
    state.pid = spawnDockerd(bin, state);
    await writeOwner(state, ownerPid);
    await waitReady(state, opts.startTimeoutMs ?? 30_000);
    return proc;
  } catch (err) {
    await proc.stop(); // removes the bridge and the directory whether or not dockerd ran
    throw err;
  }
}

class LocalDockerd implements DockerdProcess {
  private stopped = false;
  constructor(
    private readonly bin: string,
    readonly state: DockerdState,
    private readonly forgetExitHook: () => void,
  ) {}

  get host(): string {
    return `unix://${this.state.socket}`;
  }

  get pid(): number {
    return this.state.pid;
  }

  async restart(): Promise<void> {
    await terminate(this.state);
    this.state.pid = spawnDockerd(this.bin, this.state);
    const record = JSON.parse(await readFile(join(this.state.dir, OWNER_FILE), 'utf8')) as OwnerRecord;
    await writeOwner(this.state, record.ownerPid);
    await waitReady(this.state, 30_000);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await stopDockerd(this.state);
    this.forgetExitHook();
  }
}

/** Signal `pid` only while it is still our process; false when it is already gone. */
function signal(pid: number, marker: string, sig: NodeJS.Signals): boolean {
  if (!isOurProcess(pid, marker)) return false;
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false; // exited between the check and the signal
  }
}

/** SIGTERM (SIGKILL after 15 s, then its containerd too) and wait until gone. */
async function terminate(state: DockerdState): Promise<void> {
  if (!signal(state.pid, state.dir, 'SIGTERM')) return;
  if (await waitGone(state.pid, state.dir, 15_000)) return;
  signal(state.pid, state.dir, 'SIGKILL');
  await waitGone(state.pid, state.dir, 5000);
  // dockerd's own containerd would survive a SIGKILLed parent.
  const cpid = Number((await readFile(join(state.dir, 'exec', 'containerd', 'containerd.pid'), 'utf8').catch(() => '')).trim());
  if (cpid > 0 && signal(cpid, state.dir, 'SIGKILL')) await waitGone(cpid, state.dir, 5000);
}

/** Mount points at or below `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  const lines = readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  const points = lines
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => p !== undefined && (p === dir || p.startsWith(`${dir}/`)))
    // mountinfo escapes spaces etc. as octal; our paths have none, but decode anyway.
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** Stop a daemon from its state (possibly started by another process) and leave nothing behind. */
export async function stopDockerd(state: DockerdState): Promise<void> {
  if (isOurProcess(state.pid, state.dir)) {
    // Without this, shutdown waits out each container's 10 s stop timeout.
    try {
      const docker = new Dockerode({ socketPath: state.socket });
      const all = await docker.listContainers({ all: true });
      await Promise.all(all.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
    } catch {
      // An engine that cannot list or remove is stopped the hard way below.
    }
    await terminate(state);
  }
  for (const point of mountsUnder(state.dir)) {
    await run('umount', ['-l', point]).catch(() => undefined); // raced with the engine's own unmount
  }
  const left = mountsUnder(state.dir);
  await run('ip', ['link', 'del', state.bridge]).catch(() => undefined); // already gone
  if (left.length > 0) throw new Error(`could not unmount under ${state.dir}: ${left.join(', ')}`);
  await rm(state.dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------
// One engine per `vitest run`

const STATE_FILE = 'state.json';
const ERROR_FILE = 'error.json';
const OWNER_PID_FILE = 'owner.pid';
const RUN_DIR_PREFIX = 'sy-docker-run-';
let cachedHost: Promise<string> | undefined;

/**
 * The run-wide engine's DOCKER_HOST. The first caller (in any worker) wins a mkdir lock and
 * starts it; the others wait for its state file. Throws DOCKERD_NOT_FOUND & co. so Docker
 * suites fail loudly while the rest of the run is unaffected.
 */
export function sharedDockerHost(): Promise<string> {
  cachedHost ??= resolveSharedHost();
  return cachedHost;
}

async function resolveSharedHost(): Promise<string> {
  const { inject } = await import('vitest');
  const external = inject('dockerExternalHost');
  if (external) return external;
  const runDir = inject('dockerRunDir');
  if (!runDir) throw new Error('no shared Docker engine: add test/helpers/docker.ts to globalSetup in vitest.config.ts');
  const stateFile = join(runDir, STATE_FILE);
  const errorFile = join(runDir, ERROR_FILE);
  let leader = false;
  try {
    await mkdir(join(runDir, 'lock'));
    leader = true;
  } catch {
    // another worker is starting (or has started) the engine
  }
  if (leader) {
    try {
      // Owned by the vitest main process, whose teardown stops it; a worker may come and go.
      const owner = Number(await readFile(join(runDir, OWNER_PID_FILE), 'utf8').catch(() => ''));
      const d = await startDockerd(owner > 0 ? { ownerPid: owner } : {});
      await writeFile(`${stateFile}.tmp`, JSON.stringify(d.state));
      await rename(`${stateFile}.tmp`, stateFile);
      return d.host;
    } catch (err) {
      await writeFile(errorFile, JSON.stringify({ message: err instanceof Error ? err.message : String(err) }));
      throw err;
    }
  }
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (existsSync(stateFile)) return `unix://${(JSON.parse(await readFile(stateFile, 'utf8')) as DockerdState).socket}`;
    if (existsSync(errorFile)) throw new Error((JSON.parse(await readFile(errorFile, 'utf8')) as { message: string }).message);
    if (Date.now() > deadline) throw new Error('timed out waiting for another worker to start the shared dockerd');
    await sleep(100);
  }
}

/** Coordination directories of runs whose main process is gone. */
async function sweepStaleRunDirs(base = tmpdir()): Promise<void> {
  for (const name of await readdir(base).catch(() => [] as string[])) {
    if (!name.startsWith(RUN_DIR_PREFIX)) continue;
    const dir = join(base, name);
    const owner = Number(await readFile(join(dir, OWNER_PID_FILE), 'utf8').catch(() => ''));
    if (owner > 0 && !alive(owner)) await rm(dir, { recursive: true, force: true });
  }
}

/**
 * vitest globalSetup: prepares the coordination directory; starts nothing by itself. First
 * stops what interrupted runs left (a root dockerd, its bridge, its directories), and makes
 * sure an interrupted run of its own leaves nothing either.
 */
export async function setup(project: TestProject): Promise<void> {
  const external = process.env.SWITCHYARD_TEST_DOCKER_HOST;
  if (!external && process.getuid?.() === 0) {
    await sweepStaleEngines();
    await sweepStaleRunDirs();
  }
  sharedRunDir = external ? undefined : await mkdtemp(join(tmpdir(), RUN_DIR_PREFIX));
  if (sharedRunDir) {
    const runDir = sharedRunDir;
    await writeFile(join(runDir, OWNER_PID_FILE), String(process.pid));
    forgetExitHook = reapOnExit(() => {
      try {
        return JSON.parse(readFileSync(join(runDir, STATE_FILE), 'utf8')) as DockerdState;
      } catch {
        return undefined; // no engine was started, or teardown has stopped it
      }
    });
  }
  project.provide('dockerExternalHost', external || undefined);
  project.provide('dockerRunDir', sharedRunDir);
}

let sharedRunDir: string | undefined;
let forgetExitHook: () => void = () => undefined;

/** vitest globalSetup teardown: stops the shared engine if a worker started one. */
export async function teardown(): Promise<void> {
  const runDir = sharedRunDir;
  if (!runDir) return;
  const stateFile = join(runDir, STATE_FILE);
  if (existsSync(stateFile)) {
    const state = JSON.parse(await readFile(stateFile, 'utf8')) as DockerdState;
    // An engine that died mid-run fails every Docker test after it with ECONNREFUSED; its
    // log, the only record of why, goes with its directory below.
    if (!isOurProcess(state.pid, state.dir)) {
      process.stderr.write(`\nthe shared dockerd (pid ${state.pid}) exited before the end of the run; its last log lines:\n${await logTail(state.dir, 60)}\n`);
    }
    await stopDockerd(state);
  }
  await rm(runDir, { recursive: true, force: true });
  forgetExitHook();
}

// ---------------------------------------------------------------------------------------
// Offline test images

export const HTTPD_CMD = ['/bin/busybox', 'httpd', '-f', '-p', '80', '-h', '/www'];
const APPLETS = ['sh', 'httpd', 'wget', 'nc', 'sleep', 'cat', 'echo', 'ls', 'hostname', 'env', 'true', 'false', 'kill', 'ps', 'mkdir', 'rm'];

/** A busybox that runs in an empty rootfs must be static: no ELF interpreter (PT_INTERP). */
function isStaticElf(path: string): boolean {
  const b = readFileSync(path);
  if (b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2 || b[5] !== 1) return false; // 64-bit little-endian ELF only
  const phoff = Number(b.readBigUInt64LE(0x20));
  const phentsize = b.readUInt16LE(0x36);
  const phnum = b.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) if (b.readUInt32LE(phoff + i * phentsize) === 3) return false;
  return true;
}

export interface BusyboxImageOptions {
  /** Default: busybox httpd serving /www on port 80. */
  cmd?: string[];
  /** Content of /www/index.html. */
  index?: string;
  /** A HEALTHCHECK, in Dockerfile syntax after the keyword, e.g. `--interval=200ms CMD ["…"]`. */
  healthcheck?: string;
}

/** Build `tag` offline: static busybox rootfs → tar → `docker import` (never a pull). */
export async function buildBusyboxImage(host: string, tag: string, opts: BusyboxImageOptions = {}): Promise<void> {
  const busybox = '/bin/busybox';
  if (!existsSync(busybox) || !isStaticElf(busybox)) throw new Error(BUSYBOX_NOT_FOUND);
  const work = await mkdtemp(join(tmpdir(), 'sy-image-'));
  try {
    const root = join(work, 'rootfs');
    for (const d of ['bin', 'www', 'tmp', 'etc']) await mkdir(join(root, d), { recursive: true });
    await copyFile(busybox, join(root, 'bin', 'busybox'));
    for (const a of APPLETS) await symlink('busybox', join(root, 'bin', a));
    await writeFile(join(root, 'www', 'index.html'), opts.index ?? `switchyard test image ${tag}\n`);
    await writeFile(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/:/bin/sh\n');
    const tar = join(work, 'rootfs.tar');
    await run('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', root, '-cf', tar, '.']);
    const docker = new Dockerode(dockerodeOptions(host));
    const [repo, version = 'latest'] = splitTag(tag);
    const changes = [`CMD ${JSON.stringify(opts.cmd ?? HTTPD_CMD)}`, 'EXPOSE 80'];
    if (opts.healthcheck) changes.push(`HEALTHCHECK ${opts.healthcheck}`);
    const stream = await docker.importImage(tar, { repo, tag: version, changes });
    const out = await new Promise<string>((resolve, reject) => {
      let text = '';
      stream.on('data', (c: Buffer | string) => (text += c.toString()));
      stream.on('end', () => resolve(text));
      stream.on('error', reject);
    });
    if (/"error"/.test(out)) throw new Error(`docker import of ${tag} failed: ${out.trim()}`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function splitTag(tag: string): [string, string | undefined] {
  const i = tag.lastIndexOf(':');
  return i > tag.lastIndexOf('/') ? [tag.slice(0, i), tag.slice(i + 1)] : [tag, undefined];
}

// ---------------------------------------------------------------------------------------
// Cutting connections

export interface SocketProxy {
  /** `unix:///…` of the proxy: point an engine here instead of at the real socket. */
  readonly host: string;
  /** Reset every open connection (an events stream sees its connection drop); new ones still pass. */
  cut(): void;
  close(): Promise<void>;
}

/** A unix-socket proxy in front of a Docker socket, so a test can cut a long-lived stream. */
export async function startSocketProxy(targetHost: string): Promise<SocketProxy> {
  const target = targetHost.replace(/^unix:\/\//, '');
  const dir = await mkdtemp(join(tmpdir(), 'sy-proxy-'));
  const path = join(dir, 'proxy.sock');
  const sockets = new Set<Socket>();
  const server = createServer((inbound) => {
    splice(inbound, connect(target), sockets);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, resolve);
  });
  return {
    host: `unix://${path}`,
    cut() {
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
