/**
 * etcd3/gRPC failures → coded SwitchyardErrors. The message names the endpoint(s) and says
 * what was being done, in one line; the raw gRPC error (and its stack) stays in `cause`
 * for the logs and never reaches a user.
 */
import {
  castGrpcError,
  ClientClosedError,
  EtcdAuthenticationFailedError,
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  EtcdWatchStreamEnded,
  GRPCDeadlineExceededError,
  GRPCUnauthenticatedError,
  isRecoverableError,
} from 'etcd3';
import { isSwitchyardError, SwitchyardError } from '../../core/errors.js';
import { formatDuration } from '../../core/names.js';
import { EtcdDeadlineError } from './deadline.js';

const SOCKET_ERRORS = /\b(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|EPIPE)\b/;
/**
 * TLS handshake failures, which gRPC reports as "No connection established" like a dead
 * endpoint: named, with the setting to look at, so a wrong CA does not read as an outage.
 */
const TLS_SERVER_UNTRUSTED =
  /(unable to verify the first certificate|self[- ]signed certificate(?: in certificate chain)?|unable to get local issuer certificate|certificate has expired|Hostname\/IP does not match certificate's altnames)/i;
const TLS_CLIENT_REFUSED = /alert (bad certificate|bad cert|certificate required|unknown ca|certificate expired)/i;

/** A short, stack-free description of an etcd3 error, for messages and health output. */
export function describeEtcdError(raw: unknown): string {
  const err = typed(raw);
  if (err instanceof EtcdDeadlineError) {
    const last = err.last === undefined || err.last instanceof GRPCDeadlineExceededError ? '' : ` (${describeEtcdError(err.last)})`;
    return `no answer within ${formatDuration(err.timeoutMs)}${last}`;
  }
  if (err instanceof EtcdWatchStreamEnded) return 'the watch stream ended';
  if (err instanceof GRPCDeadlineExceededError) return 'no answer before the deadline';
  if (err instanceof ClientClosedError) return 'client closed';
  if (err instanceof EtcdPermissionDeniedError) return 'permission denied';
  if (err instanceof EtcdAuthenticationFailedError || err instanceof GRPCUnauthenticatedError) return 'authentication failed';
  const message = err instanceof Error ? err.message : String(err);
  const untrusted = TLS_SERVER_UNTRUSTED.exec(message);
  if (untrusted) return `TLS handshake failed: ${untrusted[1]} (is etcd.tls.ca the CA that signed etcd's certificate?)`;
  const refused = TLS_CLIENT_REFUSED.exec(message);
  if (refused) return `TLS handshake failed: etcd refused the client certificate (${refused[1]}; check etcd.tls.cert and etcd.tls.key)`;
  // The socket error is the useful part of gRPC's "14 UNAVAILABLE: No connection
  // established. Last error: Error: connect ECONNREFUSED …" — shown, not branched on.
  const socket = SOCKET_ERRORS.exec(message);
  if (socket) return `unreachable (${socket[1]})`;
  // "14 UNAVAILABLE: Connection dropped" → "Connection dropped"
  const line = (message.split('\n', 1)[0] ?? '').replace(/^\d+ [A-Z_]+: /, '').trim();
  if (!line) return isRecoverable(err) ? 'unavailable' : 'unknown error';
  return line.length > 120 ? `${line.slice(0, 120)}…` : line;
}

/**
 * etcd3 types the errors of unary calls, but hands stream errors (watch 'disconnected')
 * over as plain gRPC errors; give those the same classes.
 */
function typed(err: unknown): unknown {
  return err instanceof Error ? castGrpcError(err) : err;
}

function isRecoverable(err: unknown): boolean {
  return typeof err === 'object' && err !== null && isRecoverableError(err as Error);
}

/**
 * Wrap a failure of `action` (e.g. "registering web/a"). Connection-level failures become
 * E_UNAVAILABLE (retrying later may help); everything else E_REGISTRY.
 */
/** Runs one etcd call; whatever it throws comes back as the registry error for `action`. */
export async function registryCall<T>(endpoints: readonly string[], action: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toRegistryError(err, endpoints, action);
  }
}

export function toRegistryError(raw: unknown, endpoints: readonly string[], action: string): SwitchyardError {
  if (isSwitchyardError(raw)) return raw;
  const err = typed(raw);
  if (err instanceof EtcdDeadlineError) {
    // Each endpoint once, in the order tried; the configured list if no attempt got that far.
    const tried = err.tried.length > 0 ? [...new Set(err.tried)] : endpoints;
    // Only deadlines ran out: "did not answer" has said it all.
    const last = err.last === undefined || err.last instanceof GRPCDeadlineExceededError ? '' : `; last error: ${describeEtcdError(err.last)}`;
    return new SwitchyardError(
      'E_UNAVAILABLE',
      `etcd did not answer within ${formatDuration(err.timeoutMs)} while ${action} (tried ${tried.join(', ')}${last})`,
      { cause: err },
    );
  }
  const where = `etcd (${endpoints.join(', ')})`;
  const what = describeEtcdError(err);
  if (isRecoverable(err) || err instanceof ClientClosedError || err instanceof EtcdWatchStreamEnded) {
    return new SwitchyardError('E_UNAVAILABLE', `${where} is unavailable while ${action}: ${what}`, { cause: err });
  }
  if (err instanceof EtcdLeaseInvalidError) {
    return new SwitchyardError('E_REGISTRY', `${where}: the lease expired while ${action}`, { cause: err });
  }
  return new SwitchyardError('E_REGISTRY', `${where} refused ${action}: ${what}`, { cause: err });
}
