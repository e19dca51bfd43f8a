/**
 * An error that escapes every handler of a running switchyard — thrown from a timer, or a
 * promise nobody awaits — ends it with exit 70, a fatal log record and the one-line message,
 * never with Node's default status and a bare stack, and never with a secret in either.
 * Produced for real, with no hook in the product: a buggy plugin, loaded as an operator
 * loads one, in `switchyard shell` run as a user runs it.
 */
import { EventEmitter } from 'node:events';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { EXIT } from '../src/command-line.js';
import { exitOnCrash, redactedError } from '../src/internal-error.js';
import { pluginWorkspace } from './helpers/plugins.js';
import { runShell, type ShellRun } from './helpers/process.js';
import { DEFAULT_ACL, ONCALL, type Workspace } from './helpers/workspace.js';

const SECRETS = {
  SLACK_BOT_TOKEN: 'xoxb-crash-test-bot-token',
  SLACK_SIGNING_SECRET: 'crash-test-signing-secret',
  SLACK_APP_TOKEN: 'xapp-crash-test-app-token',
  ETCD_PASSWORD: 'crash-test-etcd-password',
};

/**
 * A plugin with the two classic mistakes, each made in the background of a command that is
 * still in flight (it never answers; its own deadline is far off): a throw from a timer and
 * a rejection nobody awaits. Each error carries a secret, as a URL with credentials would.
 */
const CRASHING_PLUGIN = `export default (api) => ({
  name: 'crashing',
  apiVersion: '^1.0.0',
  commands: [
    api.defineCommand({ name: 'throw-later', summary: 'throws from a timer', args: api.z.object({}), positionals: [], timeoutMs: 600000,
      handler: () => {
        setImmediate(() => { throw new TypeError('timer failed at http://u:' + process.env.ETCD_PASSWORD + '@etcd:2379'); });
        return new Promise(() => {});
      } }),
    api.defineCommand({ name: 'reject-later', summary: 'rejects a promise nobody awaits', args: api.z.object({}), positionals: [], timeoutMs: 600000,
      handler: () => {
        setImmediate(() => { Promise.reject(new Error('nobody awaited ' + process.env.SLACK_BOT_TOKEN)); });
        return new Promise(() => {});
      } }),
  ],
});
`;

/** pino's fatal level. */
const FATAL = 60;

/** The JSON log records of a run's stderr. */
function records(run: ShellRun): Record<string, unknown>[] {
  return run.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('a crash outside the command in flight (real process, real etcd, a buggy plugin)', () => {
  let ws: Workspace | undefined;
  afterEach(async () => {
    await ws?.dispose();
    ws = undefined;
  });

  it.each([
    ['throw-later', 'uncaughtException', /^TypeError: timer failed at http:\/\/u:\[ETCD_PASSWORD redacted\]@etcd:2379$/],
    ['reject-later', 'unhandledRejection', /^nobody awaited \[SLACK_BOT_TOKEN redacted\]$/],
  ] as const)(
    '%s: exit 70, one fatal record of the %s with the error, the one-line message, no secret',
    async (command, kind, described) => {
      ws = await pluginWorkspace({ plugins: 'plugins:\n  - ./crashing.mjs\n', files: { 'crashing.mjs': CRASHING_PLUGIN }, acl: DEFAULT_ACL });
      // The status answered first proves the shell was up and serving when the crash came.
      const run = await runShell(ws.configPath, ['--user', ONCALL], `status\n${command}\n`, { ...SECRETS, LOG_LEVEL: 'warn' });

      expect(run.code, run.stderr).toBe(EXIT.internal);
      expect(run.stdout).toMatch(/0 service\(s\), 0 instance\(s\)/);

      const fatal = records(run).filter((r) => r.level === FATAL);
      expect(fatal, run.stderr).toHaveLength(1);
      expect(fatal[0]).toMatchObject({ name: 'switchyard', crash: kind, msg: expect.stringMatching(/exiting 70/) });
      const err = fatal[0]!.err as Record<string, string>;
      expect(`${err.type === 'Error' ? '' : `${err.type}: `}${err.message}`).toMatch(described);
      // The stack names the plugin's frame: what a bug report needs.
      expect(err.stack).toMatch(/crashing\.mjs/);

      const text = run.stderr
        .split('\n')
        .filter((l) => !l.startsWith('{'))
        .join('\n');
      expect(text).toMatch(/^switchyard: unexpected internal error: /m);
      for (const value of Object.values(SECRETS)) {
        expect(run.stderr).not.toContain(value);
        expect(run.stdout).not.toContain(value);
      }
    },
    120_000,
  );
});

describe('exitOnCrash (unit)', () => {
  it('handles only the first crash, and still says it and exits when the log itself throws', () => {
    const proc = new EventEmitter();
    const order: string[] = [];
    exitOnCrash(
      {
        log: {
          fatal: () => {
            order.push('fatal');
            throw new Error('log broken');
          },
        },
        env: {},
        write: (t) => order.push(`write ${t.split('\n')[0]}`),
        exit: (code) => order.push(`exit ${code}`),
      },
      proc,
    );
    expect(() => proc.emit('unhandledRejection', new Error('first'))).toThrow('log broken');
    proc.emit('uncaughtException', new Error('second'));
    expect(order).toEqual(['fatal', 'write switchyard: unexpected internal error: first', `exit ${EXIT.internal}`]);
  });

  it('gives pino a copy of the same class with type, message, stack, code and causes, secret values blanked out', () => {
    const err = Object.assign(new TypeError(`connect to ${SECRETS.ETCD_PASSWORD}`, { cause: `token ${SECRETS.SLACK_APP_TOKEN}` }), {
      code: 'ECONNREFUSED',
      options: { password: 'held-in-a-property' },
    });
    const logged = JSON.parse(JSON.stringify(pino.stdSerializers.err(redactedError(err, SECRETS)))) as Record<string, unknown>;
    expect(Object.keys(logged).sort()).toEqual(['code', 'message', 'stack', 'type']);
    expect(logged).toMatchObject({
      type: 'TypeError',
      message: 'connect to [ETCD_PASSWORD redacted]: token [SLACK_APP_TOKEN redacted]',
      code: 'ECONNREFUSED',
      stack: expect.stringMatching(/^TypeError: connect to \[ETCD_PASSWORD redacted\]\n {4}at /),
    });
    expect(JSON.stringify(logged)).not.toMatch(/crash-test|held-in-a-property/);
  });
});
