/**
 * Words for a container death: "exit 137, OOM", "exit 137, SIGKILL", "exit 1". Built from
 * the die event's exit code, the oom/kill events before it and, when it can still be
 * inspected, the container's own state.
 */
export interface DeathFacts {
  exitCode: number | undefined;
  oom: boolean;
  /** The last signal a `kill` event reported ("9", "SIGKILL", "KILL"). */
  signal: string | undefined;
}

const SIGNALS: Record<string, string> = { '1': 'SIGHUP', '2': 'SIGINT', '6': 'SIGABRT', '9': 'SIGKILL', '15': 'SIGTERM' };

export function signalName(raw: string): string {
  if (SIGNALS[raw]) return SIGNALS[raw];
  return /^SIG/i.test(raw) ? raw.toUpperCase() : /^[A-Za-z]+$/.test(raw) ? `SIG${raw.toUpperCase()}` : `signal ${raw}`;
}

export function deathReason(f: DeathFacts): string {
  const parts = [f.exitCode === undefined ? 'exit code unknown' : `exit ${f.exitCode}`];
  if (f.oom) parts.push('OOM');
  else if (f.signal !== undefined) parts.push(signalName(f.signal));
  return `container died (${parts.join(', ')})`;
}

/** Delay before replacing an instance that died after `livedMs`: only crash loops wait. */
export function restartDelayMs(restarts: number, livedMs: number | undefined): number {
  if (livedMs !== undefined && livedMs >= 10_000) return 0;
  if (restarts <= 1) return 0;
  return Math.min(30_000, 500 * 2 ** (restarts - 2));
}
