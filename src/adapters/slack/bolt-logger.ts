import { LogLevel, type Logger as BoltLogger } from '@slack/bolt';
import type { Logger } from '../../core/log.js';

/**
 * Bolt and the Web API client log through this, so their lines land in our pino stream
 * (with its redaction) instead of on the console. Bolt's debug output includes whole
 * request bodies as pre-serialised strings that redaction cannot see into (slash commands
 * carry a verification token), so it is demoted to pino's `trace`.
 */
export function boltLogger(log: Logger): BoltLogger {
  const emit = (level: 'trace' | 'info' | 'warn' | 'error', args: unknown[]) => {
    const err = args.find((a): a is Error => a instanceof Error);
    const msg = args
      .filter((a) => a !== err)
      .map((a) => (typeof a === 'string' ? a : safeJson(a)))
      .join(' ');
    if (err) log[level]({ err }, msg);
    else log[level](msg);
  };
  return {
    debug: (...args: unknown[]) => emit('trace', args),
    info: (...args: unknown[]) => emit('info', args),
    warn: (...args: unknown[]) => emit('warn', args),
    error: (...args: unknown[]) => emit('error', args),
    // pino's level is the one switch (LOG_LEVEL); Bolt must not override it.
    setLevel: () => {},
    getLevel: () => toBoltLevel(log.level),
    setName: () => {},
  };
}

function toBoltLevel(level: string): LogLevel {
  if (level === 'error' || level === 'fatal') return LogLevel.ERROR;
  if (level === 'warn') return LogLevel.WARN;
  if (level === 'info') return LogLevel.INFO;
  return LogLevel.DEBUG;
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}
