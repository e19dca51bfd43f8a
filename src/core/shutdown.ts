/**
 * How long-running commands (`serve`, `agent`, `shell`) stop: within 5 s of SIGTERM or
 * SIGINT, because a container runtime or systemd kills what is still there after its grace
 * period, and a process killed mid-shutdown leaves its election, locks and leases to expire
 * by TTL instead of passing them on at once.
 */
import type { Logger } from './log.js';

export type StopSignal = 'SIGINT' | 'SIGTERM';

/**
 * What a shutdown may spend waiting on I/O (resigning, revoking leases in etcd): ends
 * before the safety net (see shutDown) so that a store that does not answer costs a
 * warning, not a forced exit.
 */
export const SHUTDOWN_IO_MS = 3000;

/** The conventional status of a process ended by `signal` (130, 143). */
export function signalExitCode(signal: StopSignal): number {
  return 128 + (signal === 'SIGINT' ? 2 : 15);
}

/**
 * Resolves with the first SIGINT or SIGTERM. A second one while shutting down ends the
 * process at once: whoever sends it has stopped waiting. `cancel` (e.g. a shell that
 * reached EOF) puts the default signal handling back; the promise then never settles.
 */
export function stopSignal(log: Logger, cancel?: AbortSignal): Promise<StopSignal> {
  return new Promise((resolve) => {
    const onInt = () => first('SIGINT');
    const onTerm = () => first('SIGTERM');
    const uninstall = () => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    };
    const first = (signal: StopSignal) => {
      uninstall();
      cancel?.removeEventListener('abort', uninstall);
      const again = (s: StopSignal) => {
        log.warn({ signal: s }, 'second signal: exiting without finishing the shutdown');
        process.exit(signalExitCode(s));
      };
      process.once('SIGINT', () => again('SIGINT'));
      process.once('SIGTERM', () => again('SIGTERM'));
      log.info({ signal }, 'shutting down');
      resolve(signal);
    };
    if (cancel?.aborted) return;
    process.once('SIGINT', onInt);
    process.once('SIGTERM', onTerm);
    cancel?.addEventListener('abort', uninstall, { once: true });
  });
}

/** `p`, or undefined once `ms` have passed; the timer does not outlive the race. */
export async function settledWithin<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** A part of the process to stop, in order; `undefined` when that part is not running. */
export type ShutdownStep = readonly [name: string, stop: (() => unknown) | undefined];

export interface ShutdownOptions {
  /**
   * Past this (from the call), what has not stopped is logged and the process exits 1.
   * Default 4500 ms: inside the 5 s promise, with time to write the log line.
   */
  graceMs?: number;
  /**
   * Once every step is done the process should end by itself; if it has not after this
   * long (work abandoned mid-way, such as a command still waiting on Docker, holds it
   * open), it is ended with the status the command returned. Default 500 ms, never past
   * the grace period.
   */
  lingerMs?: number;
  /** Runs the steps, e.g. within an etcd deadline that ends before the grace period does. */
  scope?: <T>(fn: () => Promise<T>) => Promise<T>;
  /** Test seam for process.exit. */
  exit?: (code: number) => void;
}

/**
 * Stop `steps` one after another. A step that fails is logged and the next one still runs
 * (a Slack receiver that would not close must not keep the leases from being revoked).
 * Resolves true when every step stopped cleanly.
 */
export async function shutDown(log: Logger, steps: readonly ShutdownStep[], opts: ShutdownOptions = {}): Promise<boolean> {
  const graceMs = opts.graceMs ?? 4500;
  const began = Date.now();
  const deadline = began + graceMs;
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const pending = new Set(steps.filter(([, stop]) => stop).map(([name]) => name));
  // Unref'd, like the linger timer below: they never keep the process alive, they only
  // fire if something else does.
  const safetyNet = setTimeout(() => {
    log.error({ pending: [...pending], resources: resources() }, `shutdown did not finish within ${graceMs} ms; exiting`);
    exit(1);
  }, graceMs);
  safetyNet.unref();
  const run = async () => {
    const failed: string[] = [];
    for (const [name, stop] of steps) {
      if (!stop) continue;
      const started = Date.now();
      try {
        await stop();
        log.debug({ step: name, ms: Date.now() - started }, 'stopped');
      } catch (err) {
        failed.push(name);
        log.warn({ err, step: name }, 'could not stop cleanly');
      } finally {
        pending.delete(name);
      }
    }
    // The line that says every step ran, so a step that gave up is seen not to have held up the rest.
    log.info({ ms: Date.now() - began, ...(failed.length ? { failed } : {}) }, failed.length ? 'shut down; not every part stopped cleanly' : 'shut down');
    return failed.length === 0;
  };
  try {
    return await (opts.scope ? opts.scope(run) : run());
  } finally {
    clearTimeout(safetyNet);
    const linger = setTimeout(
      () => {
        log.debug({ resources: resources() }, 'shut down; ending the process, which something still holds open');
        exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
      },
      Math.max(0, Math.min(opts.lingerMs ?? 500, deadline - Date.now())),
    );
    linger.unref();
  }
}

function resources(): string[] {
  return process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
}
