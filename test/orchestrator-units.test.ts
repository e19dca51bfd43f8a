import { describe, expect, it } from 'vitest';
import type { ManagedContainer } from '../src/adapters/docker/types.js';
import { configSchema } from '../src/config/schema.js';
import type { Instance } from '../src/core/registry.js';
import { watchDrain } from '../src/orchestrator/rotation.js';
import { settleAll } from '../src/orchestrator/limit.js';
import { containerName, joinHostPort, newInstanceName, restartsOf } from '../src/orchestrator/naming.js';
import { actorOf, isOwned, ownedBy } from '../src/orchestrator/ownership.js';
import { pickVictims } from '../src/orchestrator/retire.js';
import { defaultOwner, orchestratorSettings } from '../src/orchestrator/settings.js';
import { buildServiceView, publishedAddress } from '../src/orchestrator/view.js';
import { NAME_RE } from '../src/core/names.js';

const container = (instance: string, over: Partial<ManagedContainer> = {}): ManagedContainer => ({
  service: 'web',
  instance,
  owner: 'me',
  id: `id-${instance}`,
  name: instance,
  image: 'img',
  status: 'running',
  statusText: 'Up',
  created: new Date(0),
  ports: [{ containerPort: 80, protocol: 'tcp', hostIp: '127.0.0.1', hostPort: 30000 }],
  ...over,
});
const reg = (instance: string, state: 'ready' | 'drain' = 'ready', by = 'U1@me'): Instance => ({
  service: 'web',
  instance,
  address: '127.0.0.1:30000',
  state: { state, weight: 100, by, at: '' },
  modRevision: '1',
});

describe('names and ownership', () => {
  it('instance names are <service>-<8 hex>, valid, and avoid taken ones', () => {
    const taken = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const n = newInstanceName('web', taken);
      expect(n).toMatch(/^web-[0-9a-f]{8}$/);
      expect(taken.has(n)).toBe(false);
      taken.add(n);
    }
    const long = newInstanceName('s'.repeat(63), new Set());
    expect(long).toMatch(NAME_RE);
    expect(long).toHaveLength(63);
  });

  it('container names count restarts', () => {
    expect(containerName('web-1a2b3c4d', 0)).toBe('web-1a2b3c4d');
    expect(containerName('web-1a2b3c4d', 3)).toBe('web-1a2b3c4d.r3');
    expect(restartsOf('web-1a2b3c4d.r3', 'web-1a2b3c4d')).toBe(3);
    expect(restartsOf('web-1a2b3c4d', 'web-1a2b3c4d')).toBe(0);
    expect(restartsOf('something-else.r9', 'web-1a2b3c4d')).toBe(0);
  });

  it('`by` carries the actor and the owner, within the registry’s 64 characters', () => {
    expect(ownedBy('U01ONCALL', 'switchyard')).toBe('U01ONCALL@switchyard');
    expect(isOwned('U01ONCALL@switchyard', 'switchyard')).toBe(true);
    expect(isOwned('U01ONCALL@switchyard-other', 'switchyard')).toBe(false);
    expect(isOwned('U01ONCALL', 'switchyard')).toBe(false);
    expect(isOwned(undefined, 'switchyard')).toBe(false);
    const by = ownedBy('x'.repeat(80), 'o'.repeat(40));
    expect(by).toHaveLength(64);
    expect(isOwned(by, 'o'.repeat(40))).toBe(true);
    expect(actorOf(ownedBy('a@b', 'me'), 'me')).toBe('a_b');
  });

  it('the default owner comes from the switchyard prefix and fits the label rules', () => {
    expect(defaultOwner('/switchyard')).toBe('switchyard');
    expect(defaultOwner('/ws-1/switchyard')).toBe('ws-1.switchyard');
    expect(defaultOwner(`/${'x'.repeat(60)}`)).toMatch(/^sy-[0-9a-f]{12}$/);
    const s = orchestratorSettings(configSchema.parse({ etcd: {} }));
    expect(s).toMatchObject({
      owner: 'switchyard',
      reconcileIntervalMs: 30_000,
      stopGraceMs: 10_000,
      drainTimeoutMs: 30_000,
      lockTtlMs: 10_000,
      lockWaitMs: 60_000,
    });
    const c = orchestratorSettings(configSchema.parse({ etcd: {}, docker: { owner: 'blue', reconcileInterval: '5s', lockTtl: '1s' } }));
    expect(c).toMatchObject({ owner: 'blue', reconcileIntervalMs: 5000, lockTtlMs: 2000 });
  });

  it('hostPorts takes a port or a range', () => {
    const svc = (hostPorts: string) => configSchema.safeParse({ etcd: {}, services: { web: { image: 'i', port: 80, hostPorts } } });
    expect(svc('9001-9003').data?.services.web?.hostPorts).toEqual({ from: 9001, to: 9003 });
    expect(svc('9001').data?.services.web?.hostPorts).toEqual({ from: 9001, to: 9001 });
    expect(svc('9003-9001').success).toBe(false);
    expect(svc('70000').success).toBe(false);
  });
});

describe('views', () => {
  it('publishes under the registered address: IPv4 entry of a wildcard bind, hostIp substituted, IPv6 bracketed', () => {
    const svc = {
      image: 'i',
      port: 80,
      hostIp: '10.0.0.5',
      env: {},
      mode: 'http' as const,
      maxReplicas: 1,
      restart: 'no' as const,
      backend: 'docker' as const,
    };
    expect(
      publishedAddress(
        [
          { containerPort: 80, protocol: 'tcp', hostIp: '::', hostPort: 32001 },
          { containerPort: 80, protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 32001 },
        ],
        svc,
      ),
    ).toBe('10.0.0.5:32001');
    expect(publishedAddress([{ containerPort: 81, protocol: 'tcp', hostIp: '127.0.0.1', hostPort: 1 }], svc)).toBeUndefined();
    expect(joinHostPort('::1', 80)).toBe('[::1]:80');
  });

  it('joins containers and registrations; registrations of ours without a container are orphans, others are not', () => {
    const view = buildServiceView(
      'web',
      [container('a'), container('b', { status: 'exited' }), container('x', { owner: 'other' })],
      [reg('a'), reg('b'), reg('gone'), reg('manual', 'ready', 'U1'), reg('theirs', 'ready', 'U1@other')],
      'me',
      undefined,
    );
    expect(view.managed.map((m) => [m.instance, m.running?.id, m.registration?.instance])).toEqual([
      ['a', 'id-a', 'a'],
      ['b', undefined, 'b'],
    ]);
    expect(view.orphaned.map((o) => o.instance)).toEqual(['gone']);
  });

  it('scale-down takes unregistered, then drained, then the newest', () => {
    const view = buildServiceView(
      'web',
      [
        container('old', { created: new Date(1000) }),
        container('new', { created: new Date(3000) }),
        container('mid', { created: new Date(2000) }),
        container('drained', { created: new Date(500) }),
        container('unreg', { created: new Date(100) }),
      ],
      [reg('old'), reg('new'), reg('mid'), reg('drained', 'drain')],
      'me',
      undefined,
    );
    expect(pickVictims(view.managed, 4).map((v) => v.instance)).toEqual(['unreg', 'drained', 'new', 'mid']);
    expect(pickVictims(view.managed, 0)).toEqual([]);
  });
});

describe('helpers', () => {
  it('settleAll keeps at most `limit` in flight and settles every item', async () => {
    let inFlight = 0;
    let peak = 0;
    const results = await settleAll([1, 2, 3, 4, 5, 6], 2, async (n) => {
      peak = Math.max(peak, ++inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      if (n === 3) throw new Error('three');
      return n * 10;
    });
    expect(peak).toBe(2);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual([10, 20, 'three', 40, 50, 60]);
  });

  /** A lookup answering each call with the next of `seen` (the last one repeats). */
  const lookupOf = (seen: ([string, number] | undefined)[]) => async (service: string, instance: string) => {
    const next = seen.length > 1 ? seen.shift() : seen[0];
    return next && { service, instance, status: next[0], sessions: next[1], weight: 100 };
  };
  const opts = { applyGraceMs: 100, agentId: 'lb-t' };

  it('watchDrain waits for the drain to apply and sessions to reach 0, bounded; a missing server waits only the grace', async () => {
    // UP with no sessions is not drained yet: new requests would still arrive.
    const ok = await watchDrain(
      lookupOf([
        ['UP', 0],
        ['DRAIN', 2],
        ['DRAIN', 1],
        ['DRAIN', 0],
      ]),
      'web',
      'a',
      { ...opts, timeoutMs: 5000 },
    );
    expect(ok).toMatchObject({ kind: 'drained', agentId: 'lb-t' });
    const stuck = await watchDrain(lookupOf([['DRAIN', 3]]), 'web', 'a', { ...opts, timeoutMs: 400 });
    expect(stuck).toMatchObject({ kind: 'open', sessions: 3 });
    expect(stuck.kind === 'open' && stuck.waitedMs).toBeGreaterThanOrEqual(400);
    const unapplied = await watchDrain(lookupOf([['UP', 4]]), 'web', 'a', { ...opts, timeoutMs: 400 });
    expect(unapplied).toMatchObject({ kind: 'not-applied', status: 'UP', sessions: 4 });
    // Missing: the 100 ms grace, not the timeout. The timeout is made long so that the bound
    // telling the two apart is a liveness bound (grace × 100), not a race with it.
    const started = Date.now();
    expect(await watchDrain(lookupOf([undefined]), 'web', 'a', { ...opts, timeoutMs: 20_000 })).toMatchObject({ kind: 'absent' });
    expect(Date.now() - started).toBeLessThan(10_000);
    const broken = async () => {
      throw new Error('socket gone');
    };
    expect(await watchDrain(broken, 'web', 'a', { ...opts, timeoutMs: 20_000 })).toMatchObject({ kind: 'unreadable', error: 'socket gone' });
  });

  it('watchDrain rides out one failed read and one missing row mid-drain: the grace counts from the trouble, not the start', async () => {
    // A reload swapping the admin socket, or a late answer on a loaded host, long after the
    // drain began: the sessions are still open, so stopping here would cut them.
    const seen: (['DRAIN', number] | 'fail' | undefined)[] = [['DRAIN', 1], ['DRAIN', 1], 'fail', ['DRAIN', 1], undefined, ['DRAIN', 1], ['DRAIN', 0]];
    let calls = 0;
    const flaky = async (service: string, instance: string) => {
      const next = seen[Math.min(calls++, seen.length - 1)];
      if (next === 'fail') throw new Error('socket gone');
      return next && { service, instance, status: next[0], sessions: next[1], weight: 100 };
    };
    // Each poll is ≥ 200 ms apart, so every trouble above comes after the 100 ms grace from the start.
    expect(await watchDrain(flaky, 'web', 'a', { ...opts, timeoutMs: 20_000 })).toMatchObject({ kind: 'drained' });
    expect(calls).toBe(seen.length);
  });
});
