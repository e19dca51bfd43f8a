import type { Etcd3 } from 'etcd3';
import type { EtcdHealth } from '../../core/registry.js';
import { describeEtcdError } from './errors.js';

export type EndpointHealth = EtcdHealth['endpoints'][number];

const TIMED_OUT = Symbol('timed out');

/**
 * Ask one endpoint for its status. The gRPC deadline should end the call, but the timer
 * bounds it anyway (the auth token exchange, for one, runs before the call starts), so a
 * status report never waits on a black-holed endpoint.
 */
export async function endpointHealth(client: Etcd3, endpoint: string, timeoutMs: number): Promise<EndpointHealth> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), timeoutMs);
  });
  try {
    const res = await Promise.race([client.maintenance.status({ deadline: Date.now() + timeoutMs }), timeout]);
    if (res === TIMED_OUT) return { endpoint, ok: false, error: `no answer within ${timeoutMs}ms` };
    return { endpoint, ok: true, version: res.version };
  } catch (err) {
    return { endpoint, ok: false, error: describeEtcdError(err) };
  } finally {
    clearTimeout(timer);
  }
}
