/**
 * The watcher's rules without Docker or etcd: which containers it registers and how, the
 * state it leaves alone, and how the feed words its changes and its lease's expiry.
 */
import { describe, expect, it } from 'vitest';
import { interpretEvents } from '../src/adapters/etcd/feed-events.js';
import { KeyLayout } from '../src/adapters/etcd/keys.js';
import { configSchema } from '../src/config/schema.js';
import { watcherHost } from '../src/app/watch.js';
import type { RegistryEvent } from '../src/core/registry.js';
import { changeLine, plainStyle } from '../src/feed/format.js';
import { desiredFor, inspectSchema, instanceFromName } from '../src/watch/container.js';
import { nextState } from '../src/watch/keys.js';
import { eventReason, isSigkill } from '../src/watch/watcher.js';

function container(o: {
  name?: string;
  labels?: Record<string, string>;
  status?: string;
  health?: string;
  ports?: Record<string, { HostIp: string; HostPort: string }[] | null>;
}) {
  return inspectSchema.parse({
    Id: 'abc123',
    Name: o.name ?? '/web-a',
    State: {
      Status: o.status ?? 'running',
      Running: o.status === undefined || o.status === 'running',
      Paused: o.status === 'paused',
      ...(o.health ? { Health: { Status: o.health } } : {}),
    },
    Config: { Labels: o.labels ?? { 'switchyard.register': 'web' } },
    NetworkSettings: { Ports: o.ports ?? { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '32768' }] } },
  });
}

describe('desiredFor: a container → its registration', () => {
  it('registers a running labelled container at its published port, instance from its name', () => {
    expect(desiredFor(container({}))).toMatchObject({ kind: 'register', service: 'web', instance: 'web-a', port: 32768, state: 'ready' });
    expect(instanceFromName('/My_App.1')).toBe('my_app.1');
    expect(instanceFromName('/--')).toBeUndefined();
  });

  it('honours switchyard.instance, switchyard.port and switchyard.weight', () => {
    const d = desiredFor(
      container({
        labels: { 'switchyard.register': 'api', 'switchyard.instance': 'api-7', 'switchyard.port': '8080', 'switchyard.weight': '30' },
        ports: {
          '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '1000' }],
          '8080/tcp': [
            { HostIp: '::', HostPort: '2000' },
            { HostIp: '0.0.0.0', HostPort: '2000' },
          ],
        },
      }),
    );
    expect(d).toMatchObject({ kind: 'register', service: 'api', instance: 'api-7', port: 2000, weight: 30 });
  });

  it('leaves alone unlabelled, orchestrator-owned and unusable containers, saying why', () => {
    expect(desiredFor(container({ labels: {} })).kind).toBe('ignore');
    expect(desiredFor(container({ labels: { 'switchyard.register': 'web', 'switchyard.owner': 'sy-1' } }))).toMatchObject({
      kind: 'ignore',
      why: expect.stringContaining('scale'),
    });
    expect(desiredFor(container({ labels: { 'switchyard.register': 'Web!' } })).kind).toBe('ignore');
    expect(desiredFor(container({ ports: {} }))).toMatchObject({ kind: 'ignore', why: expect.stringContaining('published') });
    expect(desiredFor(container({ ports: { '80/tcp': [{ HostIp: '', HostPort: '1' }], '81/tcp': [{ HostIp: '', HostPort: '2' }] } }))).toMatchObject({
      kind: 'ignore',
      why: expect.stringContaining('switchyard.port'),
    });
    expect(desiredFor(container({ labels: { 'switchyard.register': 'web', 'switchyard.weight': '999' } })).kind).toBe('ignore');
  });

  it('paused or unhealthy → maint; starting health → not yet; stopped → absent', () => {
    expect(desiredFor(container({ status: 'paused' }))).toMatchObject({ kind: 'register', state: 'maint' });
    expect(desiredFor(container({ health: 'unhealthy' }))).toMatchObject({ kind: 'register', state: 'maint' });
    expect(desiredFor(container({ health: 'starting' })).kind).toBe('absent');
    expect(desiredFor(container({ health: 'healthy' }))).toMatchObject({ kind: 'register', state: 'ready' });
    expect(desiredFor(container({ status: 'exited' })).kind).toBe('absent');
  });
});

describe('nextState: the watcher does not undo what people decided', () => {
  const rec = (state: 'ready' | 'drain' | 'maint', by: string) => ({ state, weight: 100, by, at: '' });
  it('takes its own maint back, keeps a drain or maint someone else set', () => {
    expect(nextState(undefined, 'ready', 'watch@h1')).toBe('ready');
    expect(nextState(rec('maint', 'watch@h1'), 'ready', 'watch@h1')).toBe('ready');
    expect(nextState(rec('drain', 'U1'), 'ready', 'watch@h1')).toBe('drain');
    expect(nextState(rec('maint', 'U1'), 'ready', 'watch@h1')).toBe('maint');
    expect(nextState(rec('ready', 'U1'), 'maint', 'watch@h1')).toBe('maint');
  });
  it('names Docker events as reasons', () => {
    expect(eventReason('die')).toBe('container died');
    expect(eventReason('health_status: unhealthy')).toBe('container unhealthy');
    expect(eventReason('kill')).toBe('container killed');
    expect([isSigkill('9'), isSigkill('SIGKILL'), isSigkill('15'), isSigkill(undefined)]).toEqual([true, true, false, false]);
  });
});

describe('watch: config', () => {
  const base = { etcd: { endpoints: ['http://127.0.0.1:2379'] } };
  it('requires advertise, defaults ttl to 10 s, refuses an address with a port', () => {
    expect(configSchema.parse({ ...base, watch: { advertise: '10.0.0.5' } }).watch).toEqual({ advertise: '10.0.0.5', ttl: 10_000 });
    expect(configSchema.safeParse({ ...base, watch: {} }).success).toBe(false);
    expect(configSchema.safeParse({ ...base, watch: { advertise: '10.0.0.5:80' } }).success).toBe(false);
    expect(configSchema.safeParse({ ...base, watch: { advertise: '10.0.0.5', ttl: '100ms' } }).success).toBe(false);
    expect(configSchema.parse({ ...base, watch: { advertise: 'fd00::5', ttl: '2s', host: 'h1' } }).watch).toEqual({
      advertise: 'fd00::5',
      ttl: 2000,
      host: 'h1',
    });
  });
  it('takes the host ID from watch.host, else the hostname', () => {
    const c = (host?: string) => configSchema.parse({ ...base, watch: { advertise: '10.0.0.5', ...(host ? { host } : {}) } });
    expect(watcherHost(c('h9'), 'ignored')).toBe('h9');
    expect(watcherHost(c(), 'Node-3.example.com')).toBe('node-3');
    expect(() => watcherHost(c(), '---')).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });
});

describe('feed: watcher changes', () => {
  const layout = new KeyLayout('/services', '/switchyard');
  const record = (stopping: boolean) =>
    JSON.stringify({ host: 'h1', advertise: '10.0.0.5', lease: '77', pid: 1, startedAt: '', registered: 1, ...(stopping ? { stopping } : {}) });
  const del = (key: string, revision: string, prevValue: string, prevLease?: string): RegistryEvent => ({
    type: 'delete',
    key,
    revision,
    prevValue,
    ...(prevLease ? { prevLease } : {}),
  });
  const put = (key: string, value: string, revision: string): RegistryEvent => ({ type: 'put', key, value, revision });

  it('says which watcher a deregistration came from and why', () => {
    const { changes } = interpretEvents(layout, [
      put('/switchyard/feed/cause', JSON.stringify({ by: 'watch@h1', reason: 'container died', at: '' }), '5'),
      del('/services/web/a', '5', '10.0.0.5:32768'),
      del('/switchyard/state/web/a', '5', JSON.stringify({ state: 'ready', weight: 100, by: 'watch@h1', at: '' })),
    ]);
    expect(changes.map((c) => changeLine(c, plainStyle))).toEqual(['web/a removed (was at 10.0.0.5:32768) — by watch@h1 (container died)']);
  });

  it("words a watcher's lease expiry and a clean stop; other expiries stay 'lease expired'", () => {
    const expiry = (stopping: boolean, rev: string) =>
      interpretEvents(layout, [
        del('/services/web/a', rev, '10.0.0.5:1', '77'),
        del('/switchyard/state/web/a', rev, JSON.stringify({ state: 'ready', weight: 100, by: 'watch@h1', at: '' }), '77'),
        del('/switchyard/watchers/h1', rev, record(stopping), '77'),
        del('/services/web/b', rev, '10.0.0.9:1', '99'),
      ]).changes.map((c) => changeLine(c, plainStyle));
    expect(expiry(false, '6')).toEqual([
      "web/a removed (was at 10.0.0.5:1) — (host h1's watcher is gone)",
      'web/b removed (was at 10.0.0.9:1) — (lease expired)',
    ]);
    expect(expiry(true, '7')[0]).toBe("web/a removed (was at 10.0.0.5:1) — (host h1's watcher stopped)");
  });
});
