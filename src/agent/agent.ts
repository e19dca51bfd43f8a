/**
 * The HAProxy agent (the confd role, one per HAProxy host): watches the registry, keeps
 * the routing view, coalesces bursts, applies through runtime API or validated reload,
 * and publishes each result on a lease under `<switchyard>/agents/<agent-id>`.
 *
 * It never polls the registry. The only timers are the coalescing window, the backoff
 * while HAProxy is unreachable, and re-applies while a removed server still has sessions.
 */
import { hostname } from 'node:os';
import type { Config } from '../config/schema.js';
import { isSwitchyardError, SwitchyardError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { NAME_RE } from '../core/names.js';
import type { Registry, RegistryEvent, WatchHandle } from '../core/registry.js';
import { KeyLayout } from '../adapters/etcd/keys.js';
import { HaproxyApplier, type ApplyResult } from '../adapters/haproxy/apply.js';
import { HaproxyMaster } from '../adapters/haproxy/master.js';
import type { AppliedConfig } from '../adapters/haproxy/plan.js';
import { HaproxyRuntime } from '../adapters/haproxy/runtime.js';
import type { StatRow } from '../adapters/haproxy/runtime-parse.js';
import { DEFAULT_TEMPLATE_PATH, loadTemplate, unusableTemplate, type ConfigTemplate } from '../adapters/haproxy/template.js';
import { Coalescer } from './coalesce.js';
import { Converger } from './converge.js';
import { formatApplyResult } from './format.js';
import { RegistrySnapshot } from './snapshot.js';
import type { AgentStatusStore } from './status-store.js';

export { formatApplyResult } from './format.js';

const NO_SNAPSHOT = 'the agent has no registry snapshot yet';

export type AgentConfig = Pick<Config, 'services' | 'registry'> & { haproxy: NonNullable<Config['haproxy']> };

export interface AgentOptions {
  config: AgentConfig;
  registry: Registry;
  /** Where results go (etcd key on a lease in production: EtcdAgentStatusStore). */
  status: AgentStatusStore;
  log: Logger;
  /** Default: haproxy.agentId, else derived from the host name. */
  agentId?: string;
  /** Default: loaded from haproxy.template, else the shipped template. */
  template?: ConfigTemplate;
  /** Burst coalescing. Defaults: quiet 5 ms, max wait 100 ms. */
  coalesce?: { quietMs?: number; maxWaitMs?: number };
  /** Backoff while HAProxy is unreachable. Defaults: 200 ms doubling to 5 s. */
  retry?: { minMs?: number; maxMs?: number };
  /** How often to retry deleting a removed server that still has sessions. Default 500 ms. */
  pendingRetryMs?: number;
  /** After this long a removed server's remaining sessions are shut down. Default 60 s. */
  removeGraceMs?: number;
  /** Health-check interval written for every server. Default 2 s. */
  checkInterMs?: number;
  onApply?: (result: ApplyResult) => void;
}

/** A valid agent ID from the host name ("LB-1.example.com" → "lb-1.example.com"). */
export function defaultAgentId(host = hostname()): string {
  const id = host
    .toLowerCase()
    .replace(/[^a-z0-9_.-]/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 63);
  return NAME_RE.test(id) ? id : 'haproxy';
}

export class HaproxyAgent {
  readonly agentId: string;
  readonly runtime: HaproxyRuntime;
  readonly master: HaproxyMaster;
  private readonly log: Logger;
  private readonly snapshot: RegistrySnapshot;
  private readonly coalescer: Coalescer;
  private readonly listeners = new Set<(r: ApplyResult) => void>();
  private converger: Converger | undefined;
  private watch: WatchHandle | undefined;
  private synced = false;
  private started = false;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryMs: number;
  private lastReported: ApplyResult | undefined;
  private reportedOnce = false;
  private last: ApplyResult | undefined;

  constructor(private readonly opts: AgentOptions) {
    const id = opts.agentId ?? opts.config.haproxy.agentId ?? defaultAgentId();
    if (!NAME_RE.test(id)) throw new SwitchyardError('E_CONFIG', `agent id "${id}" must match ${NAME_RE.source}`);
    this.agentId = id;
    this.log = opts.log.child({ component: 'haproxy-agent', agentId: id });
    this.runtime = new HaproxyRuntime(opts.config.haproxy.adminSocket);
    this.master = new HaproxyMaster(opts.config.haproxy.masterSocket);
    this.snapshot = new RegistrySnapshot(new KeyLayout(opts.config.registry.prefix, opts.config.registry.switchyardPrefix));
    this.retryMs = opts.retry?.minMs ?? 200;
    this.coalescer = new Coalescer(() => this.applyNow(), {
      quietMs: opts.coalesce?.quietMs ?? 5,
      maxWaitMs: opts.coalesce?.maxWaitMs ?? 100,
      onError: (err) => this.log.error({ err }, 'apply loop failed'),
    });
    if (opts.onApply) this.listeners.add(opts.onApply);
  }

  /** Subscribe to reported apply results; returns an unsubscribe function. */
  onApply(listener: (r: ApplyResult) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The most recent apply result (reported or not). */
  get lastResult(): ApplyResult | undefined {
    return this.last;
  }

  /** Load the template and start watching; the first apply follows the initial snapshot. */
  async start(): Promise<void> {
    if (this.started) throw new SwitchyardError('E_CONFLICT', 'the agent is already started');
    this.started = true;
    const h = this.opts.config.haproxy;
    const template = this.opts.template ?? (await loadTemplate(h.template));
    const applier = new HaproxyApplier({
      agentId: this.agentId,
      configPath: h.config,
      binary: h.binary,
      runtime: this.runtime,
      master: this.master,
      log: this.opts.log,
      ...(this.opts.removeGraceMs !== undefined ? { removeGraceMs: this.opts.removeGraceMs } : {}),
    });
    this.converger = new Converger({
      agentId: this.agentId,
      haproxy: h,
      services: this.opts.config.services,
      servicesPrefix: this.opts.config.registry.prefix,
      template,
      applier,
      ...(this.opts.checkInterMs !== undefined ? { checkInterMs: this.opts.checkInterMs } : {}),
    });
    // '' = the services and switchyard prefixes through one etcd watch, so both keys of
    // a registration (address + state) arrive in one batch.
    this.watch = await this.opts.registry.watch('', {
      onResync: (kvs, revision, reason) => {
        this.snapshot.reset(kvs, revision);
        this.synced = true;
        this.log.debug({ reason, revision, keys: kvs.length }, 'registry snapshot');
        this.coalescer.poke();
      },
      onEvents: (events: RegistryEvent[], revision) => {
        if (this.snapshot.apply(events, revision)) this.coalescer.poke();
      },
      onError: (err) => this.log.warn({ err }, 'registry watch problem (resuming by itself)'),
    });
    this.log.info({ config: h.config }, 'haproxy agent started');
  }

  /** Stop watching, finish an apply in progress, and withdraw the status key. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const watch = this.watch;
    this.watch = undefined;
    await watch?.close();
    await this.coalescer.stop();
    await this.opts.status.close();
    this.log.info('haproxy agent stopped');
  }

  /**
   * Re-read the template file (after an edit); a changed template is a reload. One that no
   * longer loads is reported by the next apply like a config haproxy -c rejects, and
   * nothing is applied until the file is fixed.
   */
  async refreshTemplate(): Promise<void> {
    const path = this.opts.config.haproxy.template;
    let template: ConfigTemplate;
    try {
      template = await loadTemplate(path);
    } catch (err) {
      if (!isSwitchyardError(err, 'E_CONFIG')) throw err;
      template = unusableTemplate(path ?? DEFAULT_TEMPLATE_PATH, err);
    }
    this.converger?.setTemplate(template);
    this.coalescer.poke();
  }

  /** True once the first registry snapshot is in: before that the agent applies nothing. */
  get hasSnapshot(): boolean {
    return this.synced && this.converger !== undefined;
  }

  /** The loaded template's hash (undefined before start): tells whether the file has changed since. */
  get templateHash(): string | undefined {
    return this.converger?.templateHash;
  }

  /** What the registry would produce now (for `render`, `render --diff`). */
  candidate(): AppliedConfig {
    if (!this.converger || !this.synced) throw new SwitchyardError('E_UNAVAILABLE', NO_SNAPSHOT);
    return this.converger.candidate(this.snapshot.listing());
  }

  /** Live per-server state from HAProxy (for `status`). */
  stats(): Promise<StatRow[]> {
    return this.runtime.showStat();
  }

  /** E_UNAVAILABLE until the first registry snapshot is in. */
  assertSnapshot(): void {
    if (!this.hasSnapshot) throw new SwitchyardError('E_UNAVAILABLE', NO_SNAPSHOT);
  }

  /** Apply now if anything is pending (tests, `render --apply`). */
  poke(): void {
    this.coalescer.poke();
  }

  private async applyNow(): Promise<void> {
    if (!this.synced || !this.converger || this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const outcome = await this.converger.step(this.snapshot.listing());
    this.last = outcome.result;
    this.report(outcome.result);
    if (outcome.retry) {
      const delay = this.retryMs;
      this.retryMs = Math.min(this.opts.retry?.maxMs ?? 5000, this.retryMs * 2);
      this.later(delay);
    } else {
      this.retryMs = this.opts.retry?.minMs ?? 200;
      if (this.converger.hasPending) this.later(this.opts.pendingRetryMs ?? 500);
    }
  }

  private later(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.coalescer.poke();
    }, ms);
  }

  /** Report news only: the first result, any change, any new failure or warning. */
  private report(r: ApplyResult): void {
    if (!this.isNews(r)) return;
    this.reportedOnce = true;
    this.lastReported = r;
    this.log[r.ok ? 'info' : 'warn']({ result: r }, formatApplyResult(r));
    for (const l of this.listeners) {
      try {
        l(r);
      } catch (err) {
        this.log.error({ err }, 'apply listener failed');
      }
    }
    this.opts.status.publish(r).catch((err: unknown) => this.log.warn({ err }, 'could not publish the apply result to etcd'));
  }

  private isNews(r: ApplyResult): boolean {
    if (!this.reportedOnce) return true;
    const prev = this.lastReported;
    const same = (a?: string[], b?: string[]) => JSON.stringify(a ?? []) === JSON.stringify(b ?? []);
    if (!r.ok) return !prev || prev.ok || !same(prev.error, r.error);
    if (prev && !prev.ok) return true; // recovered
    if (r.method !== 'none' && (r.changes.length > 0 || r.method === 'reload')) return true;
    return !!prev && (!same(prev.warnings, r.warnings) || !same(prev.pending, r.pending));
  }
}
