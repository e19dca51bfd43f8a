import { randomBytes } from 'node:crypto';
import { NAME_RE } from '../core/names.js';

/**
 * `<service>-<8 hex>`: valid per NAME_RE, unique without coordination, and never reused, so
 * a late event or stale key about an old instance can never be mistaken for a new one.
 */
export function newInstanceName(service: string, taken: ReadonlySet<string>): string {
  for (;;) {
    const name = `${service.slice(0, 54)}-${randomBytes(4).toString('hex')}`;
    if (!taken.has(name) && NAME_RE.test(name)) return name;
  }
}

/**
 * The Docker container name of an instance's n-th run. A replacement keeps the instance
 * name (like a Docker restart keeps the container) and counts up here, so the restart
 * count survives a bot restart and shows in `docker ps`.
 */
export function containerName(instance: string, restarts: number): string {
  return restarts > 0 ? `${instance}.r${restarts}` : instance;
}

export function restartsOf(containerName: string, instance: string): number {
  if (!containerName.startsWith(instance)) return 0;
  const m = /^\.r(\d+)$/.exec(containerName.slice(instance.length));
  return m ? Number(m[1]) : 0;
}

/** `host:port`, bracketing an IPv6 host. */
export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
