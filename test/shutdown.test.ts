/**
 * Every long-running process exits within 5 s of SIGTERM or SIGINT and hands on what it
 * holds at once: `serve` (the feed poster and a standby), `agent` and `shell --agent`, run
 * as real processes against the shared etcd (and the Slack stand-in, a real HAProxy).
 * "At once" is shown by the lease: revoked (etcd reports it gone) the moment the process
 * is, where a crashed process's lease would live on for its TTL (10 s).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createEtcdRegistry } from '../src/adapters/etcd/registry.js';
import { EtcdServiceLocks } from '../src/orchestrator/lock.js';
import { freePort, startHaproxy, testLog, waitFor, type TestHaproxy } from './helpers/haproxy.js';
import { startSlackStandIn, type SlackStandIn } from './helpers/slack.js';
import { makeWorkspace, OPS_CHANNEL, type Workspace } from './helpers/workspace.js';

const BIN = fileURLToPath(new URL('../bin/switchyard.js', import.meta.url));
/** The product promise (SPEC: "exits within 5 s of SIGTERM/SIGINT"). */
const EXIT_WITHIN_MS = 5000;
/** Start-up of a process through tsx on a loaded machine: a liveness bound, not a figure. */
const START_WITHIN_MS = 60_000;

interface Proc {
  child: ChildProcess;
  out(): string;
  err(): string;
  /** Resolves with the exit status and when it came. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  /** Send `signal`; resolves with the status and how long the exit took. */
  stop(signal: NodeJS.Signals): Promise<{ code: number | null; ms: number }>;
  /** Parsed pino lines on stderr whose msg matches. */
  logs(msg: RegExp): { time: number; msg: string }[];
}

const running = new Set<ChildProcess>();

function start(args: string[], env: Record<string, string> = {}, stdin: 'pipe' | 'ignore' = 'ignore'): Proc {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, LOG_LEVEL: 'info', ...env }, stdio: [stdin, 'pipe', 'pipe'] });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal, at: Date.now() });
    });
  });
  return {
    child,
    out: () => stdout,
    err: () => stderr,
    exited,
    async stop(signal) {
      const t0 = Date.now();
      child.kill(signal);
      const { code, at } = await exited;
      return { code, ms: at - t0 };
    },
    logs: (msg) =>
      stderr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { time: number; msg: string })
        .filter((l) => msg.test(l.msg)),
  };
}

afterEach(() => {
  // A process a failed test left behind is killed, never waited for.
  for (const child of running) child.kill('SIGKILL');
  running.clear();
});

describe('shutdown of long-running processes (real processes, etcd, HAProxy)', () => {
  let ws: Workspace;
  let standIn: SlackStandIn;
  let hap: TestHaproxy;

  beforeAll(async () => {
    [ws, standIn, hap] = await Promise.all([makeWorkspace(), startSlackStandIn(), startHaproxy()]);
    await appendFile(ws.configPath, `slack:\n  feedChannel: ${OPS_CHANNEL}\n`);
    const listen = await freePort();
    await writeFile(
      join(ws.dir, 'agent.yaml'),
      [
        `etcd: { endpoints: [${ws.endpoint}] }`,
        `registry: { prefix: ${ws.prefixes.services}, switchyardPrefix: ${ws.prefixes.switchyard} }`,
        'acl: { path: ./acl.yaml }',
        'haproxy:',
        `  config: ${hap.config}`,
        `  adminSocket: ${hap.adminSocket}`,
        `  masterSocket: ${hap.masterSocket}`,
        `  binary: ${hap.binary}`,
        '  agentId: stop-1',
        'services:',
        `  web: { image: test, port: 80, listen: 127.0.0.1:${listen} }`,
        '',
      ].join('\n'),
    );
  });

  afterAll(async () => {
    await hap?.dispose();
    await standIn?.close();
    await ws?.dispose();
  });

  /** Candidate keys of the feed poster election: lease ID and the pid in the value. */
  const candidates = async () => {
    const dir = `${ws.prefixes.switchyard}/feed/election/poster/`;
    const kvs = (await ws.etcd.getAll().prefix(dir).exec()).kvs;
    return kvs.map((kv) => ({ lease: kv.key.toString().slice(dir.length), pid: Number(kv.value.toString().split('/')[1]) }));
  };
  /** What etcd says of a lease: -1 once it is revoked or expired. */
  const leaseTtl = async (id: string) => Number((await ws.etcd.leaseClient.leaseTimeToLive({ ID: id, keys: false })).TTL);

  const serve = async () => {
    const env = {
      SLACK_BOT_TOKEN: 'xoxb-shutdown',
      SLACK_SIGNING_SECRET: 'shutdown-secret',
      SLACK_API_URL: standIn.apiUrl,
      HOST: '127.0.0.1',
      PORT: String(await freePort()),
    };
    const p = start(['serve', '--config', ws.configPath], env);
    // A positive sign it runs for the feed: its candidate key is in etcd.
    const mine = await waitFor('the replica to campaign', async () => (await candidates()).find((c) => c.pid === p.child.pid), START_WITHIN_MS, 50);
    return { ...p, lease: mine.lease };
  };

  it('serve: a standby and then the poster exit 0 within 5 s of SIGTERM/SIGINT, and the role passes on at once', async () => {
    const a = await serve();
    await waitFor('A to post the feed', () => a.logs(/^this replica now posts the #ops feed$/).length > 0, START_WITHIN_MS, 50);
    const b = await serve();

    // The standby: it used to log "shutting down" and hang there.
    const stoppedB = await b.stop('SIGTERM');
    expect(stoppedB.code).toBe(0);
    expect(stoppedB.ms).toBeLessThan(EXIT_WITHIN_MS);
    expect(await leaseTtl(b.lease)).toBe(-1);
    expect((await candidates()).map((c) => c.pid)).toEqual([a.child.pid]);
    expect(b.err()).not.toMatch(/did not finish|could not stop/);

    // The poster: a standby becomes the poster well before A's lease (10 s) could expire.
    const c = await serve();
    const t0 = Date.now();
    const stoppedA = await a.stop('SIGTERM');
    expect(stoppedA.code).toBe(0);
    expect(stoppedA.ms).toBeLessThan(EXIT_WITHIN_MS);
    expect(await leaseTtl(a.lease)).toBe(-1);
    const [elected] = await waitFor(
      'C to post the feed',
      () => {
        const l = c.logs(/^this replica now posts the #ops feed$/);
        return l.length > 0 && l;
      },
      EXIT_WITHIN_MS,
      20,
    );
    expect(elected!.time - t0).toBeLessThan(EXIT_WITHIN_MS);
    expect(a.err()).toMatch(/"msg":"this replica no longer posts the #ops feed"/);

    const stoppedC = await c.stop('SIGINT');
    expect(stoppedC.code).toBe(0);
    expect(stoppedC.ms).toBeLessThan(EXIT_WITHIN_MS);
    expect(await candidates()).toEqual([]);
  }, 180_000);

  const agentKey = async () => (await ws.etcd.get(`${ws.prefixes.switchyard}/agents/stop-1`).exec()).kvs[0];

  it.each(['SIGTERM', 'SIGINT'] as const)(
    'agent: exits 0 within 5 s of %s and its status key goes with it',
    async (signal) => {
      const agent = start(['agent', '--config', join(ws.dir, 'agent.yaml')]);
      const kv = await waitFor('the agent status key', agentKey, START_WITHIN_MS, 50);
      const stopped = await agent.stop(signal);
      expect(stopped.code).toBe(0);
      expect(stopped.ms).toBeLessThan(EXIT_WITHIN_MS);
      expect(await agentKey()).toBeUndefined();
      expect(await leaseTtl(kv.lease)).toBe(-1);
    },
    120_000,
  );

  it('shell --agent: stdin still open, exits 143 within 5 s of SIGTERM, its agent gone at once', async () => {
    const shell = start(['shell', '--agent', '--config', join(ws.dir, 'agent.yaml')], {}, 'pipe');
    shell.child.stdin!.write('help\n');
    await waitFor('the reply to help', () => /\bstatus\b/.test(shell.out()), START_WITHIN_MS, 50);
    const kv = await waitFor('the agent status key', agentKey, START_WITHIN_MS, 50);
    const stopped = await shell.stop('SIGTERM');
    expect(stopped.code).toBe(143);
    expect(stopped.ms).toBeLessThan(EXIT_WITHIN_MS);
    expect(shell.err()).toContain('switchyard shell: stopped by SIGTERM; no further commands read');
    expect(await agentKey()).toBeUndefined();
    expect(await leaseTtl(kv.lease)).toBe(-1);
  }, 120_000);

  it('closing the registry releases the service locks this process holds, at once', async () => {
    const registry = createEtcdRegistry(
      { etcd: { endpoints: [ws.endpoint] }, registry: { prefix: ws.prefixes.services, switchyardPrefix: ws.prefixes.switchyard } },
      { log: testLog },
    );
    const locks = new EtcdServiceLocks(registry.client, { keyOf: (s) => registry.layout.lockKey(s), ttlMs: 30_000, endpoints: [ws.endpoint], log: testLog });
    const lockKey = registry.layout.lockKey('web');
    try {
      const held = await locks.acquire('web', { by: 'U1', what: 'scale web 3' }, { waitMs: 0 });
      const kv = (await ws.etcd.get(lockKey).exec()).kvs[0];
      expect(kv?.lease).toBeDefined();
      expect(held.held).toBe(true);
      await registry.close();
      expect(held.held).toBe(false);
      expect(await ws.etcd.get(lockKey).string()).toBeNull();
      expect(await leaseTtl(kv!.lease)).toBe(-1);
    } finally {
      await registry.close();
    }
  });
});
