/**
 * etcd with TLS and client certificates, and etcd with user/password auth: private etcd
 * processes configured that way, certificates made here with openssl in a temp dir, and
 * `switchyard shell` spawned with a switchyard.yaml using `etcd.tls` / `etcd.auth` and
 * ETCD_PASSWORD from the environment — as an operator runs it. A command works; a wrong CA,
 * a missing client certificate and a wrong password fail with an error that says so.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runShell } from './helpers/process.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdctl, startEtcd, type EtcdProcess } from './helpers/etcd.js';
import { ONCALL } from './helpers/workspace.js';

const run = promisify(execFile);
const ACL = `rules:\n  - allow: ["*"]\n    users: [${ONCALL}]\n`;

async function openssl(dir: string, ...args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir, timeout: 30_000 });
}

/** Two CAs, and a server and a client certificate signed by the first (EC P-256: fast to make), in `dir`. */
async function makeCerts(dir: string): Promise<void> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const ca of ['ca', 'other-ca']) {
    await openssl(dir, 'req', '-x509', ...ec, '-days', '1', '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-subj', `/CN=switchyard test ${ca}`);
  }
  const sign = async (name: string, cn: string, ext: string) => {
    await writeFile(join(dir, `${name}.ext`), ext);
    await openssl(dir, 'req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    await openssl(
      dir,
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '1',
      '-out',
      `${name}.pem`,
      '-extfile',
      `${name}.ext`,
    );
  };
  // The server's certificate also serves the test's own health probe as a client.
  await sign('server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  await sign('client', 'switchyard', 'extendedKeyUsage=clientAuth\n');
}

async function writeConfig(dir: string, etcd: string): Promise<void> {
  await writeFile(join(dir, 'acl.yaml'), ACL);
  await writeFile(join(dir, 'switchyard.yaml'), `etcd:\n${etcd}\n  commandTimeout: 3s\nacl:\n  path: ./acl.yaml\n`);
}

describe('etcd over TLS with client certificates (real etcd, openssl certificates)', () => {
  let dir: string;
  let etcd: EtcdProcess | undefined;
  const tlsFlags = () => [`--cacert=${join(dir, 'ca.pem')}`, `--cert=${join(dir, 'client.pem')}`, `--key=${join(dir, 'client.key')}`];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sy-etcd-tls-'));
    await makeCerts(dir);
    etcd = await startEtcd({ tls: { ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), clientCertAuth: true } });
  }, 120_000);

  afterAll(async () => {
    await etcd?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('runs commands with etcd.tls (CA, client certificate and key, paths relative to the config)', async () => {
    await writeConfig(dir, `  endpoints: [${etcd!.endpoint}]\n  tls: { ca: ca.pem, cert: client.pem, key: client.key }`);
    const { code, stdout, stderr } = await shell(dir, 'register web web-1 10.0.0.1:8080\nstatus web\n');
    expect(stderr).not.toMatch(/"level":[456]0/);
    expect(code).toBe(0);
    expect(stdout).toContain('registered web/web-1 at 10.0.0.1:8080');
    expect(await etcdctl(etcd!.endpoint, ...tlsFlags(), 'get', '/services/web/web-1', '--print-value-only')).toBe('10.0.0.1:8080\n');
  }, 120_000);

  it('a CA that did not sign the server certificate fails with an error naming the endpoint and the certificate problem', async () => {
    await writeConfig(dir, `  endpoints: [${etcd!.endpoint}]\n  tls: { ca: other-ca.pem, cert: client.pem, key: client.key }`);
    const { code, stdout } = await shell(dir, 'register web web-2 10.0.0.2:8080\n');
    expect(code).toBe(0); // the shell ran its script; the command's own reply is the error
    expect(stdout).toContain(`tried ${etcd!.endpoint}`);
    expect(stdout).toMatch(/TLS handshake failed: unable to verify the first certificate \(is etcd\.tls\.ca the CA that signed etcd's certificate\?\)/);
    expect(await etcdctl(etcd!.endpoint, ...tlsFlags(), 'get', '/services/web/web-2', '--print-value-only')).toBe('');
  }, 120_000);

  it('without a client certificate the server refuses, and the error says so', async () => {
    await writeConfig(dir, `  endpoints: [${etcd!.endpoint}]\n  tls: { ca: ca.pem }`);
    const { code, stdout } = await shell(dir, 'register web web-3 10.0.0.3:8080\n');
    expect(code).toBe(0);
    expect(stdout).toContain(`tried ${etcd!.endpoint}`);
    expect(stdout).toMatch(/TLS handshake failed: etcd refused the client certificate \(.*check etcd\.tls\.cert and etcd\.tls\.key\)/);
    expect(await etcdctl(etcd!.endpoint, ...tlsFlags(), 'get', '/services/web/web-3', '--print-value-only')).toBe('');
  }, 120_000);
});

describe('etcd with user/password auth (real etcd)', () => {
  let dir: string;
  let etcd: EtcdProcess | undefined;
  const root = ['--user=root:root-secret'];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sy-etcd-auth-'));
    etcd = await startEtcd();
    const e = etcd.endpoint;
    await etcdctl(e, 'user', 'add', 'root', '--new-user-password=root-secret', '--interactive=false');
    await etcdctl(e, 'user', 'grant-role', 'root', 'root');
    await etcdctl(e, 'role', 'add', 'switchyard');
    await etcdctl(e, 'role', 'grant-permission', 'switchyard', '--prefix=true', 'readwrite', '/');
    await etcdctl(e, 'user', 'add', 'bot', '--new-user-password=bot-secret', '--interactive=false');
    await etcdctl(e, 'user', 'grant-role', 'bot', 'switchyard');
    await etcdctl(e, 'auth', 'enable');
    await writeConfig(dir, `  endpoints: [${e}]\n  auth: { username: bot }`);
  }, 120_000);

  afterAll(async () => {
    await etcd?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('runs commands as etcd.auth.username with ETCD_PASSWORD', async () => {
    const { code, stdout, stderr } = await shell(dir, 'register web web-1 10.0.0.1:8080\n', { ETCD_PASSWORD: 'bot-secret' });
    expect(stderr).not.toMatch(/"level":[456]0/);
    expect(code).toBe(0);
    expect(stdout).toContain('registered web/web-1 at 10.0.0.1:8080');
    expect(await etcdctl(etcd!.endpoint, ...root, 'get', '/services/web/web-1', '--print-value-only')).toBe('10.0.0.1:8080\n');
  }, 120_000);

  it('a wrong password fails with "authentication failed", a missing one names ETCD_PASSWORD; nothing is written', async () => {
    const wrong = await shell(dir, 'register web web-2 10.0.0.2:8080\n', { ETCD_PASSWORD: 'not-the-secret' });
    expect(wrong.stdout).toContain(`error: etcd (${etcd!.endpoint}) refused registering web/web-2: authentication failed`);
    const missing = await shell(dir, 'register web web-2 10.0.0.2:8080\n');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('etcd.auth.username is "bot" but ETCD_PASSWORD is not set');
    expect(await etcdctl(etcd!.endpoint, ...root, 'get', '/services/web/web-2', '--print-value-only')).toBe('');
  }, 120_000);
});

/** The shell against the TLS/auth etcd of `dir`; ETCD_PASSWORD only when the test gives one. */
function shell(dir: string, script: string, env: Record<string, string> = {}) {
  return runShell(join(dir, 'switchyard.yaml'), ['--user', ONCALL], script, { LOG_LEVEL: 'error', ETCD_PASSWORD: '', ...env });
}
