import type { ContainerInfo, EngineEvent, EventSubscription, ReconnectInfo } from '../adapters/docker/types.js';
import { isSwitchyardError } from '../core/errors.js';
import { withCause } from '../core/feed.js';
import type { Logger } from '../core/log.js';
import { deathReason, type DeathFacts } from './death-report.js';
import type { OrchestratorDeps } from './deps.js';
import { Replacer } from './replacer.js';

/** oom/kill events seen before a die, by container ID; bounded in case a die never comes. */
const NOTES_LIMIT = 1000;
const DEREGISTER_ATTEMPTS = 3;
const CLOSE_WAIT_MS = 5000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface DeathWatcherHooks {
  /** The events stream came back after a loss: deaths may have been missed, reconcile. */
  onReconnect(info: ReconnectInfo): void;
}

/**
 * The serf handler's job: when a managed container dies, its registration goes at once
 * (from the die event, not a poll), the feed hears why, and with `restart: always` a
 * replacement is started. A container whose instance is no longer registered was stopped
 * on purpose (scale-down deregisters first) or never made it (a failed start): not news.
 */
export class DeathWatcher {
  private sub: EventSubscription | undefined;
  private readonly notes = new Map<string, { oom: boolean; signal: string | undefined }>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly log: Logger;
  private readonly replacer: Replacer;

  constructor(
    private readonly deps: OrchestratorDeps,
    private readonly hooks: DeathWatcherHooks,
  ) {
    this.log = deps.log.child({ component: 'death-watcher' });
    this.replacer = new Replacer(deps);
  }

  /** Subscribe; `ready` resolves once events are flowing (nothing after that is missed). */
  start(): { ready: Promise<void> } {
    this.sub = this.deps.engine.events({
      owner: this.deps.settings.owner,
      onEvent: (e) => this.onEvent(e),
      onReconnect: (info) => this.hooks.onReconnect(info),
      onDisconnect: ({ cause, retryInMs }) => this.log.warn({ cause, retryInMs }, 'docker events lost: deaths are detected again once reconnected'),
    });
    return { ready: this.sub.ready };
  }

  async close(): Promise<void> {
    this.sub?.close();
    this.replacer.close();
    // A death being handled finishes its etcd and Docker calls; a restart waiting on a busy
    // lock is not worth holding up a shutdown for (reconcile starts it after the restart).
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.inFlight]), new Promise<void>((r) => (timer = setTimeout(r, CLOSE_WAIT_MS)))]);
    clearTimeout(timer);
  }

  private onEvent(e: EngineEvent): void {
    switch (e.action) {
      case 'oom':
        this.note(e.id).oom = true;
        break;
      case 'kill':
        this.note(e.id).signal = e.signal;
        break;
      case 'die': {
        const p = this.handleDeath(e).catch((err: unknown) =>
          this.log.error({ err, container: e.id, instance: e.instance }, 'handling a container death failed'),
        );
        this.inFlight.add(p);
        void p.finally(() => this.inFlight.delete(p));
        break;
      }
      case 'destroy':
        this.notes.delete(e.id);
        break;
      case 'start':
        break;
    }
  }

  private note(id: string) {
    let n = this.notes.get(id);
    if (!n) {
      if (this.notes.size >= NOTES_LIMIT) this.notes.delete(this.notes.keys().next().value!);
      this.notes.set(id, (n = { oom: false, signal: undefined }));
    }
    return n;
  }

  private async handleDeath(e: EngineEvent): Promise<void> {
    const seen = this.notes.get(e.id);
    this.notes.delete(e.id);
    const facts: DeathFacts = { exitCode: e.exitCode, oom: seen?.oom ?? false, signal: seen?.signal };

    // A late die of a run that has since been replaced must not take the new run's registration.
    if (await this.replacedMeanwhile(e)) {
      this.log.debug({ instance: e.instance, container: e.id }, 'die of a replaced run: ignored');
      return;
    }
    const svc = this.deps.config.services[e.service];
    const next = svc?.restart === 'always' ? '; restart: always, replacing it' : '';
    // The cause written with the deregistration is what #ops shows, so it carries the whole story.
    const reason = `${deathReason(facts)} (container ${e.name || e.id.slice(0, 12)}, image ${e.image || '?'})${next}`;
    const removed = await this.deregister(e, reason);
    if (!removed) {
      this.log.debug({ instance: e.instance, container: e.id }, 'a container of an unregistered instance stopped (scale-down or failed start)');
      return;
    }
    const latencyMs = Date.now() - e.time.getTime();
    const info = await this.inspect(e.id);
    const full = deathReason({ ...facts, exitCode: facts.exitCode ?? info?.exitCode, oom: facts.oom || (info?.oomKilled ?? false) });
    this.log.warn({ service: e.service, instance: e.instance, container: e.id, reason: full, latencyMs }, 'managed container died: deregistered');
    this.deps.notices.publish({
      kind: 'container.died',
      text: `${e.service}/${e.instance} deregistered: ${full} (container ${e.name || e.id.slice(0, 12)}, image ${e.image || info?.image || '?'})${next}`,
      at: new Date().toISOString(),
    });
    await this.removeContainer(e.id);
    if (svc?.restart === 'always') {
      const lived = info?.startedAt && info.finishedAt ? info.finishedAt.getTime() - info.startedAt.getTime() : undefined;
      await this.replacer.replace({ service: e.service, instance: e.instance, containerName: e.name, livedMs: lived });
    }
  }

  private async replacedMeanwhile(e: EngineEvent): Promise<boolean> {
    try {
      const siblings = await this.deps.engine.listManaged(this.deps.settings.owner, e.service);
      return siblings.some((c) => c.instance === e.instance && c.id !== e.id && c.status === 'running');
    } catch (err) {
      // Deregistering the dead address matters more than this rare case: go ahead.
      this.log.warn({ err, instance: e.instance }, 'could not list containers before deregistering a dead one');
      return false;
    }
  }

  /** Quick retries: a brief etcd hiccup must not leave a dead address in rotation until the next reconcile. */
  private async deregister(e: EngineEvent, reason: string): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await withCause({ by: 'docker', reason }, () => this.deps.registry.deregister(e.service, e.instance));
      } catch (err) {
        if (attempt >= DEREGISTER_ATTEMPTS) throw err;
        this.log.warn({ err, instance: e.instance, attempt }, 'deregistering a dead instance failed; retrying');
        await sleep(100 * attempt);
      }
    }
  }

  private async inspect(id: string): Promise<ContainerInfo | undefined> {
    try {
      return await this.deps.engine.inspect(id);
    } catch (err) {
      // Already removed (docker rm -f): the event's facts are all there is.
      if (!isSwitchyardError(err, 'E_NOT_FOUND')) this.log.debug({ err, id }, 'could not inspect a dead container');
      return undefined;
    }
  }

  private async removeContainer(id: string): Promise<void> {
    try {
      await this.deps.engine.remove(id, { force: true });
    } catch (err) {
      if (!isSwitchyardError(err, 'E_NOT_FOUND')) this.log.warn({ err, id }, 'could not remove a dead container; reconcile will');
    }
  }
}
