/**
 * Issue-2 benchmarks: Slack ack latency under 50 concurrent slash commands, router
 * throughput for 1,000 registers against a real etcd, and resident memory of `serve`
 * idle and with 10,000 registered instances.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import pino from 'pino';
import { loadConfig } from '../src/config/load.js';
import { buildRuntime } from '../src/runtime.js';
import { startEtcd } from '../test/helpers/etcd-server.js';
import { freePort } from '../test/helpers/net.js';
import { postSlashCommand, startSlackStandIn } from '../test/helpers/slack.js';
import { fmt, summarize, writeSection } from './lib.js';

const SECRET = 'bench-secret';
const USER = 'U0BENCH';


async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
  return kb / 1024;
}

async function waitFor(cond: () => Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function main() {
  const etcd = await startEtcd();
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-bench-'));
  const standIn = await startSlackStandIn();
  try {
    await writeFile(join(dir, 'acl.yaml'), `rules:\n  - allow: ["*"]\n    users: [${USER}]\n`);
    const configPath = join(dir, 'switchyard.yaml');
    await writeFile(configPath, `etcd:\n  endpoints: [${etcd.endpoint}]\nacl:\n  path: ./acl.yaml\n`);

    // 1. Router throughput: 1,000 register commands, 50 in flight (like a busy channel).
    const runtime = await buildRuntime({ config: await loadConfig(configPath, {}), secrets: {}, log: pino({ level: 'silent' }, { write: () => {} }), feed: { publish: () => {} } });
    const total = 1000;
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (next < total) {
          const i = next++;
          const r = await runtime.router.dispatch({ text: `register bench b-${i} 10.9.${i >> 8}.${i & 255}:80`, caller: { userId: USER, channel: 'dm', source: 'shell' } });
          if (!r.ok) throw new Error(`register failed: ${r.summary}`);
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const perSec = total / seconds;
    await runtime.close();

    // 2 + 3. A real `serve` process: ack latency and memory.
    const port = await freePort();
    // The compiled build, as the Docker image runs it (tsx would add its own transpiler's memory).
    const bin = fileURLToPath(new URL('../dist/src/cli.js', import.meta.url));
    const child = spawn(process.execPath, [bin, 'serve', '--config', configPath], {
      env: { ...process.env, PORT: String(port), SLACK_BOT_TOKEN: 'xoxb-bench', SLACK_SIGNING_SECRET: SECRET, SLACK_API_URL: standIn.apiUrl, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    try {
      const health = `http://127.0.0.1:${port}/healthz`;
      await waitFor(async () => (await fetch(health).catch(() => undefined))?.ok === true, 20_000, 'serve to be healthy');
      await new Promise((r) => setTimeout(r, 2000)); // let start-up garbage settle
      const idleRss = await rssMb(child.pid!);

      const events = `http://127.0.0.1:${port}/slack/events`;
      // 10 bursts of 50 concurrent signed slash commands, each a real etcd write.
      const load = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./ack-load.ts', import.meta.url)), events, SECRET, standIn.responseUrl(''), 'register ack a-{i} 10.8.0.1:80', '10', '50'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let loadOut = '';
      load.stdout.on('data', (d: Buffer) => (loadOut += d.toString()));
      const loadCode = await new Promise<number | null>((r) => load.on('close', r));
      if (loadCode !== 0) throw new Error(`ack load generator failed (${loadCode})`);
      const ackMs = JSON.parse(loadOut) as number[];
      const ack = summarize(ackMs);
      await new Promise((r) => setTimeout(r, 1000));
      const afterAckRss = await rssMb(child.pid!);

      // 10,000 instances in the registry, then a full `status` so the bot has read them all.
      const client = new Etcd3({ hosts: etcd.endpoint });
      for (let batch = 0; batch < 100; batch++) {
        const txn = client.if('/services/none', 'Version', '==', 0);
        const ops = Array.from({ length: 100 }, (_, j) => {
          const i = batch * 100 + j;
          return client.put(`/services/svc-${i % 100}/i-${i}`).value(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}:80`);
        });
        await txn.then(...ops).commit();
      }
      client.close();
      await postSlashCommand(events, SECRET, { text: 'status', user_id: USER, channel_id: 'C0BENCH', response_url: standIn.responseUrl('big') });
      await standIn.waitFor((c) => c.kind === 'response' && c.method === 'big' && !String(c.body.text).startsWith('running'), 30_000);
      await new Promise((r) => setTimeout(r, 1000));
      const loadedRss = await rssMb(child.pid!);

      await writeSection('01-core', 'Core: Slack ack, router throughput, memory (issue 2)', [
        { metric: `Slack ack latency, bursts of 50 concurrent signed /ops register (n=${ack.n}) p50`, value: `${fmt(ack.p50)} ms`, target: '—', pass: undefined },
        { metric: 'Slack ack latency p99', value: `${fmt(ack.p99)} ms`, target: '≤ 50 ms', pass: ack.p99 <= 50 },
        { metric: `${total} register commands through the router (50 in flight), real etcd`, value: `${fmt(perSec, 0)} commands/s (${fmt(seconds, 2)} s)`, target: '≥ 500/s', pass: perSec >= 500 },
        { metric: 'RSS of idle `serve`', value: `${fmt(idleRss)} MB`, target: '≤ 150 MB', pass: idleRss <= 150 },
        { metric: 'RSS of `serve` after the 500 slash commands (500 registrations)', value: `${fmt(afterAckRss)} MB`, target: '—', pass: undefined },
        { metric: 'RSS of `serve` after 10,000 instances + full `status`', value: `${fmt(loadedRss)} MB`, target: '≤ 150 MB', pass: loadedRss <= 150 },
      ], ['`npm run bench` (bench/core.ts); etcd 3.4 on loopback with a fresh data dir; Slack Web API is a local stand-in.']);
      console.log(`ack p50 ${fmt(ack.p50)} p99 ${fmt(ack.p99)} ms; ${fmt(perSec, 0)} registers/s; RSS idle ${fmt(idleRss)} MB, 10k ${fmt(loadedRss)} MB`);
    } finally {
      child.kill('SIGTERM');
    }
  } finally {
    await standIn.close();
    await etcd.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
