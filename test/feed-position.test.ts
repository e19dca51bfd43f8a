/**
 * The #ops feed's saved position (`<switchyardPrefix>/feed/position`) moves only after Slack
 * accepted the message, and only by the replica that still holds the poster role: a 5xx
 * from Slack leaves it where it was (and the change is posted once Slack recovers), and a
 * replica that lost the role while its post was in flight does not write it. In-process
 * `serve` replicas wired as src/serve.ts wires them, the Slack stand-in, real etcd.
 */
import type { Watcher } from 'etcd3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildRuntime, type Runtime } from '../src/app/runtime.js';
import { loadConfig } from '../src/config/load.js';
import { nullFeed } from '../src/core/feed.js';
import { startProxy, type EtcdProxy } from './helpers/etcd.js';
import { changeLines, feedPosts, startReplica, testLog, until, type Replica } from './helpers/feed.js';
import { newTs, startSlackStandIn, type SlackCall, type SlackStandIn } from './helpers/slack.js';
import { makeWorkspace, ONCALL, OPS_CHANNEL, type Workspace } from './helpers/workspace.js';

const TTL_SEC = 2;
/** Liveness bound for a post, a retry or a takeover: ~1–5 s expected. */
const WITHIN_MS = 30_000;
const caller = { userId: ONCALL, channel: OPS_CHANNEL, source: 'slack' as const };
const accepted = (c: SlackCall) => ({ channel: c.body.channel, ts: newTs() });

describe('#ops feed position (real etcd, Slack stand-in)', () => {
  let ws: Workspace;
  let standIn: SlackStandIn;
  let writer: Runtime;
  let proxy: EtcdProxy | undefined;
  let watcher: Watcher | undefined;
  const replicas: Replica[] = [];
  /** Every value written to the position key, in order. */
  const writes: { revision: string; by: string }[] = [];

  const positionKey = () => `${ws.prefixes.switchyard}/feed/position`;
  /**
   * The watcher has seen a position write at or past `rev`. Waiting on the watcher rather than
   * a read matters: the checks look at `writes`, and under load the watch event can trail a
   * read that already shows the new value.
   */
  const savedPast = (rev: bigint) => writes.some((w) => BigInt(w.revision) >= rev);
  const position = async () => BigInt(((await ws.etcd.get(positionKey()).json()) as { revision?: string } | null)?.revision ?? 0);
  const register = async (name: string): Promise<bigint> => {
    expect((await writer.router.dispatch({ text: `register web ${name} 10.0.0.1:80`, caller })).ok).toBe(true);
    return BigInt((await ws.etcd.get(`${ws.prefixes.services}/web/${name}`).exec()).kvs[0]!.mod_revision);
  };
  /** Feed posts that list `name`'s registration (attempts included: the stand-in records before it answers). */
  const postsOf = (name: string) => feedPosts(standIn).filter((p) => changeLines([p]).some((l) => l.startsWith(`*web/${name}* registered`)));

  beforeEach(async () => {
    ws = await makeWorkspace();
    standIn = await startSlackStandIn();
    writer = await buildRuntime({ config: await loadConfig(ws.configPath, {}), secrets: {}, log: testLog(), feed: nullFeed });
    writes.length = 0;
    watcher = await ws.etcd.watch().key(positionKey()).create();
    watcher.on('put', (kv) => writes.push(JSON.parse(kv.value.toString()) as { revision: string; by: string }));
  });

  afterEach(async () => {
    proxy?.unblock();
    for (const r of replicas.splice(0)) await r.stop();
    await proxy?.close();
    proxy = undefined;
    await watcher?.cancel();
    await writer?.close();
    await standIn?.close();
    await ws?.dispose();
  });

  it('is not saved while Slack answers 5xx; the change is posted and saved once Slack recovers', async () => {
    const a = await startReplica({ configPath: ws.configPath, standIn, token: 'xoxb-a', ttlSec: TTL_SEC });
    replicas.push(a);
    await until('A to become the poster', () => a.poster!.watching, WITHIN_MS);
    const first = await register('ok-1');
    await until('the first change posted and its position saved', () => savedPast(first), WITHIN_MS);

    standIn.on('chat.postMessage', () => ({ status: 503, body: { ok: false, error: 'service_unavailable' } }));
    const failing = await register('r-1');
    // Positive sign first: Slack was asked twice (a post and its retry) and refused both.
    await until('two refused posts of r-1', () => postsOf('r-1').length >= 2, WITHIN_MS);
    expect(await position()).toBeLessThan(failing);
    expect(writes.every((w) => BigInt(w.revision) < failing)).toBe(true);

    standIn.on('chat.postMessage', accepted);
    await until('the position to pass r-1 once Slack took it', () => savedPast(failing), WITHIN_MS);
    // Posted again (nothing dropped), and the position written by the poster after that post.
    expect(postsOf('r-1').length).toBeGreaterThanOrEqual(3);
    expect(writes.find((w) => BigInt(w.revision) >= failing)?.by).toBe('xoxb-a');
  }, 120_000);

  it('is not saved by a replica that lost the poster role while its post was in flight', async () => {
    // A reaches etcd through a proxy: blocking it is A cut off, as far as etcd can tell.
    proxy = await startProxy(ws.endpoint);
    const a = await startReplica({ configPath: ws.configPath, standIn, token: 'xoxb-a', endpoints: [proxy.endpoint], ttlSec: TTL_SEC });
    replicas.push(a);
    await until('A to become the poster', () => a.poster!.watching, WITHIN_MS);
    const b = await startReplica({ configPath: ws.configPath, standIn, token: 'xoxb-b', ttlSec: TTL_SEC });
    replicas.push(b);
    const first = await register('ok-1');
    await until('A to post the first change and save its position', () => savedPast(first), WITHIN_MS);

    // Slack holds A's next post until the test lets it go.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    standIn.on('chat.postMessage', async (c) => {
      if (c.token === 'xoxb-a') await held;
      return accepted(c);
    });
    try {
      const change = await register('r-1');
      await until('A to be posting r-1', () => postsOf('r-1').some((p) => p.token === 'xoxb-a'), WITHIN_MS);

      proxy.block();
      const cutAt = writes.length;
      await until('B to take over', () => b.poster!.watching, WITHIN_MS);
      await until('B to post r-1 and save the position', () => savedPast(change), WITHIN_MS);

      // A's connection comes back and Slack accepts its post: it finds it no longer posts.
      proxy.unblock();
      release();
      await until('A to notice it is no longer the poster', () => !a.poster!.leading, WITHIN_MS);
      await a.sink.idle();
      // A later change, posted and saved by B, is the positive sign that A had its chance to write.
      const later = await register('r-2');
      await until('B to save the position past r-2', () => savedPast(later), WITHIN_MS);
      expect(writes.slice(cutAt).map((w) => w.by)).not.toContain('xoxb-a');
      expect(writes.slice(cutAt).length).toBeGreaterThan(0);
      expect(postsOf('r-2').map((p) => p.token)).toEqual(['xoxb-b']);
    } finally {
      release();
    }
  }, 120_000);
});
