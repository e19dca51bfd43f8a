/**
 * What `switchyard` prints when an error it did not anticipate ends it (exit 70): a line an
 * operator can act on and report, the stack trace only when asked for, and never the value
 * of a secret from the environment, whatever text the error happens to carry.
 */

/** The variables whose values must never reach a terminal or a CI log. */
const SECRET_VARIABLES = ['SLACK_BOT_TOKEN', 'SLACK_SIGNING_SECRET', 'SLACK_APP_TOKEN', 'ETCD_PASSWORD'] as const;
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
  for (const name of SECRET_VARIABLES) {
    const value = env[name]?.trim();
    if (value && value.length >= MIN_SECRET_LENGTH) out = out.split(value).join(`[${name} redacted]`);
  }
  return out;
}
