/**
 * `status` and /healthz judge etcd by quorum, not by every endpoint: a 3-member cluster
 * with one member down still serves the registry, and saying "unreachable" then would send
 * an on-call engineer after the wrong fault.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEtcdRegistry, type EtcdRegistry } from '../src/adapters/etcd/registry.js';
import { configSchema } from '../src/config/schema.js';
import { replyToText } from '../src/core/reply.js';
import { shellCaller, testRouter } from './helpers/core.js';
import { type EtcdCluster, startEtcdCluster } from './helpers/etcd-server.js';
import { testLog } from './helpers/haproxy.js';

describe('etcd health by quorum (3-member cluster)', () => {
  let cluster: EtcdCluster;
  let registry: EtcdRegistry;

  beforeAll(async () => {
    cluster = await startEtcdCluster(3);
    registry = createEtcdRegistry(
      configSchema.parse({
        etcd: { endpoints: cluster.endpoints, commandTimeout: '5s' },
        registry: { prefix: '/quorum/services', switchyardPrefix: '/quorum/switchyard' },
      }),
      { log: testLog },
    );
  }, 60_000);
  afterAll(async () => {
    await registry?.close();
    await cluster?.dispose();
  });

  it('all up → ok; one member down → still ok, the silent endpoint named; two down → unreachable', async () => {
    const { router } = testRouter({ registry });
    await registry.register('web', 'web-1', '10.0.0.1:80', { by: 'U1' });

    let reply = await router.dispatch({ text: 'status', caller: shellCaller() });
    expect(reply.ok).toBe(true);
    expect(replyToText(reply)).toContain('etcd ok (3/3 endpoints');
    expect(replyToText(reply)).not.toContain('not answering');

    const [m0, m1, m2] = cluster.members;
    await m2!.kill();
    const degraded = await registry.health();
    expect(degraded.ok).toBe(true);
    expect(degraded.endpoints.map((e) => e.ok)).toEqual([true, true, false]);
    reply = await router.dispatch({ text: 'status', caller: shellCaller() });
    expect(reply.ok).toBe(true);
    const text = replyToText(reply);
    expect(text).toContain('etcd ok (2/3 endpoints');
    expect(text).toContain(`not answering: ${m2!.endpoint}`);
    expect(text).toContain('web-1');

    await m1!.kill();
    const lost = await registry.health();
    expect(lost.ok).toBe(false);
    expect(lost.endpoints.filter((e) => e.ok).map((e) => e.endpoint)).toEqual([m0!.endpoint]);
  }, 120_000);
});
