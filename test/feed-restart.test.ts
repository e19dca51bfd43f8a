import { readFile, writeFile } from 'node:fs/promises';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { nullFeed } from '../src/core/feed.js';
import { buildRuntime, type Runtime } from '../src/app/runtime.js';
import { startEtcd, type EtcdProcess } from './helpers/etcd.js';
import { changeLines, feedPosts, sectionText, startReplica, testLog, until, type Replica } from './helpers/feed.js';
import { startSlackStandIn, type SlackStandIn } from './helpers/slack.js';
import { makeWorkspace, ONCALL, OPS_CHANNEL, type Workspace } from './helpers/workspace.js';

const caller = { userId: ONCALL, channel: OPS_CHANNEL, source: 'slack' as const };

/** Lines of the feed that say `subject` then `what` (e.g. "registered"). */
function said(standIn: SlackStandIn, subject: string, what: string): string[] {
  return changeLines(feedPosts(standIn)).filter((l) => l.startsWith(`*${subject}* ${what}`));
}

async function run(writer: Runtime, text: string): Promise<void> {
  const reply = await writer.router.dispatch({ text, caller });
  expect(reply.ok, `${text}: ${reply.summary}`).toBe(true);
}

describe('#ops feed across bot restarts (real etcd)', () => {
  let ws: Workspace;
  let standIn: SlackStandIn;
  let writer: Runtime;
  const bots: Replica[] = [];

  beforeAll(async () => {
    ws = await makeWorkspace();
    standIn = await startSlackStandIn();
    // Commands while the bot is down come from another process's router (a shell).
    writer = await buildRuntime({ config: await loadConfig(ws.configPath, {}), secrets: {}, log: testLog(), feed: nullFeed });
  });

  afterAll(async () => {
    for (const b of bots) await b.stop();
    await writer?.close();
    await standIn?.close();
    await ws?.dispose();
  });

  const startBot = async () => {
    const bot = await startReplica({ configPath: ws.configPath, standIn });
    bots.push(bot);
    await until('the feed poster to watch', () => bot.poster!.watching);
    return bot;
  };

  it('reports every change exactly once: before, during and after a restart', async () => {
    const first = await startBot();
    await run(writer, 'register web a-1 10.0.0.1:80');
    await run(writer, 'register web a-2 10.0.0.2:80');
    await ws.etcd.put(`${ws.prefixes.services}/web/a-3`).value('10.0.0.3:80').exec();
    await run(writer, 'register web t-1 10.0.0.9:80 --ttl 1s');
    await until('the first changes', () => ['a-1', 'a-2', 'a-3', 't-1'].every((n) => said(standIn, `web/${n}`, 'registered').length === 1));

    // Changes right before the stop: posted by this bot or, if it had no time, by the next.
    await run(writer, 'register web b-1 10.0.1.1:80');
    await ws.etcd.put(`${ws.prefixes.services}/web/b-2`).value('10.0.1.2:80').exec();
    await first.stop();

    // While no bot runs: a deregistration, an etcdctl-style delete, a lease expiry.
    await run(writer, 'deregister web a-1');
    await ws.etcd.delete().key(`${ws.prefixes.services}/web/a-3`).exec();
    await until('the TTL of web/t-1 to run out', async () => (await ws.instanceValue('web', 't-1')) === null, 8000);

    await startBot();
    await until('the changes made while the bot was down', () =>
      [
        said(standIn, 'web/b-1', 'registered'),
        said(standIn, 'web/b-2', 'registered'),
        said(standIn, 'web/a-1', 'removed'),
        said(standIn, 'web/a-3', 'removed'),
        said(standIn, 'web/t-1', 'removed'),
      ].every((l) => l.length >= 1),
    );
    await run(writer, 'register web c-1 10.0.2.1:80');
    await until('a change after the restart', () => said(standIn, 'web/c-1', 'registered').length >= 1);
    await bots.at(-1)!.sink.idle();

    for (const n of ['a-1', 'a-2', 'a-3', 't-1', 'b-1', 'b-2', 'c-1']) expect(said(standIn, `web/${n}`, 'registered'), n).toHaveLength(1);
    for (const n of ['a-1', 'a-3', 't-1']) expect(said(standIn, `web/${n}`, 'removed'), n).toHaveLength(1);
    expect(said(standIn, 'web/a-1', 'removed')[0]).toContain('— by <@U0ONCALL> via `deregister`');
    expect(said(standIn, 'web/a-3', 'removed')[0]).toContain('— (changed outside switchyard)');
    expect(said(standIn, 'web/t-1', 'removed')[0]).toContain('— (lease expired)');
    expect(said(standIn, 'web/t-1', 'registered')[0]).toContain('(with a TTL) — by <@U0ONCALL> via `register`');
  });
});

describe('#ops feed after etcd compacted the history it needed (private etcd)', () => {
  let etcd: EtcdProcess;
  let ws: Workspace;
  let client: Etcd3;
  let standIn: SlackStandIn;
  let writer: Runtime;
  const bots: Replica[] = [];

  beforeAll(async () => {
    etcd = await startEtcd();
    ws = await makeWorkspace();
    // The same workspace layout, on an etcd of its own: compaction is etcd-wide.
    await writeFile(ws.configPath, (await readFile(ws.configPath, 'utf8')).replace(ws.endpoint, etcd.endpoint));
    client = new Etcd3({ hosts: etcd.endpoint });
    standIn = await startSlackStandIn();
    writer = await buildRuntime({ config: await loadConfig(ws.configPath, {}), secrets: {}, log: testLog(), feed: nullFeed });
  });

  afterAll(async () => {
    for (const b of bots) await b.stop();
    await writer?.close();
    client?.close();
    await standIn?.close();
    await ws?.dispose();
    await etcd?.dispose();
  });

  it('reports the lost stretch as a gap, not silence, and goes on from there', async () => {
    const first = await startReplica({ configPath: ws.configPath, standIn });
    bots.push(first);
    await until('the feed poster to watch', () => first.poster!.watching);
    await run(writer, 'register web g-1 10.0.0.1:80');
    await until('the first change', () => said(standIn, 'web/g-1', 'registered').length === 1);
    await first.stop();

    await run(writer, 'register web g-2 10.0.0.2:80');
    await run(writer, 'register web g-3 10.0.0.3:80');
    const { header } = await client.get('/').exec();
    await client.kv.compact({ revision: header.revision, physical: true });

    const second = await startReplica({ configPath: ws.configPath, standIn });
    bots.push(second);
    const gap = () => feedPosts(standIn).find((p) => sectionText(p).includes('feed gap'));
    await until('the gap report', () => gap() !== undefined);
    expect(sectionText(gap()!)).toMatch(/etcd compacted its history, so the changes after revision \d+ up to \d+ cannot be listed one by one/);
    expect(sectionText(gap()!)).toContain('holds 3 instances in 1 service');

    await run(writer, 'register web g-4 10.0.0.4:80');
    await until('a change after the gap', () => said(standIn, 'web/g-4', 'registered').length === 1);
    expect(said(standIn, 'web/g-2', 'registered')).toHaveLength(0);
    expect(await second.runtime.metrics.registry.metrics()).toContain('switchyard_feed_gaps_total 1');
  });
});
