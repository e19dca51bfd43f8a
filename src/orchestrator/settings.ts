import { createHash } from 'node:crypto';
import type { Config } from '../config/schema.js';

/** Orchestration knobs, resolved once from `docker:` with the defaults applied. */
export interface OrchestratorSettings {
  /** Value of the switchyard.owner label: containers with another owner are never touched. */
  owner: string;
  reconcileIntervalMs: number;
  /** Bound on create → running (and healthy, with a HEALTHCHECK). */
  startTimeoutMs: number;
  /** SIGTERM → SIGKILL on scale-down. */
  stopGraceMs: number;
  /** Bound on waiting for a drained instance's sessions to reach 0. */
  drainTimeoutMs: number;
  /** What a drain waits when nothing can count sessions: long enough for the agent to apply it. */
  drainGraceMs: number;
  /** Lease of the per-service lock: how long a crashed holder blocks the service. */
  lockTtlMs: number;
  /** How long a scale waits for another one on the same service before it is refused. */
  lockWaitMs: number;
}

const MAX_OWNER = 40;

/**
 * A stable owner without configuration: two switchyards on one etcd keep their state under
 * different prefixes, so the prefix tells their containers apart too.
 */
export function defaultOwner(switchyardPrefix: string): string {
  const name = switchyardPrefix
    .replace(/^\/+/, '')
    .replace(/[^A-Za-z0-9_.-]+/g, '.')
    .replace(/^[^A-Za-z0-9]+/, '');
  if (name !== '' && name.length <= MAX_OWNER) return name;
  return `sy-${createHash('sha256').update(switchyardPrefix).digest('hex').slice(0, 12)}`;
}

export function orchestratorSettings(config: Pick<Config, 'docker' | 'registry'>): OrchestratorSettings {
  const d = config.docker ?? {};
  const drainTimeoutMs = d.drainTimeout ?? 30_000;
  return {
    owner: d.owner ?? defaultOwner(config.registry.switchyardPrefix),
    reconcileIntervalMs: d.reconcileInterval ?? 30_000,
    startTimeoutMs: d.startTimeout ?? 30_000,
    stopGraceMs: d.stopGrace ?? 10_000,
    drainTimeoutMs,
    drainGraceMs: Math.min(1000, drainTimeoutMs),
    lockTtlMs: Math.max(2000, d.lockTtl ?? 10_000),
    lockWaitMs: d.lockWait ?? 60_000,
  };
}
