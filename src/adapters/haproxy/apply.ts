/**
 * Apply a plan to the local HAProxy: runtime API when possible, a validated seamless
 * reload otherwise, and the last good config kept (byte-identical) when anything fails.
 */
import { rename } from 'node:fs/promises';
import type { ApplyFailureKind, ApplyMethod, ApplyResult } from '../../core/apply-result.js';
import { SwitchyardError, isSwitchyardError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { describeProblem } from '../../core/quote.js';
import { bindsIn, checkConfig, preflightBinds } from './check.js';
import { readIfExists, removeQuietly, tempPathFor, writeFileAtomic, writeFileDurable } from './files.js';
import type { HaproxyMaster } from './master.js';
import type { HaproxyModel } from './model.js';
import type { AppliedConfig, Plan } from './plan.js';
import { assumedState, reconcile } from './reconcile.js';
import type { HaproxyRuntime } from './runtime.js';
import { executeOps, type OpsOptions } from './runtime-ops.js';

export type { ApplyFailureKind, ApplyMethod, ApplyResult } from '../../core/apply-result.js';

export interface ApplyOutcome {
  result: ApplyResult;
  /** The running HAProxy and the live file now match `next`: the caller's new baseline. */
  committed: boolean;
  /**
   * Worth retrying with backoff without a registry change: HAProxy was unreachable (or
   * something unexpected failed). Also means the caller should not trust its baseline.
   */
  retry: boolean;
}

export interface ApplierOptions {
  agentId: string;
  configPath: string;
  binary: string;
  runtime: HaproxyRuntime;
  master: HaproxyMaster;
  log: Logger;
  /** After this long, sessions still holding a removed server are shut down. Default 60 s. */
  removeGraceMs?: number;
  /** Budget for the new worker to take over the admin socket after a reload. Default 5 s. */
  takeoverTimeoutMs?: number;
  now?: () => Date;
}

type FinishFields = Partial<Pick<ApplyResult, 'changes' | 'error' | 'pending' | 'reasons' | 'worker' | 'failure'>> & { extraWarnings?: string[] };
type Finish = (method: ApplyMethod, ok: boolean, fields: FinishFields) => ApplyResult;

class ApplyFailure extends Error {
  constructor(
    readonly lines: string[],
    readonly kind: ApplyFailureKind,
  ) {
    super(lines[0] ?? 'apply failed');
  }
}

function linesOf(err: unknown): string[] {
  if (err instanceof ApplyFailure) return err.lines;
  if (isSwitchyardError(err)) return [err.message, ...err.details];
  return [err instanceof Error ? err.message : String(err)];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class HaproxyApplier {
  private readonly pendingSince = new Map<string, number>();
  private readonly log: Logger;

  constructor(private readonly opts: ApplierOptions) {
    this.log = opts.log.child({ component: 'haproxy-apply', agentId: opts.agentId });
  }

  /** Servers whose deletion is waiting for sessions: the caller re-applies until this is empty. */
  get hasPending(): boolean {
    return this.pendingSince.size > 0;
  }

  readLive(): Promise<string | undefined> {
    return readIfExists(this.opts.configPath);
  }

  /**
   * @param baseline what the caller believes is live (its last committed config); when
   *   given, runtime commands are sent before HAProxy's state is read, and the read then
   *   confirms them.
   */
  async apply(plan: Plan, next: AppliedConfig, baseline?: AppliedConfig): Promise<ApplyOutcome> {
    const started = performance.now();
    const warnings = next.model.problems.map((p) => `skipped ${describeProblem(p)}`);
    const finish: Finish = (method, ok, fields) => {
      const w = [...warnings, ...(fields.extraWarnings ?? [])];
      return {
        agentId: this.opts.agentId,
        method,
        ok,
        durationMs: Math.round((performance.now() - started) * 10) / 10,
        changes: fields.changes ?? plan.changes,
        ...(fields.error?.length ? { error: fields.error } : {}),
        ...(w.length ? { warnings: w } : {}),
        ...(fields.pending?.length ? { pending: fields.pending } : {}),
        ...(fields.reasons?.length ? { reasons: fields.reasons } : {}),
        ...(fields.worker !== undefined ? { worker: fields.worker } : {}),
        ...(fields.failure ? { failure: fields.failure } : {}),
        at: (this.opts.now ?? (() => new Date()))().toISOString(),
      };
    };

    if (plan.method === 'none' && !this.hasPending) {
      return { result: finish('none', true, {}), committed: true, retry: false };
    }
    if (plan.method === 'none' || plan.method === 'runtime') {
      try {
        const rt = await this.runtimePath(next, baseline);
        if (rt.kind === 'done') {
          const method: ApplyMethod = rt.touched ? 'runtime' : 'none';
          const changes = plan.changes.length > 0 ? plan.changes : rt.changes;
          return { result: finish(method, true, { changes, pending: rt.pending }), committed: true, retry: false };
        }
        // The runtime API cannot do it (or refused part of it): a reload can.
        this.log.info({ why: rt.why }, 'falling back to a reload');
        return this.reloadAndReport(next, finish, rt.why, rt.errors);
      } catch (err) {
        if (isSwitchyardError(err, 'E_UNAVAILABLE')) return this.whileDown('runtime', next, finish, err, []);
        this.log.warn({ err }, 'runtime apply failed');
        // HAProxy answered in a way we did not expect: take a fresh look later rather than
        // waiting for the next registry change.
        return { result: finish('runtime', false, { error: linesOf(err), failure: 'runtime' }), committed: false, retry: true };
      }
    }
    return this.reloadAndReport(next, finish, plan.reasons, []);
  }

  private async reloadAndReport(next: AppliedConfig, finish: Finish, reasons: string[], priorErrors: string[]): Promise<ApplyOutcome> {
    try {
      const r = await this.reloadPath(next);
      return {
        result: finish('reload', true, { reasons, worker: r.worker, pending: r.pending, extraWarnings: [...priorErrors, ...r.warnings] }),
        committed: true,
        retry: false,
      };
    } catch (err) {
      const kind: ApplyFailureKind = err instanceof ApplyFailure ? err.kind : isSwitchyardError(err, 'E_UNAVAILABLE') ? 'unavailable' : 'reload';
      if (kind === 'unavailable') return this.whileDown('reload', next, finish, err, reasons);
      this.log.warn({ err, reasons }, 'reload failed; kept the last good config');
      return {
        result: finish('reload', false, { reasons, error: [...linesOf(err), ...priorErrors], failure: kind }),
        committed: false,
        // A rejected config stays rejected until the registry or template changes; a
        // failing HAProxy may recover by itself.
        retry: kind === 'reload' || kind === 'runtime',
      };
    }
  }

  /**
   * HAProxy did not answer. The validated config goes on disk all the same, so HAProxy
   * starts from it (first boot, or a restart after an outage); the caller retries with
   * backoff, and once HAProxy answers the runtime API puts right what the file cannot say.
   */
  private async whileDown(method: ApplyMethod, next: AppliedConfig, finish: Finish, cause: unknown, reasons: string[]): Promise<ApplyOutcome> {
    const { configPath } = this.opts;
    const [reason = 'HAProxy did not answer', ...more] = linesOf(cause);
    const waiting = [`waiting for HAProxy: ${reason}`, ...more];
    const failed = (error: string[], failure: ApplyFailureKind, retry: boolean): ApplyOutcome => ({
      result: finish(method, false, { reasons, error, failure }),
      committed: false,
      retry,
    });
    try {
      const live = await this.readLive();
      if (live !== next.rendered) {
        const tmp = await this.stage(next.rendered, live);
        try {
          await rename(tmp, configPath);
        } catch (err) {
          await removeQuietly(tmp);
          throw err;
        }
        this.log.info({ configPath, reason }, 'HAProxy did not answer: wrote the validated config for it to start from');
      }
    } catch (err) {
      // Rejected: nothing was written, and nothing will change until the registry or the template does.
      if (err instanceof ApplyFailure) return failed([...err.lines, ...waiting], err.kind, false);
      // haproxy -c could not run (binary missing, timed out): not validated, so not written.
      if (isSwitchyardError(err)) return failed([...linesOf(err), ...waiting], 'check', true);
      this.log.error({ err, configPath }, 'could not write the validated haproxy config');
      const code = (err as NodeJS.ErrnoException).code;
      return failed([`cannot write ${configPath}: ${code ?? (err instanceof Error ? err.message : String(err))}`, ...waiting], 'write', true);
    }
    this.log.warn({ reason }, 'waiting for HAProxy');
    return failed([...waiting, `${configPath} holds the validated config for HAProxy to start from`], 'unavailable', true);
  }

  /**
   * Write `text` to a temp file beside the live one and validate it: `haproxy -c`, and the
   * listeners it adds can be bound. Returns the temp path for the caller to rename into
   * place; on a refusal (ApplyFailure 'check') the temp file is already gone.
   */
  private async stage(text: string, previous: string | undefined): Promise<string> {
    const { configPath } = this.opts;
    const tmp = tempPathFor(configPath);
    try {
      await writeFileDurable(tmp, text);
      const check = await checkConfig(this.opts.binary, tmp, configPath);
      if (!check.ok) throw new ApplyFailure(['haproxy -c rejected the new config:', ...check.lines], 'check');
      const held = bindsIn(previous);
      const binds = await preflightBinds([...bindsIn(text)].filter((b) => !held.has(b)));
      if (binds.length > 0) throw new ApplyFailure(['the new config cannot start:', ...binds], 'check');
      return tmp;
    } catch (err) {
      await removeQuietly(tmp);
      throw err;
    }
  }

  private async runtimePath(
    next: AppliedConfig,
    baseline: AppliedConfig | undefined,
  ): Promise<{ kind: 'done'; touched: boolean; changes: string[]; pending: string[] } | { kind: 'reload'; why: string[]; errors: string[] }> {
    const { runtime } = this.opts;
    const early = baseline && !this.hasPending ? await this.sendAssumed(baseline, next) : { ops: 0, changes: [] };
    // HAProxy's own state decides: after a trusted pass this usually finds nothing to do;
    // when the baseline was wrong (HAProxy restarted, an operator's hand on the socket),
    // it finds the difference and closes it.
    const [backends, rows] = await Promise.all([runtime.showBackends(), runtime.showServersState()]);
    const rec = reconcile(next.model, rows, backends);
    if (rec.needsReload.length > 0) return { kind: 'reload', why: rec.needsReload, errors: [] };
    const out = rec.ops.length ? await executeOps(runtime, rec.ops, this.opsOptions(next.model)) : { errors: [], pending: [] };
    if (out.errors.length > 0) return { kind: 'reload', why: ['a runtime command failed'], errors: out.errors };
    // The running process is right; now make a restart start the same way.
    const live = await this.readLive();
    const fileChanged = live !== next.rendered;
    if (fileChanged) await writeFileAtomic(this.opts.configPath, next.rendered);
    return {
      kind: 'done',
      touched: early.ops + rec.ops.length > 0 || fileChanged,
      changes: [...early.changes, ...rec.changes],
      pending: out.pending,
    };
  }

  /**
   * The commands that take HAProxy from `baseline` to `next`, sent without reading its state
   * first: this is what puts a new server in rotation within milliseconds of the registry
   * write. Every command is absolute (add, del, set state/weight/addr), so a wrong baseline
   * costs a refused command or a no-op, never a wrong state; the caller's read fixes either.
   */
  private async sendAssumed(baseline: AppliedConfig, next: AppliedConfig): Promise<{ ops: number; changes: string[] }> {
    const assumed = assumedState(baseline.model);
    const rec = reconcile(next.model, assumed.rows, assumed.backends);
    if (rec.ops.length === 0 || rec.needsReload.length > 0) return { ops: 0, changes: [] };
    const out = await executeOps(this.opts.runtime, rec.ops, this.opsOptions(next.model));
    if (out.errors.length === 0) return { ops: rec.ops.length, changes: rec.changes };
    // A refused command means HAProxy was not where the baseline said: the confirming read
    // finds (and reports) what is really different.
    this.log.debug({ errors: out.errors }, 'HAProxy was not where the baseline said');
    return { ops: rec.ops.length, changes: [] };
  }

  private opsOptions(model: HaproxyModel): OpsOptions {
    return { checkInterMs: model.global.checkInterMs, removeGraceMs: this.opts.removeGraceMs ?? 60_000, pendingSince: this.pendingSince };
  }

  private async reloadPath(next: AppliedConfig): Promise<{ worker: number; warnings: string[]; pending: string[] }> {
    const { configPath, runtime, master } = this.opts;
    let renamed = false;
    const previous = await this.readLive();
    const tmp = await this.stage(next.rendered, previous);
    let worker: number;
    try {
      // Fails fast (and leaves everything as it was) when HAProxy is down.
      const state = await runtime.dumpServersState();
      await writeFileAtomic(next.model.global.stateFile, state);
      await rename(tmp, configPath);
      renamed = true;
      const outcome = await master.reload().catch((err: unknown) => {
        // 2.6 keeps the reason in the master's log only.
        throw isSwitchyardError(err, 'E_CONFLICT')
          ? new ApplyFailure([err.message, "the reason is in HAProxy's own log (the master's stderr / journal)"], 'reload')
          : err;
      });
      this.log.info({ worker: outcome.worker, ms: outcome.durationMs }, 'haproxy reloaded');
      worker = outcome.worker;
    } catch (err) {
      if (renamed) await this.restore(previous);
      else await removeQuietly(tmp);
      if (err instanceof ApplyFailure) throw err;
      throw new ApplyFailure(linesOf(err), isSwitchyardError(err, 'E_UNAVAILABLE') ? 'unavailable' : 'reload');
    }
    // The new config is live from here on: whatever fails now must not put the old file
    // back under a process running the new one; the next pass reconciles instead.
    try {
      await this.waitForTakeover(worker);
      // The state file restores drain/maint/weight, but it can disagree with the model
      // (it predates this change): put the live process exactly where the model says.
      const fix = await this.reconcileAfterReload(next.model);
      return { worker, ...fix };
    } catch (err) {
      throw new ApplyFailure([`reloaded (worker ${worker}), but adjusting its runtime state failed:`, ...linesOf(err)], 'runtime');
    }
  }

  /** Put the last good config back, byte for byte. */
  private async restore(previous: string | undefined): Promise<void> {
    try {
      if (previous === undefined) await removeQuietly(this.opts.configPath);
      else await writeFileAtomic(this.opts.configPath, previous);
    } catch (err) {
      this.log.error({ err }, 'could not restore the last good haproxy config');
    }
  }

  /** The admin socket is answered by the old worker for a moment after a reload. */
  private async waitForTakeover(worker: number): Promise<void> {
    const deadline = Date.now() + (this.opts.takeoverTimeoutMs ?? 5000);
    for (;;) {
      try {
        if ((await this.opts.runtime.workerPid()) === worker) return;
      } catch (err) {
        if (!isSwitchyardError(err, 'E_UNAVAILABLE')) throw err;
      }
      if (Date.now() >= deadline) {
        throw new SwitchyardError('E_TIMEOUT', `the new HAProxy worker ${worker} did not take over the admin socket`);
      }
      await sleep(5);
    }
  }

  private async reconcileAfterReload(model: HaproxyModel): Promise<{ warnings: string[]; pending: string[] }> {
    const { runtime } = this.opts;
    const [backends, rows] = await Promise.all([runtime.showBackends(), runtime.showServersState()]);
    const rec = reconcile(model, rows, backends);
    // Still missing after a reload means the template does not render it: nothing a
    // second reload would change.
    const warnings = rec.needsReload.map((w) => `after reload: ${w}`);
    if (rec.ops.length === 0) return { warnings, pending: [] };
    this.log.info({ changes: rec.changes }, 'adjusting runtime state after reload');
    const out = await executeOps(runtime, rec.ops, this.opsOptions(model));
    return { warnings: [...warnings, ...out.errors.map((e) => `after reload: ${e}`)], pending: out.pending };
  }
}

/** The live config text, undefined when there is none yet (for `render --diff`). */
export function readLiveConfig(path: string): Promise<string | undefined> {
  return readIfExists(path);
}
