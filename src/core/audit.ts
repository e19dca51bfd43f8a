import type { Logger } from 'pino';
import type { Caller } from './caller.js';

/**
 * `confirmation_needed`: refused until confirmed (--yes or a button); `approval_needed`:
 * recorded for others to approve; `expired`: an approval request nobody decided in time.
 * Nothing was changed by any of the three.
 */
export type AuditResult = 'ok' | 'error' | 'denied' | 'invalid' | 'confirmation_needed' | 'approval_needed' | 'expired';

/** One record per command, whatever happened to it: who, where, what, arguments, result, duration. */
export interface AuditRecord {
  requestId: string;
  user: string;
  channel: string;
  source: Caller['source'];
  /** The command name, or the first word when it was not a known command. */
  command: string;
  /** Validated arguments, or the raw words when validation failed. */
  args: unknown;
  result: AuditResult;
  code?: string;
  durationMs: number;
  /** A command run on approval: who approved it. */
  approvedBy?: readonly string[];
  /** Records about an approval request: its id, and for presses the vote and what it did. */
  approval?: { id: string; vote?: string; outcome: string; approvers?: readonly string[] };
}

export interface AuditSink {
  record(rec: AuditRecord): void;
}

/**
 * The default sink: a structured log line that log shippers can pick out by `audit: true`.
 * Its level is pinned to info so LOG_LEVEL=warn quietens the bot but never the audit trail.
 */
export function logAudit(log: Logger): AuditSink {
  const audit = log.child({ component: 'audit' }, { level: 'info' });
  return { record: (rec) => audit.info({ audit: true, ...rec }, `audit ${rec.command} ${rec.result}`) };
}
