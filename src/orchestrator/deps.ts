import type { SwarmEngine } from '../adapters/docker/swarm.js';
import type { ContainerEngine } from '../adapters/docker/types.js';
import type { Config } from '../config/schema.js';
import type { FeedSink } from '../core/feed.js';
import type { Logger } from '../core/log.js';
import type { Registry } from '../core/registry.js';
import type { ObservedHaproxy, ServiceLocks } from './ports.js';
import type { OrchestratorSettings } from './settings.js';

/** What the scaler, the death watcher and the reconciler work with. */
export interface OrchestratorDeps {
  registry: Registry;
  engine: ContainerEngine;
  locks: ServiceLocks;
  /** The #ops feed, for what only this process knows (reconcile drift, a failed restart). */
  feed: FeedSink;
  /**
   * Deaths and restarts: the registry feed already tells them once, from the attributed
   * deregistration/registration in etcd (on the elected poster only), so these reports go
   * to logs and tests, never to #ops a second time.
   */
  notices: FeedSink;
  config: Config;
  settings: OrchestratorSettings;
  /** The same engine as a Swarm manager, for services with `backend: swarm`. */
  swarm?: SwarmEngine;
  /** The local HAProxy, for scale-down to wait on sessions; without it a grace is waited. */
  haproxy?: ObservedHaproxy;
  log: Logger;
}

/** Reports progress to whoever asked (a command's message); background work passes a no-op. */
export type Progress = (text: string) => void;

export const noProgress: Progress = () => {};
