/**
 * The one catalogue of coded errors (fastify-style). Callers branch on `code`, never on
 * message text; the message is for humans and may change.
 */
export const ERRORS = {
  E_PARSE: 'could not parse the command',
  E_UNKNOWN_COMMAND: 'unknown command',
  E_BAD_ARGS: 'invalid arguments',
  E_DENIED: 'not allowed',
  E_CONFIRM_REQUIRED: 'confirmation required',
  /** Refused: the command needs approval, and cannot get it here (the shell, a DM). */
  E_APPROVAL_REQUIRED: 'approval required',
  /** Not run yet: recorded for approval; the reply carries the request. */
  E_APPROVAL_PENDING: 'waiting for approval',
  E_APPROVAL_EXPIRED: 'approval request expired',
  E_NOT_FOUND: 'not found',
  E_CONFLICT: 'conflicting state',
  E_REGISTRY: 'registry (etcd) error',
  E_REGISTRY_VALUE: 'invalid value in the registry',
  E_CONFIG: 'invalid configuration',
  E_ACL: 'invalid acl file',
  E_UNAVAILABLE: 'backend unavailable',
  E_TIMEOUT: 'timed out',
  /** A plugin loaded from outside the repository failed (threw a non-coded error, or could not load). */
  E_PLUGIN: 'plugin error',
  E_INTERNAL: 'internal error',
} as const;

export type ErrorCode = keyof typeof ERRORS;

export class SwitchyardError extends Error {
  readonly code: ErrorCode;
  /** Extra lines shown to the user below the message (usage, file:line list, …). */
  readonly details: readonly string[];

  constructor(code: ErrorCode, message?: string, opts: { details?: readonly string[]; cause?: unknown } = {}) {
    super(message ?? ERRORS[code], opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'SwitchyardError';
    this.code = code;
    this.details = opts.details ?? [];
  }
}

export function isSwitchyardError(e: unknown, code?: ErrorCode): e is SwitchyardError {
  return e instanceof SwitchyardError && (code === undefined || e.code === code);
}

export function fail(code: ErrorCode, message?: string, opts?: { details?: readonly string[]; cause?: unknown }): never {
  throw new SwitchyardError(code, message, opts);
}
