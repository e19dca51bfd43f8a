/**
 * Agents when HAProxy goes away, and several agents (one per HAProxy) on one registry.
 */
import { readFile } from 'node:fs/promises';
import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { EtcdRegistry } from '../src/adapters/etcd/registry.js';
import { formatApplyResult } from '../src/agent/agent.js';
import { sharedEtcdEndpoint, uniquePrefix, wipe } from './helpers/etcd.js';
import {
  agentConfig,
  freePort,
  httpGet,
  registryAt,
  startAgent,
  startHaproxy,
  startHttpBackend,
  waitFor,
  whoAnswers,
  type HttpBackend,
  type RunningAgent,
  type TestHaproxy,
} from './helpers/haproxy.js';

describe('HAProxy agents: outages and several agents', () => {
  let endpoint: string;
  let raw: Etcd3;
  let backends: HttpBackend[] = [];
  // Per test: a registry prefix of its own, and the HAProxy instances and agents it started.
  let prefix: string;
  let registry: EtcdRegistry | undefined;
  const haps: TestHaproxy[] = [];
  const agents: RunningAgent[] = [];

  beforeAll(async () => {
    endpoint = sharedEtcdEndpoint();
    raw = new Etcd3({ hosts: endpoint });
    backends = await Promise.all(['app-1', 'app-2', 'app-3'].map(startHttpBackend));
  });

  afterAll(async () => {
    await Promise.all(backends.map((b) => b.close()));
    raw?.close();
  });

  beforeEach(() => {
    prefix = uniquePrefix('agents');
    registry = registryAt(endpoint, prefix);
  });

  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.agent.stop()));
    await registry?.close();
    registry = undefined;
    await Promise.all(haps.splice(0).map((h) => h.dispose()));
    await wipe(raw, `${prefix}/`);
  });

  const reg = () => {
    if (!registry) throw new Error('no registry: beforeEach did not run');
    return registry;
  };

  async function lb(agentId: string): Promise<{ hap: TestHaproxy; running: RunningAgent; url: string }> {
    const hap = await startHaproxy();
    haps.push(hap);
    const port = await freePort();
    const running = await startAgent(agentConfig(endpoint, prefix, hap, agentId, { app: { listen: `127.0.0.1:${port}` } }), reg(), {
      retry: { minMs: 50, maxMs: 300 },
    });
    agents.push(running);
    return { hap, running, url: `http://127.0.0.1:${port}/` };
  }

  it('two agents with two HAProxy instances converge on the same registry', async () => {
    const [a1, a2] = backends as [HttpBackend, HttpBackend];
    const registry = reg();
    const lb1 = await lb('lb-1');
    const lb2 = await lb('lb-2');
    await registry.register('app', 'app-1', a1.address, { by: 'U1' });
    await registry.register('app', 'app-2', a2.address, { by: 'U1' });
    for (const { url } of [lb1, lb2]) {
      await waitFor(`both servers behind ${url}`, async () => (await whoAnswers(url, 4)).size === 2);
    }
    // Each agent publishes under its own key.
    const keys = [`${prefix}/switchyard/agents/lb-1`, `${prefix}/switchyard/agents/lb-2`];
    await waitFor('both agent keys', async () => (await raw.getAll().prefix(`${prefix}/switchyard/agents/`).keys()).sort().join() === keys.join());

    await registry.setState('app', 'app-1', 'drain', 'U1');
    for (const { url } of [lb1, lb2]) {
      await waitFor(`app-1 drained behind ${url}`, async () => [...(await whoAnswers(url, 4)).keys()].join() === 'app-2');
    }
    await registry.setState('app', 'app-1', 'ready', 'U1');

    // A stopped agent's key disappears with its lease.
    await lb2.running.agent.stop();
    expect(await raw.get(`${prefix}/switchyard/agents/lb-2`).string()).toBeNull();
    expect(await raw.get(`${prefix}/switchyard/agents/lb-1`).string()).not.toBeNull();
  });

  it('HAProxy stopped: the agent reports it, keeps watching, and converges when HAProxy is back', async () => {
    const [a1, , a3] = backends as [HttpBackend, HttpBackend, HttpBackend];
    const registry = reg();
    const { hap, running, url } = await lb('lb-1');
    await registry.register('app', 'app-1', a1.address, { by: 'U1' });
    await waitFor('lb-1 serving', async () => (await httpGet(url).catch(() => undefined))?.body === 'app-1');
    await hap.stop();

    const n = running.results.length;
    await registry.register('app', 'app-3', a3.address, { by: 'U1' });
    const down = await waitFor('outage reported', () => running.results.slice(n).find((r) => !r.ok));
    expect(down.failure).toBe('unavailable');
    expect(down.error?.[0]).toMatch(/^waiting for HAProxy: .*not reachable on its admin socket .*admin\.sock \((ECONNREFUSED|ENOENT)\)/);
    expect(formatApplyResult(down)).toMatch(/^haproxy lb-1: waiting for HAProxy: .* — will retry$/);
    // The validated config is on disk for HAProxy to start from, app-3 included.
    expect(await readFile(hap.config, 'utf8')).toContain(`server app-3 ${a3.address} `);
    // Reported once per outage, not once per retry: wait until the agent has retried (its
    // latest result is a newer failure than the reported one), twice, then count the reports.
    const retries = new Set<typeof down>();
    await waitFor('two retries after the report', () => {
      const last = running.agent.lastResult;
      if (last && last !== down && !last.ok) retries.add(last);
      return retries.size >= 2;
    });
    expect([...retries].map((r) => r.failure)).toEqual(['unavailable', 'unavailable']);
    expect(running.results.slice(n).filter((r) => !r.ok)).toHaveLength(1);
    // The status key says so too.
    const stored = JSON.parse((await raw.get(`${prefix}/switchyard/agents/lb-1`).string()) ?? '{}');
    expect(stored).toMatchObject({ ok: false, failure: 'unavailable' });

    // HAProxy comes back from that file: app-3 is routed at once, and the agent, finding
    // the file current, only reconciles runtime state — no reload.
    await hap.start();
    const worker = await hap.workerPid();
    await waitFor('app-3 routed after restart', async () => (await whoAnswers(url, 6)).has('app-3'), 10_000);
    const failedAt = running.results.indexOf(down);
    const back = await waitFor('recovery reported', () => running.results.slice(failedAt + 1).find((r) => r.ok));
    expect(back.method).not.toBe('reload');
    expect(await hap.workerPid()).toBe(worker);
  });
});
