/**
 * A real etcd for tests. Each started instance owns random loopback ports and a private
 * data directory; it only ever signals the PID it spawned and removes its directory on
 * dispose(). Test files share one instance started by test/global-setup.ts (see
 * sharedEtcdEndpoint()) and keep out of each other's way with uniquePrefix(); a test that
 * stops, restarts or compacts etcd must start its own with startEtcd().
 */
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { inject } from 'vitest';

export { clusterLeader, ETCD_NOT_FOUND, etcdctl, findOnPath, startEtcd, startEtcdCluster, startProxy } from './etcd-server.js';
export type { EtcdCluster, EtcdProcess, EtcdProxy, EtcdTls } from './etcd-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Client URL of the shared etcd, or undefined when global setup could not start one. */
    etcdEndpoint: string | undefined;
    /** Why the shared etcd is missing (e.g. ETCD_NOT_FOUND). */
    etcdError: string | undefined;
  }
}

/**
 * The shared etcd's client URL (started once per `vitest run` by test/global-setup.ts).
 * Throws with an install hint when etcd is missing, so suites that need it fail loudly
 * while suites that don't are unaffected.
 */
export function sharedEtcdEndpoint(): string {
  const endpoint = inject('etcdEndpoint');
  if (!endpoint) throw new Error(inject('etcdError') ?? 'the shared etcd is not running (is test/global-setup.ts registered?)');
  return endpoint;
}

let prefixCounter = 0;

/** A key prefix no other test (in any worker) uses, without a trailing slash: `/t-…`. */
export function uniquePrefix(label = 't'): string {
  return `/${label}-${process.pid}-${++prefixCounter}-${randomBytes(3).toString('hex')}`;
}

/** Delete every key under each prefix (as given: pass the prefix itself, e.g. uniquePrefix()). */
export async function wipe(client: Etcd3, ...prefixes: string[]): Promise<void> {
  await Promise.all(prefixes.map((p) => client.delete().prefix(p).exec()));
}
