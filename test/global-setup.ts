/**
 * One etcd shared by every test file of a `vitest run`; test files reach it with
 * sharedEtcdEndpoint() from test/helpers/etcd.ts. SWITCHYARD_TEST_ETCD=http://host:port
 * uses an etcd you run yourself instead. When etcd is not installed the run goes on (suites
 * without etcd still pass) and sharedEtcdEndpoint() throws the install hint.
 */
import type { TestProject } from 'vitest/node';
import { startEtcd } from './helpers/etcd-server.js';

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const external = process.env.SWITCHYARD_TEST_ETCD;
  if (external) {
    project.provide('etcdEndpoint', external);
    project.provide('etcdError', undefined);
    return undefined;
  }
  try {
    const etcd = await startEtcd();
    project.provide('etcdEndpoint', etcd.endpoint);
    project.provide('etcdError', undefined);
    return () => etcd.dispose();
  } catch (err) {
    project.provide('etcdEndpoint', undefined);
    project.provide('etcdError', err instanceof Error ? err.message : String(err));
    return undefined;
  }
}
