import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, loadSecrets, resolveConfigPath } from '../src/config/load.js';
import { parseAcl } from '../src/core/acl.js';
import { isSwitchyardError, type SwitchyardError } from '../src/core/errors.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const EXAMPLE = join(ROOT, 'switchyard.example.yaml');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function configFile(name: string, text: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}

async function configError(promise: Promise<unknown>): Promise<SwitchyardError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isSwitchyardError(err, 'E_CONFIG')) throw new Error(`expected E_CONFIG, got ${String(err)}`);
  return err;
}

describe('resolveConfigPath', () => {
  it('prefers --config, then SWITCHYARD_CONFIG, then ./switchyard.yaml', () => {
    expect(resolveConfigPath('/a.yaml', { SWITCHYARD_CONFIG: '/b.yaml' })).toBe('/a.yaml');
    expect(resolveConfigPath(undefined, { SWITCHYARD_CONFIG: '/b.yaml' })).toBe('/b.yaml');
    expect(resolveConfigPath(undefined, {})).toBe('./switchyard.yaml');
    expect(resolveConfigPath('', { SWITCHYARD_CONFIG: ' ' })).toBe('./switchyard.yaml');
  });
});

describe('loadConfig', () => {
  it('accepts the shipped example', async () => {
    const config = await loadConfig(EXAMPLE, {});
    expect(config.etcd.endpoints).toEqual(['http://127.0.0.1:2379']);
    expect(config.registry).toEqual({ prefix: '/services', switchyardPrefix: '/switchyard' });
    expect(config.acl.path).toBe(join(ROOT, 'acl.yaml'));
    expect(config.haproxy).toBeUndefined();
    expect(config.services.web).toMatchObject({
      image: 'switchyard/web:demo',
      port: 80,
      hostIp: '127.0.0.1',
      mode: 'http',
      listen: '127.0.0.1:8080',
      maxReplicas: 10,
    });
  });

  it('needs only etcd and fills in defaults', async () => {
    const config = await loadConfig(await configFile('minimal.yaml', 'etcd: {}\n'), {});
    expect(config.etcd).toMatchObject({ endpoints: ['http://127.0.0.1:2379'], commandTimeout: 3000 });
    expect(config.acl.path).toBe(join(dir, 'acl.yaml'));
    expect(config.services).toEqual({});
    expect(config.slack).toBeUndefined();
  });

  it('reports errors as file:line', async () => {
    const file = await configFile(
      'bad.yaml',
      ['etcd:', '  endpoints: [http://127.0.0.1:2379]', 'services:', '  web:', '    image: x', '    port: 70000', '    listen: nowhere', ''].join('\n'),
    );
    const err = await configError(loadConfig(file, {}));
    expect(err.message).toContain(file);
    expect(err.details).toHaveLength(2);
    expect(err.details[0]).toMatch(new RegExp(`^${file}:6: services\\.web\\.port: `));
    expect(err.details[1]).toMatch(new RegExp(`^${file}:7: services\\.web\\.listen: expected host:port`));
  });

  it('refuses unknown keys at their own line, not at the parent key, with the fix', async () => {
    const file = await configFile(
      'unknown.yaml',
      [
        'etcd:',
        '  endpoints: [http://127.0.0.1:2379]',
        '  endpoint: http://x:2379',
        'slak: {}',
        'services:',
        '  web:',
        '    image: x',
        '    port: 80',
        '    lisen: 127.0.0.1:8080',
        '    colour: blue',
        '',
      ].join('\n'),
    );
    const err = await configError(loadConfig(file, {}));
    expect(err.details).toHaveLength(4);
    expect(err.details[0]).toBe(`${file}:3: etcd.endpoint: unknown key; did you mean "endpoints"? (rename it)`);
    expect(err.details[1]).toBe(`${file}:4: slak: unknown key; did you mean "slack"? (rename it)`);
    expect(err.details[2]).toBe(`${file}:9: services.web.lisen: unknown key; did you mean "listen"? (rename it)`);
    expect(err.details[3]).toMatch(new RegExp(`^${file}:10: services\\.web\\.colour: unknown key; remove it \\(allowed here: .*\\bmaxReplicas\\b.*\\)$`));
  });

  it('refuses unknown keys in acl.yaml at their own line too', () => {
    const text = ['groups:', '  oncall: [U1]', 'rules:', '  - allow: [help]', '    users: ["*"]', '    chanels: [dm]', 'rule: []', ''].join('\n');
    const result = parseAcl(text, 'acl.yaml');
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toEqual([
      'acl.yaml:6: rules.0.chanels: unknown key; did you mean "channels"? (rename it)',
      'acl.yaml:7: rule: unknown key; did you mean "rules"? (rename it)',
    ]);
  });

  it('requires etcd', async () => {
    const err = await configError(loadConfig(await configFile('empty.yaml', ''), {}));
    expect(err.details[0]).toMatch(/empty\.yaml:1: etcd: /);
  });

  it('reports yaml syntax errors with their line', async () => {
    const err = await configError(loadConfig(await configFile('syntax.yaml', 'etcd:\n  endpoints: [a\nacl: {}\n'), {}));
    expect(err.details[0]).toMatch(/syntax\.yaml:[23]: /);
  });

  it('reports a missing file with the path tried and the command that creates it', async () => {
    const missing = join(dir, 'nope.yaml');
    const err = await configError(loadConfig(missing, {}));
    expect(err.message).toBe(`no configuration file at ${missing}`);
    expect(err.details[0]).toMatch(
      new RegExp(`^looked for ${missing} \\(the path comes from --config, else \\$SWITCHYARD_CONFIG, else \\./switchyard\\.yaml\\)$`),
    );
    const cp = /^to start from the documented example: cp (\S+) (\S+)$/.exec(err.details[1] ?? '');
    expect(cp?.[2]).toBe(missing);
    // The example named is the one shipped with the package, wherever the command runs from.
    expect(resolve(cp?.[1] ?? '')).toBe(EXAMPLE);
  });

  it('applies ETCD_ENDPOINTS and DOCKER_HOST from the environment', async () => {
    const config = await loadConfig(EXAMPLE, {
      ETCD_ENDPOINTS: 'http://10.0.0.1:2379, https://10.0.0.2:2379,',
      DOCKER_HOST: 'tcp://127.0.0.1:2375',
    });
    expect(config.etcd.endpoints).toEqual(['http://10.0.0.1:2379', 'https://10.0.0.2:2379']);
    expect(config.docker?.host).toBe('tcp://127.0.0.1:2375');
  });

  it('refuses malformed ETCD_ENDPOINTS', async () => {
    const err = await configError(loadConfig(EXAMPLE, { ETCD_ENDPOINTS: 'http://ok:2379,10.0.0.2:2379' }));
    expect(err.details).toEqual(['ETCD_ENDPOINTS: "10.0.0.2:2379" is not an http(s) URL']);
    await configError(loadConfig(EXAMPLE, { ETCD_ENDPOINTS: ' , ' }));
  });

  it('resolves paths relative to the config file', async () => {
    const file = await configFile(
      'paths.yaml',
      [
        'etcd:',
        '  tls: { ca: certs/ca.pem }',
        'acl: { path: policies/acl.yaml }',
        'haproxy:',
        '  config: haproxy.cfg',
        '  adminSocket: run/admin.sock',
        '  masterSocket: ipv4@127.0.0.1:9999',
        '  template: tmpl/haproxy.cfg.tmpl',
        '',
      ].join('\n'),
    );
    const config = await loadConfig(file, {});
    expect(config.acl.path).toBe(join(dir, 'policies/acl.yaml'));
    expect(config.etcd.tls?.ca).toBe(join(dir, 'certs/ca.pem'));
    expect(config.haproxy).toMatchObject({
      config: join(dir, 'haproxy.cfg'),
      adminSocket: join(dir, 'run/admin.sock'),
      masterSocket: 'ipv4@127.0.0.1:9999',
      template: join(dir, 'tmpl/haproxy.cfg.tmpl'),
      binary: 'haproxy',
    });
  });
});

describe('loadSecrets', () => {
  it('defaults HOST and PORT and leaves unset secrets out', () => {
    expect(loadSecrets({})).toEqual({ host: '0.0.0.0', port: 3000 });
    expect(loadSecrets({ HOST: '', PORT: '', SLACK_BOT_TOKEN: '' })).toEqual({ host: '0.0.0.0', port: 3000 });
  });

  it('reads and trims every variable', () => {
    expect(
      loadSecrets({
        SLACK_BOT_TOKEN: 'xoxb-1\n',
        SLACK_SIGNING_SECRET: 'sig',
        SLACK_APP_TOKEN: 'xapp-1',
        SLACK_API_URL: 'http://127.0.0.1:1234/api/',
        HOST: '127.0.0.1',
        PORT: '8080',
        ETCD_PASSWORD: 'pw',
        LOG_LEVEL: 'debug',
      }),
    ).toEqual({
      slackBotToken: 'xoxb-1',
      slackSigningSecret: 'sig',
      slackAppToken: 'xapp-1',
      slackApiUrl: 'http://127.0.0.1:1234/api/',
      host: '127.0.0.1',
      port: 8080,
      etcdPassword: 'pw',
      logLevel: 'debug',
    });
  });

  it('takes HOST as an IPv4 or IPv6 address or a host name', () => {
    expect(['::', '::1', '10.0.0.7', 'bot.internal'].map((HOST) => loadSecrets({ HOST }).host)).toEqual(['::', '::1', '10.0.0.7', 'bot.internal']);
  });

  it('normalises SLACK_API_URL to end with a slash', () => {
    expect(loadSecrets({ SLACK_API_URL: 'http://127.0.0.1:1234/api' }).slackApiUrl).toBe('http://127.0.0.1:1234/api/');
  });

  it.each([
    ['PORT', '0'],
    ['PORT', '65536'],
    ['PORT', 'http'],
    ['HOST', 'http://0.0.0.0'],
    ['HOST', 'a b'],
    ['SLACK_API_URL', 'not a url'],
    ['SLACK_API_URL', 'ftp://x/api/'],
    ['LOG_LEVEL', 'loud'],
  ])('refuses %s=%s without echoing the value', (name, value) => {
    let err: unknown;
    try {
      loadSecrets({ [name]: value, SLACK_BOT_TOKEN: 'xoxb-secret' });
    } catch (e) {
      err = e;
    }
    expect(isSwitchyardError(err, 'E_CONFIG')).toBe(true);
    if (!isSwitchyardError(err)) return;
    expect(err.details).toHaveLength(1);
    expect(err.details[0]).toMatch(new RegExp(`^${name}: `));
    expect(err.details.join(' ')).not.toContain('xoxb-secret');
  });
});
