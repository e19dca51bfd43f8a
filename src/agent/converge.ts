/**
 * One convergence step: registry listing → model → rendered config → plan against what is
 * live → apply. Keeps the baseline (the last config known to be live) between steps.
 */
import type { Config, ServiceConfig } from '../config/schema.js';
import { isSwitchyardError } from '../core/errors.js';
import type { Listing } from '../core/registry.js';
import type { ApplyFailureKind, ApplyOutcome, ApplyResult, HaproxyApplier } from '../adapters/haproxy/apply.js';
import { buildModel } from '../adapters/haproxy/model.js';
import { planApply, type AppliedConfig } from '../adapters/haproxy/plan.js';
import { renderConfig, type ConfigTemplate } from '../adapters/haproxy/template.js';

export interface ConvergerOptions {
  agentId: string;
  haproxy: NonNullable<Config['haproxy']>;
  services: Record<string, ServiceConfig>;
  servicesPrefix: string;
  template: ConfigTemplate;
  applier: HaproxyApplier;
  checkInterMs?: number;
  stateFile?: string;
}

export class Converger {
  /** What is live; undefined until the first successful apply (or after HAProxy was lost). */
  private baseline: AppliedConfig | undefined;
  private template: ConfigTemplate;

  constructor(private readonly opts: ConvergerOptions) {
    this.template = opts.template;
  }

  /** Forget what is live: the next step compares with the file and HAProxy's runtime state. */
  reset(): void {
    this.baseline = undefined;
  }

  setTemplate(template: ConfigTemplate): void {
    this.template = template;
  }

  /** Identifies the template in use (a template file that no longer loads has one too). */
  get templateHash(): string {
    return this.template.hash;
  }

  get hasPending(): boolean {
    return this.opts.applier.hasPending;
  }

  /** Render what the registry wants (for `render`/`render --diff`), without applying. */
  candidate(listing: Listing): AppliedConfig {
    const model = buildModel(
      listing,
      { services: this.opts.services, haproxy: this.opts.haproxy },
      {
        servicesPrefix: this.opts.servicesPrefix,
        ...(this.opts.checkInterMs !== undefined ? { checkInterMs: this.opts.checkInterMs } : {}),
        ...(this.opts.stateFile !== undefined ? { stateFile: this.opts.stateFile } : {}),
      },
    );
    return { model, templateHash: this.template.hash, rendered: renderConfig(model, this.template) };
  }

  async step(listing: Listing): Promise<ApplyOutcome> {
    const started = performance.now();
    let next: AppliedConfig;
    try {
      next = this.candidate(listing);
    } catch (err) {
      // A template that fails to render (or an unusable path) changes nothing; it stays
      // broken until the template or the registry changes.
      return { result: this.failure(started, err, 'render'), committed: false, retry: false };
    }
    let outcome: ApplyOutcome;
    try {
      const live = this.baseline ? undefined : await this.opts.applier.readLive();
      outcome = await this.opts.applier.apply(planApply(this.baseline, next, live), next, this.baseline);
    } catch (err) {
      // The applier reports HAProxy's failures itself; this is anything else (a file
      // that cannot be read, a bug): report it and try again later.
      outcome = { result: this.failure(started, err, 'internal'), committed: false, retry: true };
    }
    if (outcome.committed) this.baseline = next;
    // HAProxy may come back restarted from its file, with none of our runtime changes:
    // start from scratch rather than trust the old baseline.
    else if (outcome.retry) this.baseline = undefined;
    return outcome;
  }

  private failure(started: number, err: unknown, failure: ApplyFailureKind): ApplyResult {
    const error = isSwitchyardError(err) ? [err.message, ...err.details.slice(1)] : [String(err)];
    return {
      agentId: this.opts.agentId,
      method: 'none',
      ok: false,
      durationMs: Math.round((performance.now() - started) * 10) / 10,
      changes: [],
      error,
      failure,
      at: new Date().toISOString(),
    };
  }
}
