/**
 * The production image, built by scripts/build-image.sh on the run-wide test engine (no
 * registry: a debootstrapped Debian base, cached under .switchyard/image-cache/, plus this
 * host's Node.js) and then run the way an operator runs it: `--version`, `check` on a
 * mounted config, `serve` → /healthz against the test etcd, SIGTERM → exit 0.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sharedDockerHost } from './helpers/docker.js';
import { freePort } from './helpers/net.js';
import { startSlackStandIn } from './helpers/slack.js';
import { makeWorkspace } from './helpers/workspace.js';

const ROOT = new URL('..', import.meta.url).pathname;
const TAG = `switchyard-image-test:${randomBytes(4).toString('hex')}`;
/** Where the image expects its configuration (SWITCHYARD_CONFIG in the Dockerfile). */
const CONFIG_DIR = '/etc/switchyard';
/** A cold build runs debootstrap (minutes on a loaded machine); a cached one takes about a minute. */
const BUILD_TIMEOUT_MS = 15 * 60_000;

let host: string;
let built = false;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The docker CLI against the test engine; never throws on a non-zero exit. */
function docker(args: string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile('docker', args, { env: { ...process.env, DOCKER_HOST: host }, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr: err && !stderr ? err.message : stderr });
    });
  });
}

async function dockerOk(args: string[], timeoutMs?: number): Promise<string> {
  const r = await docker(args, timeoutMs);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** A directory the image's user (uid 10001) can read, to mount at CONFIG_DIR. */
async function readableDir(dir: string): Promise<string> {
  await chmod(dir, 0o755);
  return dir;
}

beforeAll(async () => {
  host = await sharedDockerHost();
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn('bash', [join(ROOT, 'scripts/build-image.sh'), '--tag', TAG], {
      cwd: ROOT,
      env: { ...process.env, DOCKER_HOST: host },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.once('error', reject);
    child.once('close', (c) => resolve({ code: c, stderr: err }));
  });
  if (code !== 0) throw new Error(`scripts/build-image.sh exited ${code}:\n${stderr.split('\n').slice(-30).join('\n')}`);
  built = true;
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  if (built) await docker(['rmi', '--force', TAG]);
});

describe('the production image', () => {
  it('holds compiled JavaScript and production dependencies only, runs as a non-root user, and ships the HAProxy template', async () => {
    const config = JSON.parse(await dockerOk(['image', 'inspect', '--format', '{{json .Config}}', TAG])) as { User: string; Entrypoint: string[] };
    expect(config.User).toBe('10001:10001');
    expect(config.Entrypoint).toEqual(['node', '/app/bin/switchyard.js']);

    // One line per fact, so a failure names what is wrong.
    const probe = [
      'echo "uid=$(id -u)"',
      'echo "template=$(test -f /app/dist/src/adapters/haproxy/templates/haproxy.cfg.hbs && echo yes || echo no)"',
      'echo "cli=$(test -f /app/dist/src/cli.js && echo yes || echo no)"',
      'echo "sources=$(find /app -path /app/node_modules -prune -o \\( \\( -name "*.ts" ! -name "*.d.ts" \\) -o -name "*.map" \\) -print | head -3 | tr "\\n" " ")"',
      'echo "devtools=$(cd /app/node_modules && ls -d typescript vitest tsx esbuild @biomejs pino-pretty 2>/dev/null | tr "\\n" " ")"',
      'echo "npm=$(command -v npm npx || true)"',
      'echo "writable=$(touch /app/x 2>/dev/null && echo yes || echo no)"',
    ].join('; ');
    const out = await dockerOk(['run', '--rm', '--network', 'none', '--entrypoint', '/bin/sh', TAG, '-c', probe]);
    const facts = Object.fromEntries(
      out
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1).trim()]),
    );
    expect(facts).toEqual({ uid: '10001', template: 'yes', cli: 'yes', sources: '', devtools: '', npm: '', writable: 'no' });
  });

  it('prints the package version', async () => {
    const { version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await docker(['run', '--rm', '--network', 'none', TAG, '--version']);
    expect(r).toMatchObject({ code: 0 });
    expect(r.stdout.trim()).toBe(version);
  });

  it('check validates a mounted config, its acl.yaml and the shipped HAProxy template; a bad config fails with file:line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sy-image-check-'));
    try {
      await writeFile(join(dir, 'acl.yaml'), 'rules:\n  - allow: [status, help]\n    users: ["*"]\n');
      const haproxy = 'haproxy:\n  config: /tmp/haproxy.cfg\n  adminSocket: /tmp/admin.sock\n  masterSocket: /tmp/master.sock\n';
      await writeFile(join(dir, 'switchyard.yaml'), `etcd:\n  endpoints: [http://127.0.0.1:2379]\n${haproxy}`);
      const mount = ['--volume', `${await readableDir(dir)}:${CONFIG_DIR}:ro`];

      const good = await docker(['run', '--rm', '--network', 'none', ...mount, TAG, 'check']);
      expect(good, good.stderr).toMatchObject({ code: 0 });
      expect(good.stdout).toContain(`${CONFIG_DIR}/switchyard.yaml: ok`);
      expect(good.stdout).toContain(`${CONFIG_DIR}/acl.yaml: ok`);
      expect(good.stdout).toContain('/app/dist/src/adapters/haproxy/templates/haproxy.cfg.hbs: ok');

      await writeFile(join(dir, 'switchyard.yaml'), `etcd:\n  endpoints: [not-a-url]\n`);
      const bad = await docker(['run', '--rm', '--network', 'none', ...mount, TAG, 'check']);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain(`${CONFIG_DIR}/switchyard.yaml:2`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('serve answers /healthz 200 against etcd and exits 0 within 5 s of SIGTERM', async () => {
    const ws = await makeWorkspace();
    const slack = await startSlackStandIn();
    const name = `sy-image-serve-${randomBytes(4).toString('hex')}`;
    try {
      const port = await freePort();
      // Host networking reaches the test etcd and the Slack stand-in on 127.0.0.1; HOST keeps
      // the bot on loopback too.
      await dockerOk([
        'run',
        '--detach',
        '--name',
        name,
        '--network',
        'host',
        '--volume',
        `${await readableDir(ws.dir)}:${CONFIG_DIR}:ro`,
        '--env',
        'HOST=127.0.0.1',
        '--env',
        `PORT=${port}`,
        '--env',
        'SLACK_BOT_TOKEN=xoxb-image-test',
        '--env',
        'SLACK_SIGNING_SECRET=image-test-secret',
        '--env',
        `SLACK_API_URL=${slack.apiUrl}`,
        TAG,
        'serve',
      ]);
      const deadline = Date.now() + 60_000;
      let status = 0;
      while (Date.now() < deadline) {
        status = await fetch(`http://127.0.0.1:${port}/healthz`).then(
          (r) => r.status,
          () => 0,
        );
        if (status === 200) break;
        const state = (await dockerOk(['inspect', '--format', '{{.State.Status}}', name])).trim();
        if (state !== 'running') break;
        await new Promise((r) => setTimeout(r, 200));
      }
      if (status !== 200) throw new Error(`no /healthz 200 (last ${status}); container logs:\n${(await docker(['logs', name])).stderr}`);
      // The bot really reached Slack (the stand-in) with its token.
      expect((await slack.waitFor((c) => c.method === 'auth.test', 10_000)).token).toBe('xoxb-image-test');

      const signalled = Date.now();
      await dockerOk(['kill', '--signal', 'TERM', name]);
      await dockerOk(['wait', name], 30_000);
      const state = JSON.parse(await dockerOk(['inspect', '--format', '{{json .State}}', name])) as { ExitCode: number; FinishedAt: string };
      const logs = await docker(['logs', name]);
      expect(state.ExitCode, logs.stderr).toBe(0);
      // The engine's clock is this machine's: FinishedAt excludes the docker CLI's own latency.
      expect(Date.parse(state.FinishedAt) - signalled).toBeLessThan(5000);
    } finally {
      await docker(['rm', '--force', name]);
      await slack.close();
      await ws.dispose();
    }
  });
});
