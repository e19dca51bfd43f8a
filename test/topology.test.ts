/**
 * Many hosts, one registry: the whole topology as real processes on loopback (see
 * test/helpers/topology.ts) — a 3-member etcd cluster, two HAProxy hosts each with its own
 * `switchyard agent`, two `serve` replicas driven by signed slash commands, a single-node
 * Swarm — and the faults it must ride out. One stack for the file; the faults run in an
 * order that leaves it usable (each restores what it broke, the last one excepted).
 */
import { randomBytes } from 'node:crypto';
import Dockerode from 'dockerode';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerodeOptions } from '../src/adapters/docker/host.js';
import { SwarmEngine } from '../src/adapters/docker/swarm.js';
import { adminModeOf } from '../src/adapters/haproxy/runtime-parse.js';
import { clusterLeader } from './helpers/etcd.js';
import { changeLines } from './helpers/feed.js';
import { httpGet, startHttpBackend, waitFor, type HttpBackend } from './helpers/haproxy.js';
import { routedServers, startTopology, type LbHost, type Topology } from './helpers/topology.js';

/** Liveness bounds, far above the figures bench/topology.ts measures. */
const ROUTED_WITHIN_MS = 20_000;
/** The product's figure is 2 s (task death → deregistered); 5× as a liveness bound. */
const TASK_DEREGISTERED_WITHIN_MS = 10_000;
/** A crashed process's lease (agent status, feed poster: 10 s) has run out well before this. */
const LEASE_GONE_WITHIN_MS = 40_000;

describe('many hosts, one registry (3-member etcd, two HAProxy hosts, two serve replicas, Swarm)', { timeout: 180_000 }, () => {
  let t: Topology;
  let swarm: SwarmEngine;
  const backends: HttpBackend[] = [];
  /** Every instance registered through Slack by this file: each must appear in #ops exactly once. */
  const registered: string[] = [];

  beforeAll(async () => {
    t = await startTopology();
    swarm = new SwarmEngine(t.dockerd!.host, pino({ level: 'silent' }));
    backends.push(await startHttpBackend('be-1'), await startHttpBackend('be-2'));
  }, 240_000);

  afterAll(async () => {
    await Promise.all(backends.map((b) => b.close()));
    await t?.dispose();
  }, 120_000);

  const lb = (i: 1 | 2) => t.hosts[i - 1]!;
  const routed = async (host: LbHost, service: string) => routedServers(await t.servers(host, service));
  /** Wait until every host routes `service`'s `instance` at `address` (or, with undefined, no longer routes it). */
  const onBoth = (service: string, instance: string, address: string | undefined, hosts = t.hosts, timeoutMs = ROUTED_WITHIN_MS) =>
    Promise.all(
      hosts.map((h) =>
        waitFor(
          `${h.agentId} to ${address ? `route ${instance} at ${address}` : `drop ${instance}`}`,
          async () => (await routed(h, service)).get(instance) === address,
          timeoutMs,
          20,
        ),
      ),
    );
  const ok = async (text: string, replica = t.replicas[0]) => {
    const reply = await t.slash(text, replica);
    expect(reply.ok, `${text}: ${reply.text}`).toBe(true);
    return reply.text;
  };
  const register = async (instance: string, address: string, replica = t.replicas[0]) => {
    await ok(`register web ${instance} ${address}`, replica);
    registered.push(instance);
  };
  /** Feed lines (inline and thread details) posted so far. */
  const feedLines = () => changeLines(t.feed());
  const count = (re: RegExp) => feedLines().filter((l) => re.test(l)).length;
  const word = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  /** Positive sign the poster is past everything before: a marker change reaches #ops. */
  const feedCaughtUp = async (replica = t.replicas[0]) => {
    const marker = `mark-${randomBytes(3).toString('hex')}`;
    await register(marker, backends[0]!.address, replica);
    await waitFor('the feed to post the marker', () => count(new RegExp(`^\\*web/${marker}\\* registered`)) >= 1, 30_000, 50);
  };

  it('every registry change reaches both HAProxies; status lists both agents; #ops reports each agent’s apply once', async () => {
    const [a, b] = backends as [HttpBackend, HttpBackend];
    await register('web-a', a.address);
    await onBoth('web', 'web-a', a.address);
    for (const h of t.hosts) expect((await httpGet(`http://127.0.0.1:${h.listen.web}/`)).body).toBe('be-1');
    // A second instance first: draining or deregistering the last ready one asks for confirmation.
    await register('web-b', b.address, t.replicas[1]);
    await onBoth('web', 'web-b', b.address);

    await ok('drain web web-a');
    for (const h of t.hosts)
      await waitFor(`${h.agentId} to drain web-a`, async () => (await t.servers(h, 'web')).some((r) => r.name === 'web-a' && adminModeOf(r) === 'drain'));
    await ok('undrain web web-a', t.replicas[1]);
    await onBoth('web', 'web-a', a.address);
    await ok('weight web web-a 7');
    for (const h of t.hosts)
      await waitFor(`${h.agentId} to set web-a's weight`, async () => (await t.servers(h, 'web')).some((r) => r.name === 'web-a' && r.uweight === 7));
    await ok('deregister web web-b');
    await onBoth('web', 'web-b', undefined);

    const status = await ok('status web');
    expect(status).toContain('HAProxy agents: 2');
    expect(status).toMatch(/^lb-1\s+ok\s/m);
    expect(status).toMatch(/^lb-2\s+ok\s/m);

    await feedCaughtUp();
    for (const id of ['lb-1', 'lb-2']) {
      expect(count(new RegExp(`^\\*haproxy ${id}\\* runtime apply \\+web-a(?![\\w.-])`)), `${id}: +web-a\n${feedLines().join('\n')}`).toBe(1);
      expect(count(new RegExp(`^\\*haproxy ${id}\\* runtime apply \\+web-b(?![\\w.-])`)), `${id}: +web-b`).toBe(1);
    }
  });

  /** The service's tasks by registered instance, with the container behind each. */
  const tasks = async () => {
    const svc = await swarm.inspectService(t.swarmService);
    const list = svc ? await swarm.tasks(svc.ID) : [];
    return list.filter((x) => x.state === 'running' && x.desiredState === 'running');
  };
  const registrations = async () => {
    const kvs = (await t.etcd.getAll().prefix(`${t.prefixes.services}/${t.swarmService}/`).exec()).kvs;
    return new Map(kvs.map((kv) => [kv.key.toString().split('/').pop()!, kv.value.toString()]));
  };

  it('a Swarm service scaled from Slack: tasks registered at node address + published port, routed by both HAProxies end to end', async () => {
    const sw = t.swarmService;
    await ok(`scale ${sw} 2`, t.replicas[1]);
    const nodeAddr = [...(await swarm.nodes()).values()][0]!.addr;
    const regs = await registrations();
    expect([...regs.keys()].sort()).toEqual([`${sw}-1`, `${sw}-2`]);
    const running = await tasks();
    for (const task of running) expect(regs.get(`${sw}-${task.slot}`)).toBe(`${nodeAddr}:${task.published.get(80)}`);
    for (const [instance, address] of regs) await onBoth(sw, instance, address);

    const containers = running.map((x) => x.containerId!.slice(0, 12));
    for (const h of t.hosts) {
      const seen = new Set<string>();
      await waitFor(
        `${h.agentId} to spread GETs over both tasks`,
        async () => {
          const r = await httpGet(`http://127.0.0.1:${h.listen[sw]}/`, { timeoutMs: 3000 });
          if (r.status === 200) seen.add(r.body);
          return seen.size >= 2;
        },
        ROUTED_WITHIN_MS,
        20,
      );
      expect([...seen].sort()).toEqual([...containers].sort());
    }
  });

  it('a Swarm task’s container killed: deregistered and out of both HAProxies within the bound, its replacement registered and routed', async () => {
    const sw = t.swarmService;
    const victim = (await tasks()).find((x) => x.slot === 2)!;
    const instance = `${sw}-2`;
    const old = (await registrations()).get(instance)!;
    // Every change of the instance's key from here on: both replicas' task watchers see the
    // death at once, and neither may undo what the other wrote.
    const key = `${t.prefixes.services}/${sw}/${instance}`;
    const changes: string[] = [];
    const watch = await t.etcd.watch().key(key).create();
    watch.on('put', (kv) => changes.push(`put ${kv.value.toString()}`));
    watch.on('delete', () => changes.push('delete'));
    const killedAt = Date.now();
    await new Dockerode(dockerodeOptions(t.dockerd!.host)).getContainer(victim.containerId!).kill();
    await waitFor('the killed task to be deregistered', async () => (await registrations()).get(instance) !== old, TASK_DEREGISTERED_WITHIN_MS, 20);
    const deregisteredMs = Date.now() - killedAt;
    await Promise.all(
      t.hosts.map((h) =>
        waitFor(`${h.agentId} to stop routing the dead task`, async () => (await routed(h, sw)).get(instance) !== old, TASK_DEREGISTERED_WITHIN_MS, 20),
      ),
    );
    expect(deregisteredMs).toBeLessThan(TASK_DEREGISTERED_WITHIN_MS);

    const replacement = await waitFor(
      'the replacement task to be registered',
      async () => {
        const a = (await registrations()).get(instance);
        return a !== undefined && a !== old ? a : undefined;
      },
      60_000,
      100,
    );
    await onBoth(sw, instance, replacement);
    // Past a marker in #ops (several polls of both watchers later): the key went from the dead
    // task's address to the replacement's and stayed there — no watcher undid the other's write.
    await feedCaughtUp();
    await watch.cancel();
    const firstPut = changes.indexOf(`put ${replacement}`);
    expect(
      changes.every((c) => c === 'delete' || c === `put ${replacement}`),
      changes.join(', '),
    ).toBe(true);
    expect(changes.lastIndexOf('delete'), changes.join(', ')).toBeLessThan(firstPut);
    const lines = feedLines();
    expect(lines.filter((l) => l.startsWith(`*${sw}/${instance}* registered at ${replacement}`)).length, lines.join('\n')).toBe(1);
    expect(lines.filter((l) => l.startsWith(`*${sw}/${instance}* removed (was at ${replacement})`)).length).toBe(0);
    const fresh = (await tasks()).find((x) => x.slot === 2)!;
    expect(fresh.id).not.toBe(victim.id);
    expect((await httpGet(`http://${replacement}/`)).body).toBe(fresh.containerId!.slice(0, 12));
    expect((await registrations()).get(`${sw}-1`)).toBeDefined(); // the other task untouched
  });

  it('one etcd member (the leader) killed during a stream of slash commands: no command fails, every change routed on both', async () => {
    const victim = await clusterLeader(t.cluster);
    const names = Array.from({ length: 16 }, (_, i) => `stream-${i + 1}`);
    try {
      for (const [i, name] of names.entries()) {
        if (i === 5) await victim.kill();
        await register(name, backends[i % 2]!.address, t.replicas[i % 2]);
      }
      for (const [i, name] of names.entries()) await onBoth('web', name, backends[i % 2]!.address);
    } finally {
      await victim.start();
    }
    await feedCaughtUp();
  });

  it('one agent killed: the other keeps routing, the dead agent’s key disappears and #ops says so; restarted, it catches up', async () => {
    const [one, two] = [lb(1), lb(2)];
    const agentKey = `${t.prefixes.switchyard}/agents/${two.agentId}`;
    expect(await t.etcd.get(agentKey).string()).not.toBeNull();
    await two.agent!.stop('SIGKILL');
    await register('after-agent-death', backends[1]!.address);
    await onBoth('web', 'after-agent-death', backends[1]!.address, [one]);
    expect((await httpGet(`http://127.0.0.1:${one.listen.web}/`)).status).toBe(200);
    await waitFor('the dead agent’s key to disappear', async () => (await t.etcd.get(agentKey).string()) === null, LEASE_GONE_WITHIN_MS, 100);
    await waitFor('#ops to say the agent is gone', () => count(/^\*haproxy lb-2\* agent is gone/) === 1, 30_000, 50);
    // Its HAProxy still routes what it had (nobody changes it any more) but missed the new instance.
    expect((await routed(two, 'web')).get('web-a')).toBe(backends[0]!.address);
    expect((await routed(two, 'web')).has('after-agent-death')).toBe(false);

    await t.startAgent(two);
    await onBoth('web', 'after-agent-death', backends[1]!.address, [two]);
    // A service with few rows: the reply's fallback text is clipped, the agents table comes last.
    const status = await ok(`status ${t.swarmService}`);
    expect(status).toMatch(/^lb-2\s+ok\s/m);
  });

  it('the feed-poster replica killed: the other takes over; nothing lost or doubled in #ops', async () => {
    // Whoever posted the latest line is the poster; the position it saved is past it.
    await feedCaughtUp();
    const posts = t.feed();
    const posterToken = posts.at(-1)!.token;
    const poster = t.replicas.find((r) => r.token === posterToken)!;
    const other = t.replicas.find((r) => r !== poster)!;
    const lastRevision = (await t.etcd.get(`${t.prefixes.services}/web/${registered.at(-1)}`).exec()).kvs[0]!.mod_revision;
    await waitFor(
      'the poster to save its position past the last change',
      async () => {
        const pos = (await t.etcd.get(`${t.prefixes.switchyard}/feed/position`).json()) as { revision?: string } | null;
        return BigInt(pos?.revision ?? 0) >= BigInt(lastRevision);
      },
      30_000,
      50,
    );
    await poster.proc!.stop('SIGKILL');
    const during = ['meanwhile-1', 'meanwhile-2', 'meanwhile-3'];
    for (const name of during) await register(name, backends[0]!.address, other);
    await waitFor(
      'the other replica to post what changed meanwhile',
      () => during.every((n) => count(new RegExp(`^\\*web/${word(n)}\\* registered`)) >= 1),
      LEASE_GONE_WITHIN_MS,
      100,
    );
    await feedCaughtUp(other);
    expect(t.feed().at(-1)!.token).toBe(other.token);
    const lines = feedLines();
    for (const name of registered) {
      const re = new RegExp(`^\\*web/${word(name)}\\* registered`);
      expect(lines.filter((l) => re.test(l)).length, `${name} in #ops`).toBe(1);
    }
  });
});
