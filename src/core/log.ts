import pino, { type Logger } from 'pino';
import { SECRET_ENV_VARIABLES } from './secret-env.js';

/**
 * Paths that may carry secrets. pino removes them before anything is serialised, so a
 * token that slips into a log call (a request body, an options object) is never written.
 */
export const REDACT_PATHS = [
  'token',
  'botToken',
  'appToken',
  'signingSecret',
  'password',
  'authorization',
  '*.token',
  '*.botToken',
  '*.appToken',
  '*.signingSecret',
  '*.password',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers["x-slack-signature"]',
  ...SECRET_ENV_VARIABLES.map((name) => `env.${name}`),
];

export function createLogger(opts: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  return pino(
    {
      name: 'switchyard',
      level: opts.level ?? process.env.LOG_LEVEL ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    },
    opts.destination ?? pino.destination(2),
  );
}

export type { Logger };
