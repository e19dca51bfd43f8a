/**
 * What `switchyard` prints when an error it did not anticipate ends it (exit 70): a line an
 * operator can act on and report, the stack trace only when asked for, and never the value
 * of a secret from the environment, whatever text the error happens to carry.
 */
import { EXIT } from './command-line.js';
import { SECRET_ENV_VARIABLES } from './core/secret-env.js';

// Shorter values would blank out ordinary words of the message.
const MIN_SECRET_LENGTH = 4;

type Env = Record<string, string | undefined>;

export function internalErrorText(err: unknown, env: Env): string {
  const verbose = env.LOG_LEVEL === 'debug' || env.LOG_LEVEL === 'trace';
  const lines = [`switchyard: unexpected internal error: ${describe(err)}`];
  const cause = err instanceof Error && err.cause !== undefined ? describe(err.cause) : undefined;
  if (cause) lines.push(`  caused by: ${cause}`);
  if (verbose && err instanceof Error && err.stack) lines.push(...err.stack.split('\n').slice(1));
  else lines.push('  this is a bug in switchyard or a damaged installation; LOG_LEVEL=debug shows the stack trace');
  return `${redactSecrets(lines.join('\n'), env)}\n`;
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  // "TypeError: …" says more than "…"; a plain Error's name adds nothing.
  const name = err.name && err.name !== 'Error' ? `${err.name}: ` : '';
  return `${name}${err.message}${typeof code === 'string' ? ` (${code})` : ''}`;
}

function redactSecrets(text: string, env: Env): string {
  let out = text;
  for (const name of SECRET_ENV_VARIABLES) {
    const value = env[name]?.trim();
    if (value && value.length >= MIN_SECRET_LENGTH) out = out.split(value).join(`[${name} redacted]`);
  }
  return out;
}

/** What a process-wide handler caught: a throw nobody caught, or a rejection nobody awaited. */
export type CrashKind = 'uncaughtException' | 'unhandledRejection';

const CRASH_WORDS: Record<CrashKind, string> = {
  uncaughtException: 'uncaught exception',
  unhandledRejection: 'unhandled promise rejection',
};

// A cause chain is short in practice; the bound only guards against a cycle.
const MAX_CAUSE_DEPTH = 4;

/**
 * A copy of the error for pino's err serializer (type, message, stack, code, causes), of the
 * same class, with every secret value from the environment blanked out. Only these are
 * copied: an error's other properties (a request, its options) may hold secrets under any name.
 */
export function redactedError(err: unknown, env: Env, depth = 0): Error {
  if (!(err instanceof Error)) {
    const copy = new Error(redactSecrets(String(err), env));
    // A stack taken here would point at this function, not at whatever threw the value.
    Object.defineProperty(copy, 'stack', { value: undefined });
    return copy;
  }
  const cause = err.cause !== undefined && depth < MAX_CAUSE_DEPTH ? redactedError(err.cause, env, depth + 1) : undefined;
  const copy = new Error(redactSecrets(err.message, env), cause === undefined ? undefined : { cause });
  // The class (TypeError, a library's own) is what pino reports as the type.
  Object.setPrototypeOf(copy, Object.getPrototypeOf(err) as object);
  Object.defineProperty(copy, 'stack', { value: err.stack === undefined ? undefined : redactSecrets(err.stack, env) });
  const code = (err as NodeJS.ErrnoException).code;
  if (typeof code === 'string') (copy as NodeJS.ErrnoException).code = code;
  return copy;
}

export interface CrashHandling {
  /** Must write synchronously: exit() follows at once. */
  log: { fatal(obj: object, msg: string): void };
  env: Env;
  /** The one-line message, as for an internal error from main (stderr). */
  write: (text: string) => void;
  exit: (code: number) => void;
}

/**
 * After an error escaped every handler, the process's state is unknown (a lock half taken,
 * a watch dead, a lease no longer kept alive): carrying on would leave a bot that looks up
 * but does not work. So the error is logged at fatal, said in the same one line as any
 * internal error, and the process exits 70 at once for its supervisor to restart it; what
 * it held in etcd expires with its leases.
 */
export function exitOnCrash(o: CrashHandling, proc: NodeJS.EventEmitter = process): void {
  let crashed = false;
  const crash = (kind: CrashKind) => (err: unknown) => {
    // A second error while the first is handled (the log itself failing) must not loop.
    if (crashed) return;
    crashed = true;
    try {
      try {
        o.log.fatal({ err: redactedError(err, o.env), crash: kind }, `${CRASH_WORDS[kind]}: exiting ${EXIT.internal} for a supervisor to restart switchyard`);
      } finally {
        o.write(internalErrorText(err, o.env));
      }
    } finally {
      o.exit(EXIT.internal);
    }
  };
  proc.on('uncaughtException', crash('uncaughtException'));
  proc.on('unhandledRejection', crash('unhandledRejection'));
}
