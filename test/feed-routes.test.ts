import { appendFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdFeedMutes } from '../src/adapters/etcd/feed-mutes.js';
import { createSlackClient, feedClientSettings } from '../src/adapters/slack/client.js';
import { buildSlackFeeds, feedRoutes, type SlackFeeds } from '../src/app/feeds.js';
import { buildRuntime, type Runtime } from '../src/app/runtime.js';
import { loadConfig } from '../src/config/load.js';
import type { FeedService } from '../src/feed/service.js';
import { changeLines, sectionText, testLog, until } from './helpers/feed.js';
import { startSlackStandIn, type SlackStandIn } from './helpers/slack.js';
import { makeWorkspace, ONCALL, VISITOR, type Workspace } from './helpers/workspace.js';

const WEB_FEED = 'C0WEBFEED';
const API_FEED = 'C0APIFEED';

const ACL = `groups:
  oncall: [${ONCALL}]
rules:
  - allow: [status, help]
    users: ["*"]
  - name: oncall changes
    allow: ["*"]
    groups: [oncall]
`;

describe('routed feeds and mutes (real etcd, Slack stand-in)', () => {
  let ws: Workspace;
  let standIn: SlackStandIn;
  let rt: Runtime;
  let feeds: SlackFeeds;
  let posters: FeedService[] = [];
  let restarted: SlackFeeds | undefined;

  beforeAll(async () => {
    ws = await makeWorkspace({ acl: ACL });
    await appendFile(
      ws.configPath,
      `slack:
  feeds:
    - channel: ${WEB_FEED}
      services: ["web", "web-*"]
    - channel: ${API_FEED}
      services: [api]
      kinds: [registry]
      quiet: [ttl-refresh]
`,
    );
    standIn = await startSlackStandIn();
    const config = await loadConfig(ws.configPath, {});
    const log = testLog();
    feeds = buildSlackFeeds({ routes: feedRoutes(config), client: createSlackClient('xoxb-feed', feedClientSettings(standIn.apiUrl), log), log });
    rt = await buildRuntime({ config, secrets: {}, log, feed: feeds.sink });
    posters = feeds.startPosters({ registry: rt.registry, mutes: new EtcdFeedMutes(rt.registry), log, ttlSec: 2, replica: 'r1' });
    await until('every feed poster to watch', () => posters.every((p) => p.watching));
  });

  afterAll(async () => {
    for (const p of posters) await p.stop();
    await feeds?.stop();
    await restarted?.stop();
    await rt?.close();
    await standIn?.close();
    await ws?.dispose();
  });

  const lines = (channel: string) => changeLines(standIn.api('chat.postMessage').filter((c) => c.body.channel === channel)).map((l) => l.replace(/ — .*$/, ''));
  const registered = (channel: string) =>
    lines(channel)
      .map((l) => /^\*([^*]+)\* registered/.exec(l)?.[1])
      .filter((s): s is string => s !== undefined)
      .sort();
  const posted = (channel: string) =>
    standIn
      .api('chat.postMessage')
      .filter((c) => c.body.channel === channel)
      .map(sectionText)
      .join('\n');
  const run = async (text: string, channel = 'dm', user = ONCALL) => rt.router.dispatch({ text, caller: { userId: user, channel, source: 'slack' } });
  const ok = async (text: string, channel = 'dm') => {
    const r = await run(text, channel);
    expect(r.ok, `${text}: ${r.summary}`).toBe(true);
    return r;
  };

  it('each feed gets exactly the changes its filter matches, once', async () => {
    await ok('register web w-1 10.0.0.1:80');
    await ok('register web-canary c-1 10.0.0.2:80');
    await ok('register api a-1 10.0.1.1:80');
    await ok('register api t-1 10.0.1.9:80 --ttl 30s');
    await ok('register other o-1 10.0.2.1:80');
    // Markers last: once both are posted, everything before them was processed.
    await ok('register web w-2 10.0.0.3:80');
    await ok('register api a-2 10.0.1.2:80');
    await until('both markers', () => registered(WEB_FEED).includes('web/w-2') && registered(API_FEED).includes('api/a-2'));
    await feeds.idle();
    expect(registered(WEB_FEED)).toEqual(['web-canary/c-1', 'web/w-1', 'web/w-2']);
    // t-1 came on a TTL lease: the api feed asked for quiet on those.
    expect(registered(API_FEED)).toEqual(['api/a-1', 'api/a-2']);
    expect(lines(API_FEED).join('\n')).not.toContain('other/');
  });

  it('feed mute is ACL’d, shown in the feed, mutes that feed only, and unmute ends it', async () => {
    const denied = await run(`feed mute web 10m`, WEB_FEED, VISITOR);
    expect(denied.code).toBe('E_DENIED');

    const muted = await ok('feed mute web 10m', WEB_FEED);
    expect(muted.summary).toMatch(/^web muted in this feed until \d{4}-/);
    await until('the mute notice in the web feed', () => posted(WEB_FEED).includes('web muted in this feed'));

    await ok('register web w-3 10.0.0.4:80');
    await ok('register web-canary c-2 10.0.0.5:80');
    await until('the unmuted service after it', () => registered(WEB_FEED).includes('web-canary/c-2'));
    expect(registered(WEB_FEED)).not.toContain('web/w-3');

    expect((await ok('feed unmute web', WEB_FEED)).summary).toBe('web unmuted');
    await until('the unmute notice', () => posted(WEB_FEED).includes('web unmuted by'));
    await ok('register web w-4 10.0.0.6:80');
    await until('changes after the unmute', () => registered(WEB_FEED).includes('web/w-4'));
    expect(registered(WEB_FEED)).not.toContain('web/w-3');
    expect((await ok('feed unmute web', WEB_FEED)).summary).toBe('web was not muted here');
  });

  it('a mute typed outside a feed channel mutes every feed and expires by itself', async () => {
    const r = await ok('feed mute api 2s');
    expect(r.summary).toContain('muted in every feed');
    const mutes = new EtcdFeedMutes(rt.registry);
    expect((await mutes.list()).map((m) => `${m.scope}/${m.service}`)).toEqual(['all/api']);
    await until('the mute to expire (its lease)', async () => (await mutes.list()).length === 0, 10_000);
    await ok('register api a-5 10.0.1.5:80');
    await until('api changes again', () => registered(API_FEED).includes('api/a-5'));

    const bad = await run('feed mute api');
    expect(bad.code).toBe('E_BAD_ARGS');
    expect(bad.summary).toContain('needs a duration');
  });

  it('after a restart every feed resumes from its own position: nothing twice, nothing lost', async () => {
    await ok('register web w-8 10.0.0.8:80');
    await ok('register api a-8 10.0.1.8:80');
    await until('the changes before the stop', () => registered(WEB_FEED).includes('web/w-8') && registered(API_FEED).includes('api/a-8'));
    for (const p of posters) await p.stop();
    posters = [];
    // While no poster runs.
    await ok('register web w-9 10.0.0.9:80');
    await ok('register api a-9 10.0.1.9:80');
    const config = await loadConfig(ws.configPath, {});
    const log = testLog();
    restarted = buildSlackFeeds({ routes: feedRoutes(config), client: createSlackClient('xoxb-feed-2', feedClientSettings(standIn.apiUrl), log), log });
    posters = restarted.startPosters({ registry: rt.registry, mutes: new EtcdFeedMutes(rt.registry), log, ttlSec: 2, replica: 'r2' });
    await until('the changes made while stopped', () => registered(WEB_FEED).includes('web/w-9') && registered(API_FEED).includes('api/a-9'));
    await restarted.idle();
    const count = (list: string[]) => list.reduce((m, n) => m.set(n, (m.get(n) ?? 0) + 1), new Map<string, number>());
    for (const [name, n] of count(registered(WEB_FEED))) expect(n, name).toBe(1);
    for (const [name, n] of count(registered(API_FEED))) expect(n, name).toBe(1);
    expect(registered(API_FEED)).toEqual(['api/a-1', 'api/a-2', 'api/a-5', 'api/a-8', 'api/a-9']);
  });
});
