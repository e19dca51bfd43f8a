/**
 * `switchyard watch`: the registrator role (src/watch) wired to etcd and the local Docker
 * engine, until SIGINT/SIGTERM. No Slack, no HAProxy.
 */
import { hostname } from 'node:os';
import Dockerode from 'dockerode';
import { dockerodeOptions, resolveDockerHost } from '../adapters/docker/host.js';
import { withinDeadline } from '../adapters/etcd/deadline.js';
import { createEtcdRegistry } from '../adapters/etcd/registry.js';
import type { Secrets } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { SwitchyardError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { NAME_RE } from '../core/names.js';
import { SHUTDOWN_IO_MS, shutDown, stopSignal } from '../core/shutdown.js';
import { instanceFromName } from '../watch/container.js';
import { Watcher } from '../watch/watcher.js';

/** The host ID: watch.host, else the machine's hostname made into a name. */
export function watcherHost(config: Config, machine = hostname()): string {
  const host = config.watch?.host ?? instanceFromName(machine.split('.')[0] ?? '');
  if (host === undefined || !NAME_RE.test(host)) {
    throw new SwitchyardError('E_CONFIG', `watch.host is not set and the hostname ${JSON.stringify(machine)} is not a usable host ID; set watch.host`);
  }
  return host;
}

export async function watchCommand(config: Config, secrets: Pick<Secrets, 'etcdPassword'>, log: Logger): Promise<number> {
  const settings = config.watch;
  if (!settings) {
    throw new SwitchyardError('E_CONFIG', 'switchyard watch needs a watch: section with advertise: (the address other hosts reach this one at)', {
      details: ['watch:', '  advertise: 10.0.0.5   # this host; never guessed from its interfaces'],
    });
  }
  const host = watcherHost(config);
  const registry = createEtcdRegistry(config, {
    ...(secrets.etcdPassword !== undefined ? { password: secrets.etcdPassword } : {}),
    log: log.child({ component: 'etcd' }),
  });
  const docker = new Dockerode(dockerodeOptions(resolveDockerHost(config.docker?.host)));
  const watcher = new Watcher({ registry, docker, host, advertise: settings.advertise, ttlMs: settings.ttl, log: log.child({ component: 'watch', host }) });
  // Stop on a signal that arrives while starting, too.
  const stopping = new AbortController();
  const signal = stopSignal(log, stopping.signal);
  try {
    await Promise.race([watcher.start(), signal]);
    log.info({ host, advertise: settings.advertise, ttlMs: settings.ttl, lease: watcher.lease }, 'watch: running');
    await signal;
  } finally {
    stopping.abort();
    // A clean stop revokes the lease: its registrations leave at once rather than after the TTL.
    await shutDown(
      log,
      [
        ['watcher', () => watcher.stop()],
        ['registry', () => registry.close()],
      ],
      { scope: (fn) => withinDeadline(SHUTDOWN_IO_MS, fn) },
    );
  }
  return 0;
}
