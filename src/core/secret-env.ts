/**
 * The environment variables that hold secrets: redacted from logs (log.ts) and blanked out of
 * what a crash prints (internal-error.ts). Its own file so the crash path loads no logger.
 */
export const SECRET_ENV_VARIABLES = ['SLACK_BOT_TOKEN', 'SLACK_SIGNING_SECRET', 'SLACK_APP_TOKEN', 'ETCD_PASSWORD'] as const;
