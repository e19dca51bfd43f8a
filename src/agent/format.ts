/** One-line #ops feed text for an apply result (plain text; the Slack sink escapes it). */
import type { ApplyResult } from '../core/apply-result.js';

const MAX_CHANGES = 12;
const MAX_LINES = 6;

function ms(n: number): string {
  return n < 10 ? `${n.toFixed(1).replace(/\.0$/, '')} ms` : `${Math.round(n)} ms`;
}

function list(changes: string[]): string {
  // "−" (U+2212) reads as a minus sign in the feed, not a hyphen glued to the name.
  const shown = changes.slice(0, MAX_CHANGES).map((c) => (c.startsWith('-') ? `−${c.slice(1)}` : c));
  const more = changes.length - shown.length;
  return more > 0 ? `${shown.join(' ')} (+${more} more)` : shown.join(' ');
}

function lines(xs: string[] | undefined): string {
  const l = (xs ?? []).slice(0, MAX_LINES);
  const more = (xs?.length ?? 0) - l.length;
  return l.join(' | ') + (more > 0 ? ` | … ${more} more` : '');
}

/**
 * "haproxy lb-1: runtime +web-4 −web-2 in 3 ms"
 * "haproxy lb-1: reload OK in 61 ms (+backend api)"
 * "haproxy lb-1: check FAILED: [ALERT] … — kept last good config"
 * "haproxy lb-1: waiting for HAProxy: … | /etc/haproxy/haproxy.cfg holds the validated config … — will retry"
 */
export function formatApplyResult(r: ApplyResult): string {
  const who = `haproxy ${r.agentId}`;
  const extra: string[] = [];
  if (r.pending?.length) extra.push(`waiting for sessions to end on ${r.pending.join(', ')}`);
  if (r.warnings?.length) extra.push(`warnings: ${lines(r.warnings)}`);
  const tail = extra.length ? ` — ${extra.join('; ')}` : '';
  if (!r.ok) {
    const err = lines(r.error);
    // The error lines say "waiting for HAProxy: <why>" and that the validated file is on disk.
    if (r.failure === 'unavailable') return `${who}: ${err} — will retry${tail}`;
    const what =
      r.failure === 'check' || r.failure === 'render' || r.failure === 'write'
        ? r.failure
        : r.failure === 'internal'
          ? 'apply'
          : r.method === 'runtime'
            ? 'runtime apply'
            : 'reload';
    return `${who}: ${what} FAILED: ${err} — kept last good config${tail}`;
  }
  if (r.method === 'none') return `${who}: no change${tail}`;
  const changes = r.changes.length ? list(r.changes) : '';
  if (r.method === 'runtime') return `${who}: runtime ${changes || 'state adjusted'} in ${ms(r.durationMs)}${tail}`;
  const why = changes || (r.reasons ?? []).join('; ');
  return `${who}: reload OK in ${ms(r.durationMs)}${why ? ` (${why})` : ''}${tail}`;
}
