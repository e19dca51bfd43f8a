/**
 * Exit status 70: an error switchyard did not anticipate. Produced for real, with no hook in
 * the product: a copy of the installation with one module missing (what an interrupted
 * upgrade or a half-copied image leaves), run as a user runs it. Its lazily loaded
 * `watch` command cannot load; the process must say so in one line, exit 70, show the
 * stack only when asked, and never echo a secret from its environment.
 */
import { cp, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../src/command-line.js';
import { internalErrorText } from '../src/internal-error.js';
import { runToEnd, type ShellRun } from './helpers/process.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
/** The module `switchyard watch` imports once chosen (src/cli.ts). */
const MISSING = join('src', 'app', 'watch.ts');
const SECRETS = {
  SLACK_BOT_TOKEN: 'xoxb-internal-error-test-bot-token',
  SLACK_SIGNING_SECRET: 'internal-error-test-signing-secret',
  SLACK_APP_TOKEN: 'xapp-internal-error-test-app-token',
  ETCD_PASSWORD: 'internal-error-test-etcd-password',
};

let dir: string;

function runCopy(args: string[], env: Record<string, string>): Promise<ShellRun> {
  return runToEnd([join(dir, 'bin', 'switchyard.js'), ...args], { cwd: dir, env: { ...process.env, ...SECRETS, ...env } });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-broken-install-'));
  for (const part of ['bin', 'src', 'package.json', 'tsconfig.json']) await cp(join(REPO, part), join(dir, part), { recursive: true });
  await symlink(join(REPO, 'node_modules'), join(dir, 'node_modules'), 'dir');
  // Removing a file that is not there would prove nothing: fail loudly if it moved.
  expect((await stat(join(dir, MISSING))).isFile()).toBe(true);
  await rm(join(dir, MISSING));
  await writeFile(join(dir, 'switchyard.yaml'), 'etcd:\n  endpoints: [http://127.0.0.1:1]\nwatch:\n  advertise: 127.0.0.1\n');
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('exit status 70 on an unexpected internal error (real process, damaged installation)', () => {
  it('says what failed in one line with a hint, exits 70, and never prints a secret; LOG_LEVEL=debug adds the stack', async () => {
    const [plain, debug] = await Promise.all([
      runCopy(['watch', '--config', 'switchyard.yaml'], { LOG_LEVEL: 'info' }),
      runCopy(['watch', '--config', 'switchyard.yaml'], { LOG_LEVEL: 'debug' }),
    ]);

    expect(plain.code, plain.stderr).toBe(EXIT.internal);
    const lines = plain.stderr.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^switchyard: unexpected internal error: .*app\/watch\.[jt]s.* \(ERR_MODULE_NOT_FOUND\)$/);
    expect(lines.slice(1)).toEqual(['  this is a bug in switchyard or a damaged installation; LOG_LEVEL=debug shows the stack trace']);
    expect(plain.stdout).toBe('');

    expect(debug.code, debug.stderr).toBe(EXIT.internal);
    expect(debug.stderr.split('\n')[0]).toBe(lines[0]);
    expect(debug.stderr).toMatch(/^ {4}at .+$/m);

    for (const run of [plain, debug]) {
      for (const value of Object.values(SECRETS)) expect(run.stderr).not.toContain(value);
    }
  }, 120_000);

  it('blanks out every secret the error text carries, and names the cause', () => {
    const err = new TypeError(`fetch http://u:${SECRETS.ETCD_PASSWORD}@etcd:2379 with ${SECRETS.SLACK_BOT_TOKEN}`, {
      cause: new Error(`signed with ${SECRETS.SLACK_SIGNING_SECRET}`),
    });
    const text = internalErrorText(err, { ...SECRETS, LOG_LEVEL: 'trace' });
    for (const value of Object.values(SECRETS)) expect(text).not.toContain(value);
    expect(text).toMatch(
      /^switchyard: unexpected internal error: TypeError: fetch http:\/\/u:\[ETCD_PASSWORD redacted\]@etcd:2379 with \[SLACK_BOT_TOKEN redacted\]\n/,
    );
    expect(text).toContain('\n  caused by: signed with [SLACK_SIGNING_SECRET redacted]\n');
    expect(text).toMatch(/^ {4}at /m);
  });
});
