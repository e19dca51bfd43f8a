import { readFile, writeFile } from 'node:fs/promises';
import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EtcdHistory } from '../src/adapters/etcd/history.js';
import { startHistoryRecorder, type HistoryRecorder } from '../src/app/history.js';
import { buildRuntime, type Runtime } from '../src/app/runtime.js';
import { loadConfig } from '../src/config/load.js';
import type { HistoryEntry } from '../src/core/facades.js';
import { nullFeed } from '../src/core/feed.js';
import type { Reply } from '../src/core/reply.js';
import { etcdctl, startEtcd, type EtcdProcess } from './helpers/etcd.js';
import { testLog, until } from './helpers/feed.js';
import { makeWorkspace, ONCALL, OPS_CHANNEL, type Workspace } from './helpers/workspace.js';

const caller = { userId: ONCALL, channel: OPS_CHANNEL, source: 'slack' as const };
const RETENTION = { retentionMs: 7 * 86_400_000, maxEntries: 100_000 };

async function run(rt: Runtime, text: string): Promise<Reply> {
  const reply = await rt.router.dispatch({ text, caller });
  expect(reply.ok, `${text}: ${reply.summary}`).toBe(true);
  return reply;
}

/** What `history` lists for a service, newest first (straight from the store). */
async function entries(rt: Runtime, service: string, limit = 200): Promise<HistoryEntry[]> {
  return (await rt.facades.history.list({ service, limit })).entries;
}

const lines = (list: HistoryEntry[]) => list.map((e) => `${e.subject} ${e.what.split(' ')[0]} via ${e.via}${e.command ? ` ${e.command}` : ''}`);

function recorder(rt: Runtime, replica: string): HistoryRecorder {
  return startHistoryRecorder({ registry: rt.registry, history: new EtcdHistory(rt.registry), retention: RETENTION, log: testLog(), replica, ttlSec: 2 });
}

describe('history (shared etcd)', () => {
  let ws: Workspace;
  let rt: Runtime;
  let rec: HistoryRecorder | undefined;

  beforeAll(async () => {
    ws = await makeWorkspace();
    rt = await buildRuntime({ config: await loadConfig(ws.configPath, {}), secrets: {}, log: testLog(), feed: nullFeed });
  });
  afterEach(async () => {
    await rec?.stop();
    rec = undefined;
  });
  afterAll(async () => {
    await rt?.close();
    await ws?.dispose();
  });

  it('records commands, lease expiry and an etcdctl edit with their attribution, newest first', async () => {
    rec = recorder(rt, 'r1');
    await until('the recorder to watch', () => rec!.service.watching);
    await run(rt, 'register web a-1 10.0.0.1:80');
    await run(rt, 'weight web a-1 20');
    await run(rt, 'register web t-1 10.0.0.9:80 --ttl 1s');
    await etcdctl(ws.endpoint, 'put', `${ws.prefixes.services}/web/x-1`, '10.0.0.7:80');
    await run(rt, 'register api b-1 10.0.1.1:80');
    await until('the lease expiry to be recorded', async () => (await entries(rt, 'web')).some((e) => e.via === 'lease expiry'), 10_000);

    const web = await entries(rt, 'web');
    expect(lines(web)).toEqual([
      'web/t-1 removed via lease expiry',
      'web/x-1 registered via outside edit',
      'web/t-1 registered via command register',
      'web/a-1 weight via command weight',
      'web/a-1 registered via command register',
    ]);
    expect(web.filter((e) => e.via === 'command').every((e) => e.by === ONCALL)).toBe(true);
    expect(web.find((e) => e.via === 'outside edit')!.by).toBeUndefined();
    const revisions = web.map((e) => BigInt(e.revision));
    expect(revisions).toEqual([...revisions].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0)));

    // From chat: the table, one page, and the next page continuing exactly where it stopped.
    const first = await run(rt, 'history web --limit 2');
    expect(first.summary).toBe('2 changes to web, newest first');
    expect(first.tables![0]!.table.rows.map((r) => r[1])).toEqual([`web/t-1 ${web[0]!.what}`, `web/x-1 ${web[1]!.what}`]);
    const more = first.details!.find((d) => d.startsWith('older changes'))!;
    const nextCmd = /`(history [^`]+)`/.exec(more)![1]!;
    expect(nextCmd).toBe(`history web --limit 2 --before ${web[1]!.revision}`);
    const second = await run(rt, nextCmd);
    expect(second.tables![0]!.table.rows.map((r) => r[4])).toEqual([web[2]!.revision, web[3]!.revision]);

    // Unfiltered history has the other service too; --since in the future-proof sense: all is recent.
    const all = await run(rt, 'history --since 1h');
    expect(all.tables![0]!.table.rows.some((r) => r[1]!.startsWith('api/b-1 registered'))).toBe(true);

    // status <service> ends with the last three changes.
    const status = await run(rt, 'status web');
    const last = status.tables!.find((t) => t.title?.startsWith('last changes of web'));
    expect(last?.table.rows.map((r) => r[1])).toEqual(web.slice(0, 3).map((e) => `${e.subject} ${e.what}`));
  });

  it('a bad --before or --limit is refused with a clear error', async () => {
    const bad = await rt.router.dispatch({ text: 'history web --limit 0', caller });
    expect(bad.ok).toBe(false);
    expect(bad.code).toBe('E_BAD_ARGS');
    const badBefore = await rt.router.dispatch({ text: 'history --before abc', caller });
    expect(badBefore.code).toBe('E_BAD_ARGS');
    expect(badBefore.summary + (badBefore.details ?? []).join(' ')).toContain('revision');
  });

  it('trims by count and by age, oldest first', async () => {
    rec = recorder(rt, 'r2');
    await until('the recorder to watch', () => rec!.service.watching);
    for (let i = 1; i <= 5; i++) await run(rt, `register trim c-${i} 10.0.2.${i}:80`);
    await until('five recorded changes', async () => (await entries(rt, 'trim')).length === 5);
    const history = new EtcdHistory(rt.registry);
    // Other tests' entries share this workspace's history: cap relative to what is there.
    const total = (await history.list({ limit: 200 })).entries.length;
    const deleted = await history.trim({ retentionMs: RETENTION.retentionMs, maxEntries: total - 2 });
    expect(deleted).toBe(2);
    expect((await history.list({ limit: 200 })).entries).toHaveLength(total - 2);
    // The newest survive.
    expect(lines(await entries(rt, 'trim')).slice(0, 5)).toEqual(expect.arrayContaining(['trim/c-5 registered via command register']));
    // By age: with the clock two days on, a one-day retention leaves nothing.
    expect(await history.trim({ retentionMs: 86_400_000, maxEntries: 100_000 }, Date.now() + 2 * 86_400_000)).toBe(total - 2);
    expect((await history.list({ limit: 10 })).entries).toEqual([]);
    // …and with the real clock, nothing recent is touched.
    await run(rt, 'register trim c-9 10.0.2.9:80');
    await until('the new change', async () => (await entries(rt, 'trim')).length === 1);
    expect(await history.trim({ retentionMs: 86_400_000, maxEntries: 100_000 })).toBe(0);
  });
});

describe('history across a restart and an etcd compaction (private etcd)', () => {
  let etcd: EtcdProcess;
  let ws: Workspace;
  let client: Etcd3;
  let writer: Runtime;
  let bot: Runtime | undefined;
  let rec: HistoryRecorder | undefined;

  beforeAll(async () => {
    etcd = await startEtcd();
    ws = await makeWorkspace();
    // Compaction is etcd-wide: this workspace gets an etcd of its own.
    await writeFile(ws.configPath, (await readFile(ws.configPath, 'utf8')).replace(ws.endpoint, etcd.endpoint));
    client = new Etcd3({ hosts: etcd.endpoint });
    writer = await buildRuntime({ config: await loadConfig(ws.configPath, {}), secrets: {}, log: testLog(), feed: nullFeed });
  });
  afterAll(async () => {
    await rec?.stop();
    await bot?.close();
    await writer?.close();
    client?.close();
    await ws?.dispose();
    await etcd?.dispose();
  });

  const startBot = async (name: string) => {
    bot = await buildRuntime({ config: await loadConfig(ws.configPath, {}), secrets: {}, log: testLog(), feed: nullFeed });
    rec = recorder(bot, name);
    await until('the recorder to watch', () => rec!.service.watching);
  };
  const stopBot = async () => {
    await rec?.stop();
    await bot?.close();
    rec = undefined;
    bot = undefined;
  };

  it('keeps every change once across a restart, and keeps it after etcd compacts', async () => {
    await startBot('first');
    await run(writer, 'register web r-1 10.0.0.1:80');
    await run(writer, 'register web r-2 10.0.0.2:80');
    await until('the first changes', async () => (await entries(writer, 'web')).length === 2);
    await stopBot();

    // While no recorder runs: a command and an etcdctl delete.
    await run(writer, 'deregister web r-1');
    await etcdctl(etcd.endpoint, 'del', `${ws.prefixes.services}/web/r-2`);
    await startBot('second');
    await until('the changes made while down', async () => (await entries(writer, 'web')).length === 4);
    await run(writer, 'register web r-3 10.0.0.3:80');
    await until('a change after the restart', async () => (await entries(writer, 'web')).length === 5);
    const before = lines(await entries(writer, 'web'));
    expect(before).toEqual([
      'web/r-3 registered via command register',
      'web/r-2 removed via outside edit',
      'web/r-1 removed via command deregister',
      'web/r-2 registered via command register',
      'web/r-1 registered via command register',
    ]);

    // Compaction erases etcd's own history; the recorded one is live keys and stays.
    await stopBot();
    await run(writer, 'register web r-4 10.0.0.4:80');
    const { header } = await client.get('/').exec();
    await client.kv.compact({ revision: header.revision, physical: true });
    await startBot('third');
    await until('the gap to be recorded', async () => (await writer.facades.history.list({ limit: 50 })).entries.some((e) => e.via === 'gap'), 10_000);
    const after = await writer.facades.history.list({ limit: 50 });
    expect(after.entries[0]!.via).toBe('gap');
    expect(after.entries[0]!.what).toContain('etcd compacted its history');
    expect(lines(await entries(writer, 'web'))).toEqual(before);
    // Still recording after the gap.
    await run(writer, 'register web r-5 10.0.0.5:80');
    await until('a change after the gap', async () => (await entries(writer, 'web'))[0]?.subject === 'web/r-5');
    expect(await entries(writer, 'web')).toHaveLength(6);
  });
});
