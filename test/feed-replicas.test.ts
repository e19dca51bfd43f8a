import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { nullFeed } from '../src/core/feed.js';
import { buildRuntime, type Runtime } from '../src/app/runtime.js';
import { startProxy, type EtcdProxy } from './helpers/etcd.js';
import { changeLines, feedPosts, startReplica, testLog, until, type Replica } from './helpers/feed.js';
import { startSlackStandIn, type SlackStandIn } from './helpers/slack.js';
import { makeWorkspace, ONCALL, OPS_CHANNEL, type Workspace } from './helpers/workspace.js';

const TTL_SEC = 2;
const caller = { userId: ONCALL, channel: OPS_CHANNEL, source: 'slack' as const };

describe('#ops feed with two serve replicas (real etcd)', () => {
  let ws: Workspace;
  let standIn: SlackStandIn;
  let proxy: EtcdProxy;
  let writer: Runtime;
  let a: Replica;
  let b: Replica;

  beforeAll(async () => {
    ws = await makeWorkspace();
    standIn = await startSlackStandIn();
    // Replica A reaches etcd through a proxy: blocking it is A dying, as far as etcd can tell.
    proxy = await startProxy(ws.endpoint);
    writer = await buildRuntime({ config: await loadConfig(ws.configPath, {}), secrets: {}, log: testLog(), feed: nullFeed });
  });

  afterAll(async () => {
    proxy?.unblock();
    await b?.stop();
    await a?.stop();
    await proxy?.close();
    await writer?.close();
    await standIn?.close();
    await ws?.dispose();
  });

  const register = async (names: string[]) => {
    for (const n of names) expect((await writer.router.dispatch({ text: `register web ${n} 10.0.0.1:80`, caller })).ok).toBe(true);
  };
  /** Who posted each registration line: the feed client token tells the replicas apart. */
  const posters = (name: string) =>
    feedPosts(standIn)
      .filter((p) => changeLines([p]).some((l) => l.startsWith(`*web/${name}* registered`)))
      .map((p) => p.token);

  it('one replica posts; when it dies the other takes over within the TTL, losing and doubling nothing', async () => {
    a = await startReplica({ configPath: ws.configPath, standIn, token: 'xoxb-replica-a', endpoints: [proxy.endpoint], ttlSec: TTL_SEC });
    await until('A to become the poster', () => a.poster!.watching);
    b = await startReplica({ configPath: ws.configPath, standIn, token: 'xoxb-replica-b', ttlSec: TTL_SEC });

    await register(['r-1', 'r-2']);
    await until('A to post the first changes', () => ['r-1', 'r-2'].every((n) => posters(n).length === 1));
    expect(['r-1', 'r-2'].map(posters)).toEqual([['xoxb-replica-a'], ['xoxb-replica-a']]);
    expect(b.poster!.leading).toBe(false);
    // A crash between a post and saving the position would repeat that post (the position
    // is saved only after Slack took the message); "between changes" means after it.
    const written = (await ws.etcd.get(`${ws.prefixes.services}/web/r-2`).exec()).kvs[0]!.mod_revision;
    await until('A to save its position', async () => {
      const pos = await ws.etcd.get(`${ws.prefixes.switchyard}/feed/position`).json();
      return BigInt((pos as { revision?: string } | null)?.revision ?? 0) >= BigInt(written);
    });

    // A dies: its lease is no longer renewed. Changes made meanwhile wait in etcd.
    proxy.block();
    const killedAt = Date.now();
    await register(['r-3', 'r-4']);
    await until('B to take over', () => b.poster!.watching, 15_000);
    const takeoverMs = Date.now() - killedAt;
    await until('B to post the changes made while nobody posted', () => ['r-3', 'r-4'].every((n) => posters(n).length >= 1));
    await register(['r-5']);
    await until('B to post a later change', () => posters('r-5').length >= 1);

    // A comes back (a partition heals): it finds its term over and posts nothing.
    proxy.unblock();
    await until('A to notice it is no longer the poster', () => !a.poster!.leading, 10_000);
    await register(['r-6']);
    await until('the change after A came back', () => posters('r-6').length >= 1);
    await b.sink.idle();
    await a.sink.idle();

    expect(takeoverMs).toBeLessThan((TTL_SEC * 2 + 4) * 1000);
    const all = ['r-1', 'r-2', 'r-3', 'r-4', 'r-5', 'r-6'];
    expect(all.map(posters)).toEqual([['xoxb-replica-a'], ['xoxb-replica-a'], ['xoxb-replica-b'], ['xoxb-replica-b'], ['xoxb-replica-b'], ['xoxb-replica-b']]);
    const aPosts = feedPosts(standIn).filter((p) => p.token === 'xoxb-replica-a');
    expect(aPosts.every((p) => p.at < killedAt)).toBe(true);
  });
});
