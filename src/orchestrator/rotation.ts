/**
 * Drain and undrain: the one implementation behind `drain`, `undrain` and scale-down. The
 * state is written (under the service's lock, attributed to whoever runs the command), then
 * HAProxy is followed until the agent has applied it and the sessions have ended.
 */
import { SwitchyardError } from '../core/errors.js';
import type { DrainOutcome, Rotation, ServerState } from '../core/facades.js';
import { currentActor, currentCause } from '../core/feed.js';
import type { Logger } from '../core/log.js';
import type { Registry } from '../core/registry.js';
import { describeHolder } from './lock.js';
import type { ObservedHaproxy, ServerLookup, ServiceLocks } from './ports.js';

/** HAProxy has no push for session counts: `show stat` is read this often while draining. */
const POLL_MS = 200;
/** How long the agent may take to show a state change before we say it has not applied it. */
export const APPLY_GRACE_MS = 5_000;
export const DEFAULT_DRAIN_TIMEOUT_MS = 60_000;
/** HAProxy statuses in which a server gets no new requests. */
const OUT_OF_ROTATION = new Set(['DRAIN', 'MAINT', 'DOWN', 'NOLB']);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

export interface WatchOptions {
  timeoutMs: number;
  /** How long a server may stay missing (or HAProxy unreadable), in a row, before we stop looking. */
  applyGraceMs: number;
  agentId: string;
  progress?: (text: string) => void;
}

/**
 * Follow an instance in HAProxy until the agent has taken it out of rotation and its
 * sessions reach 0, or the timeout; each new session count is reported as progress.
 */
export async function watchDrain(lookup: ServerLookup, service: string, instance: string, o: WatchOptions): Promise<DrainOutcome> {
  const started = Date.now();
  const elapsed = () => Date.now() - started;
  const grace = Math.min(o.applyGraceMs, o.timeoutMs);
  let reported: string | undefined;
  const say = (text: string) => {
    if (text !== reported) o.progress?.((reported = text));
  };
  let last: ServerState | undefined;
  // Since when HAProxy has not shown the server (unreadable, or without it). The grace runs
  // from there, not from the drain's start: one slow or refused `show stat` (a reload swaps
  // the socket; a loaded host answers late) must not end a drain whose sessions are still open.
  let missingSince: number | undefined;
  for (;;) {
    let row: ServerState | undefined;
    let error: string | undefined;
    try {
      row = await lookup(service, instance);
    } catch (err) {
      error = message(err);
    }
    if (row) {
      last = row;
      missingSince = undefined;
    } else {
      missingSince ??= Date.now();
      // HAProxy restarting or gone, or the server removed: not worth waiting the whole timeout for.
      if (Date.now() - missingSince >= grace) {
        return error === undefined ? { kind: 'absent', agentId: o.agentId } : { kind: 'unreadable', error, agentId: o.agentId };
      }
    }
    const applied = !!row && OUT_OF_ROTATION.has(row.status);
    if (applied && row!.sessions === 0) return { kind: 'drained', waitedMs: elapsed(), agentId: o.agentId };
    if (applied) say(`${service}/${instance}: ${row!.sessions} session${row!.sessions === 1 ? '' : 's'} draining`);
    else if (row) say(`waiting for agent ${o.agentId} to apply the drain (HAProxy shows ${row.status})`);
    if (elapsed() >= o.timeoutMs) {
      if (!last || !OUT_OF_ROTATION.has(last.status)) {
        return { kind: 'not-applied', status: last?.status ?? '-', sessions: last?.sessions ?? 0, waitedMs: elapsed(), agentId: o.agentId };
      }
      return { kind: 'open', sessions: last.sessions, waitedMs: elapsed(), agentId: o.agentId };
    }
    await sleep(Math.min(POLL_MS, Math.max(1, o.timeoutMs - elapsed())));
  }
}

/** Until HAProxy has the instance back in rotation, at most `timeoutMs`. */
async function watchUndrain(lookup: ServerLookup, service: string, instance: string, timeoutMs: number, agentId: string) {
  const started = Date.now();
  let row: ServerState | undefined;
  let error: string | undefined;
  for (;;) {
    try {
      row = await lookup(service, instance);
      error = undefined;
      if (row && row.status !== 'DRAIN' && row.status !== 'MAINT') return { kind: 'ready' as const, status: row.status, agentId };
    } catch (err) {
      error = message(err);
    }
    const waitedMs = Date.now() - started;
    if (waitedMs >= timeoutMs) {
      if (error) return { kind: 'unreadable' as const, error, agentId };
      if (!row) return { kind: 'absent' as const, agentId };
      return { kind: 'not-applied' as const, status: row.status, sessions: row.sessions, waitedMs, agentId };
    }
    await sleep(POLL_MS);
  }
}

export interface RotationDeps {
  registry: Registry;
  /** Per-service locks serialising drains with scale; without them, writes go straight through. */
  locks?: ServiceLocks;
  lockWaitMs: number;
  /** This process's HAProxy (its agent), where sessions can be observed. */
  haproxy?: ObservedHaproxy;
  log: Logger;
}

export class ServiceRotation implements Rotation {
  constructor(private readonly deps: RotationDeps) {}

  async drain(service: string, instance: string, opts: { timeoutMs?: number; progress?: (text: string) => void } = {}) {
    const already = await this.setUnlessAlready(service, instance, 'drain', opts.progress);
    const hap = this.deps.haproxy;
    if (!hap) return { already, outcome: { kind: 'unobserved' as const, reason: 'this bot runs no HAProxy agent (no haproxy: in its config)' } };
    const outcome = await watchDrain(hap.lookup, service, instance, {
      timeoutMs: opts.timeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS,
      applyGraceMs: APPLY_GRACE_MS,
      agentId: hap.agentId,
      ...(opts.progress ? { progress: opts.progress } : {}),
    });
    return { already, outcome };
  }

  async undrain(service: string, instance: string, opts: { progress?: (text: string) => void } = {}) {
    const already = await this.setUnlessAlready(service, instance, 'ready', opts.progress);
    const hap = this.deps.haproxy;
    if (already) return { already, outcome: { kind: 'ready' as const, status: '-', agentId: hap?.agentId ?? '-' } };
    if (!hap) return { already, outcome: { kind: 'unobserved' as const, reason: 'this bot runs no HAProxy agent (no haproxy: in its config)' } };
    return { already, outcome: await watchUndrain(hap.lookup, service, instance, APPLY_GRACE_MS, hap.agentId) };
  }

  /** Removing the last instance that takes traffic is an outage: ask first. */
  async lastReadyWarning(service: string, instance: string): Promise<string | undefined> {
    const { instances } = await this.deps.registry.list(service);
    const ready = instances.filter((i) => (i.state?.state ?? 'ready') === 'ready');
    if (ready.length === 1 && ready[0]!.instance === instance) {
      return `${service}/${instance} is the last ready instance of ${service}; removing it leaves ${service} with no traffic`;
    }
    return undefined;
  }

  /** True when the instance was in `state` already (nothing written). */
  private async setUnlessAlready(service: string, instance: string, state: 'drain' | 'ready', progress?: (text: string) => void): Promise<boolean> {
    const current = await this.deps.registry.get(service, instance);
    if (!current) throw new SwitchyardError('E_NOT_FOUND', `${service}/${instance} is not registered`);
    if ((current.state?.state ?? 'ready') === state) return true;
    const by = currentActor();
    const what = `${state === 'drain' ? 'drain' : 'undrain'} ${service} ${instance}`;
    const write = () => this.deps.registry.setState(service, instance, state, by);
    const locks = this.deps.locks;
    if (!locks) {
      await write();
      return false;
    }
    const requestId = currentCause()?.requestId;
    const held = await locks.acquire(
      service,
      { by, what, ...(requestId ? { requestId } : {}) },
      { waitMs: this.deps.lockWaitMs, ...(progress ? { onWait: (h) => progress(`waiting for ${describeHolder(h)}`) } : {}) },
    );
    try {
      await write();
    } finally {
      await held.release();
    }
    return false;
  }
}
