/**
 * `scale` for a `backend: swarm` service: Swarm schedules the tasks; we create the service on
 * first use, set its replica count with the version index we read (so a concurrent update
 * cannot be silently overwritten), drain before lowering it, and register tasks as they run.
 */
import type { SwarmService } from '../../adapters/docker/swarm.js';
import { scalableService } from '../../config/schema.js';
import { fail, isSwitchyardError } from '../../core/errors.js';
import type { ScaleOutcome } from '../../core/facades.js';
import type { Progress } from '../deps.js';
import { asSwitchyardError } from '../failure.js';
import { describeHolder } from '../lock.js';
import { ownedBy } from '../ownership.js';
import { waitDrained } from '../retire.js';
import type { SwarmBackend, SyncOutcome } from './backend.js';
import { isOwnedService, type TaskView } from './sync.js';

/** Tries at a replica update when someone outside switchyard updates the service meanwhile. */
const UPDATE_TRIES = 3;
/** Tasks have no events: how often a scale looks at them while waiting. */
const POLL_MS = 250;

export interface SwarmScaleRequest {
  service: string;
  replicas: number;
  actor: string;
  requestId?: string;
  progress: Progress;
}

export async function scaleSwarmService(backend: SwarmBackend, req: SwarmScaleRequest): Promise<ScaleOutcome> {
  const { deps } = backend;
  const { service, replicas, actor, progress } = req;
  const svc = scalableService(service, deps.config.services[service]!);
  const lock = await deps.locks.acquire(
    service,
    { by: actor, what: `scale ${service} ${replicas}`, ...(req.requestId ? { requestId: req.requestId } : {}) },
    { waitMs: deps.settings.lockWaitMs, onWait: (h) => progress(`waiting for ${describeHolder(h)} to finish`) },
  );
  try {
    let current = await deps.swarm.inspectService(service);
    if (current && !isOwnedService(current, deps.settings.owner)) {
      fail(
        'E_CONFLICT',
        `the Swarm service ${service} was not created by this switchyard (no switchyard.owner=${deps.settings.owner} label): it is never touched`,
      );
    }
    await deps.registry.setDesired(service, replicas, actor);
    const first = await backend.sync(service, actor);
    const outcome: ScaleOutcome = {
      service,
      replicas,
      before: first.view.running.length,
      running: [],
      started: [],
      retired: [],
      failed: [],
      tidied: first.changes,
      problems: [...first.problems],
    };
    for (const c of first.changes) progress(c);
    if (!current) {
      if (replicas === 0) return outcome;
      progress(`${service}: creating the Swarm service`);
      current = await deps.swarm.createService({
        service,
        owner: deps.settings.owner,
        image: svc.image,
        port: svc.port,
        ...(svc.cmd ? { cmd: svc.cmd } : {}),
        env: svc.env,
      });
    }
    const victims = first.view.running.filter((t) => t.task.slot > replicas).sort((a, b) => b.task.slot - a.task.slot);
    if (victims.length) {
      progress(`${service}: ${first.view.running.length} running; draining ${victims.map((v) => v.instance).join(', ')}`);
      await drainAll(backend, service, victims, actor, progress);
    }
    await updateReplicas(backend, current, replicas, progress);
    const end = await waitConverged(backend, service, replicas, actor, progress);
    // Swarm chose other tasks than the highest slots: what we drained and it kept goes back in rotation.
    const kept = victims.filter((v) => end.view.running.some((t) => t.instance === v.instance));
    for (const v of kept) await deps.registry.setState(service, v.instance, 'ready', ownedBy(actor, deps.settings.owner)).catch(() => undefined);
    if (kept.length)
      end.problems.push(
        `${service}: Swarm removed other tasks than ${kept.map((v) => v.instance).join(', ')}, which were drained first and are back in rotation`,
      );
    const before = new Set(first.view.running.map((t) => t.instance));
    const after = new Set(end.view.running.map((t) => t.instance));
    outcome.started = [...after].filter((i) => !before.has(i)).sort();
    outcome.retired = [...before].filter((i) => !after.has(i)).sort();
    outcome.running = end.view.running.map((t) => {
      const reg = end.view.registrations.find((r) => r.instance === t.instance);
      return {
        instance: t.instance,
        address: t.address ?? '-',
        state: reg ? (reg.state?.state ?? 'ready') : 'unregistered',
        container: t.task.id.slice(0, 12),
        status: `${t.task.state} on ${t.node?.hostname ?? t.task.nodeId}`,
      };
    });
    outcome.failed = end.view.slots
      .filter((t) => t.task.slot <= replicas && !after.has(t.instance) && t.task.error)
      .map((t) => ({
        instance: t.instance,
        code: 'E_UNAVAILABLE' as const,
        message: `task ${t.task.id.slice(0, 12)} ${t.task.state}: ${t.task.error}`,
        details: [],
      }));
    outcome.problems.push(...end.problems);
    if (!lock.held) outcome.problems.push(`the lock on ${service} was lost midway (etcd unreachable past its lease): another change may have overlapped`);
    return outcome;
  } finally {
    await lock.release();
  }
}

/** Drain what Swarm removes first (the highest slots) and wait for their sessions, as scale-down does for containers. */
async function drainAll(backend: SwarmBackend, service: string, victims: readonly TaskView[], actor: string, progress: Progress): Promise<void> {
  const { deps } = backend;
  const by = ownedBy(actor, deps.settings.owner);
  await Promise.all(
    victims.map(async (v) => {
      try {
        await deps.registry.setState(service, v.instance, 'drain', by);
      } catch (err) {
        if (isSwitchyardError(err, 'E_NOT_FOUND')) return; // not registered: no traffic to wait for
        throw err;
      }
      progress(`draining ${v.instance}`);
      const open = await waitDrained(deps, service, v.instance);
      if (open) progress(`${v.instance}: still ${open.sessions} session(s) after ${Math.round(open.waitedMs / 1000)}s of draining; removing anyway`);
      // Left registered (drained): the sync deregisters it once Swarm has shut the task down.
    }),
  );
}

/**
 * Update with the version we read. Losing to an update from outside (docker CLI, another
 * manager) is retried on a fresh read: we hold our own lock, so no other switchyard scale races us.
 */
async function updateReplicas(backend: SwarmBackend, read: SwarmService, replicas: number, progress: Progress): Promise<void> {
  const { swarm } = backend.deps;
  let current = read;
  for (let attempt = 1; ; attempt++) {
    try {
      await swarm.updateReplicas(current, replicas);
      return;
    } catch (err) {
      if (!isSwitchyardError(err, 'E_CONFLICT') || attempt >= UPDATE_TRIES) throw err;
      progress(`${current.Spec.Name}: the service changed under us (version ${current.Version.Index}); retrying`);
      const fresh = await swarm.inspectService(current.Spec.Name);
      if (!fresh) fail('E_CONFLICT', `the Swarm service ${current.Spec.Name} was removed while scaling`);
      current = fresh;
    }
  }
}

async function waitConverged(backend: SwarmBackend, service: string, replicas: number, actor: string, progress: Progress) {
  const deadline = Date.now() + backend.deps.settings.startTimeoutMs;
  let said = '';
  for (;;) {
    let out: SyncOutcome;
    try {
      out = await backend.sync(service, actor);
    } catch (err) {
      if (Date.now() > deadline) throw asSwitchyardError(err);
      await sleep(POLL_MS);
      continue;
    }
    const running = out.view.running.length;
    const extra = out.view.stopping;
    const errors = out.view.slots.filter((t) => t.task.error && t.task.state !== 'running').map((t) => `${t.instance}: ${t.task.state}: ${t.task.error}`);
    const text = [`${service}: ${running}/${replicas} running${extra ? ` (${extra} stopping)` : ''}`, ...errors].join('\n');
    if (text !== said) {
      said = text;
      progress(text);
    }
    // Registered too: a task can start running between the sync's write and its re-read.
    const registered = (t: TaskView) => out.view.registrations.some((r) => r.instance === t.instance && r.address === t.address);
    const done = running === replicas && extra === 0 && out.view.running.every(registered);
    if (done) return out;
    if (Date.now() > deadline) {
      out.problems.push(
        `${service}: ${running}/${replicas} running after ${Math.round(backend.deps.settings.startTimeoutMs / 1000)}s${errors.length ? `; ${errors.join('; ')}` : ''}`,
      );
      return out;
    }
    await sleep(POLL_MS);
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
