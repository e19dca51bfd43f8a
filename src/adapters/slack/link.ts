/**
 * Whether the bot can use Slack right now, for /healthz and the logs: down since when and
 * why, or up. Also the one place that turns Web API failures into a short line naming the
 * cause, because the client's own message for a dead network is only "fetch failed" or
 * "connect ECONNREFUSED" without saying what was being called.
 */
import { webApi } from '@slack/bolt';

export type LinkStatus = { ok: true } | { ok: false; since: number; reason: string };

export class SlackLink {
  private status: LinkStatus;

  constructor(private readonly now: () => number = Date.now) {
    this.status = { ok: false, since: now(), reason: 'connecting' };
  }

  get ok(): boolean {
    return this.status.ok;
  }

  /** Keeps the first `since` across repeated failures: "unreachable since" means since when. */
  down(reason: string): void {
    this.status = { ok: false, since: this.status.ok ? this.now() : this.status.since, reason };
  }

  up(): void {
    this.status = { ok: true };
  }

  /** The `slack` line of /healthz. */
  describe(): string {
    const s = this.status;
    return s.ok
      ? 'ok'
      : `${s.reason === 'connecting' ? 'connecting' : 'unreachable'} since ${new Date(s.since).toISOString()}${s.reason === 'connecting' ? '' : `: ${s.reason}`}`;
  }
}

/** Web API errors that waiting will not fix: the token itself is refused. */
const TOKEN_REFUSED = new Set(['invalid_auth', 'not_authed', 'account_inactive', 'token_revoked', 'token_expired', 'not_allowed_token_type', 'missing_scope']);

export interface SlackFailure {
  /** One line, e.g. `auth.test at https://slack.com/api/: connect ECONNREFUSED 10.0.0.1:443`. */
  text: string;
  /** The token was refused: retrying cannot help until it is replaced. */
  tokenRefused: boolean;
}

export function describeSlackFailure(err: unknown, method: string, apiUrl: string): SlackFailure {
  const where = `${method} at ${apiUrl}`;
  const e = err as { code?: unknown; data?: { error?: unknown }; original?: unknown; statusCode?: unknown; message?: unknown } | null;
  switch (e?.code) {
    case webApi.ErrorCode.PlatformError: {
      const code = String(e.data?.error ?? 'unknown_error');
      return { text: `${where}: Slack answered ${code}`, tokenRefused: TOKEN_REFUSED.has(code) };
    }
    case webApi.ErrorCode.HTTPError:
      return { text: `${where}: HTTP ${String(e.statusCode)}`, tokenRefused: false };
    case webApi.ErrorCode.RateLimitedError:
      return { text: `${where}: rate limited`, tokenRefused: false };
    case webApi.ErrorCode.RequestError:
      return { text: `${where}: ${networkCause(e.original)}`, tokenRefused: false };
    default:
      return { text: `${where}: ${networkCause(err)}`, tokenRefused: false };
  }
}

/** fetch/axios wrap the socket error (the useful part) in `cause`. */
function networkCause(err: unknown): string {
  let cur: unknown = err;
  const parts: string[] = [];
  for (let depth = 0; depth < 4 && cur instanceof Error; depth++) {
    const code = (cur as { code?: unknown }).code;
    parts.push(typeof code === 'string' && !cur.message.includes(code) ? `${cur.message} (${code})` : cur.message);
    cur = cur.cause;
  }
  const line = parts.filter((p) => p !== '').at(-1) ?? String(err);
  return line.length > 200 ? `${line.slice(0, 199)}…` : line;
}
