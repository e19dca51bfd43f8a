/**
 * The process logger: named, at the level asked for (else LOG_LEVEL, else info), and never
 * writing a secret that slips into a log call, at the top level or one object down.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../src/core/log.js';

const sink = () => {
  const lines: Record<string, unknown>[] = [];
  return { lines, destination: { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) } };
};

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('createLogger', () => {
  it('redacts tokens, secrets, passwords and authorization headers wherever a log call carries them', () => {
    const { lines, destination } = sink();
    const log = createLogger({ level: 'info', destination });
    log.info(
      {
        token: 't0',
        slack: { botToken: 'xoxb-1', appToken: 'xapp-1', signingSecret: 's1' },
        etcd: { password: 'p1' },
        req: { headers: { authorization: 'Bearer x', 'x-slack-signature': 'v0=abc' } },
        headers: { authorization: 'Basic y' },
        env: { SLACK_BOT_TOKEN: 'xoxb-2', SLACK_SIGNING_SECRET: 's2', SLACK_APP_TOKEN: 'xapp-2', ETCD_PASSWORD: 'p2' },
        keep: 'visible',
      },
      'hello',
    );
    const text = JSON.stringify(lines[0]);
    for (const secret of ['t0', 'xoxb-1', 'xapp-1', 's1', 'p1', 'Bearer x', 'v0=abc', 'Basic y', 'xoxb-2', 's2', 'xapp-2', 'p2']) {
      expect(text).not.toContain(`"${secret}"`);
    }
    expect(lines[0]).toMatchObject({ name: 'switchyard', msg: 'hello', keep: 'visible', token: '[redacted]', slack: { botToken: '[redacted]' } });
  });

  it('takes the level given, else LOG_LEVEL, else info', () => {
    vi.stubEnv('LOG_LEVEL', 'warn');
    expect(createLogger({ level: 'debug', destination: sink().destination }).level).toBe('debug');
    expect(createLogger({ destination: sink().destination }).level).toBe('warn');
    vi.stubEnv('LOG_LEVEL', undefined);
    expect(createLogger({ destination: sink().destination }).level).toBe('info');
  });
});
