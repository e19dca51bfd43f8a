import { isIP } from 'node:net';
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { SwitchyardError } from '../core/errors.js';
import { loadYamlFile } from '../core/yaml-file.js';
import { configSchema, type Config } from './schema.js';

type Env = Record<string, string | undefined>;

/** `--config` beats `SWITCHYARD_CONFIG` beats `./switchyard.yaml`. Empty values count as unset. */
export function resolveConfigPath(flag: string | undefined, env: Env = process.env): string {
  return nonEmpty(flag) ?? nonEmpty(env.SWITCHYARD_CONFIG) ?? './switchyard.yaml';
}

/**
 * Read, validate and complete switchyard.yaml: file errors are `file:line: message`; then the
 * environment overrides (ETCD_ENDPOINTS, DOCKER_HOST) are applied and relative paths are
 * resolved against the file's directory, so the bot behaves the same from any working directory.
 */
export async function loadConfig(path: string, env: Env = process.env): Promise<Config> {
  const result = await loadYamlFile(path, configSchema);
  if (!result.ok && result.missing) throw missingConfig(path);
  if (!result.ok) throw new SwitchyardError('E_CONFIG', `invalid configuration in ${path}`, { details: result.errors });
  const config = resolvePaths(applyEnv(result.value, env), dirname(resolve(path)));
  // Plugin modules resolve from this file's directory, and their options' errors point into it.
  return { ...config, plugins: config.plugins.map((entry, index) => ({ ...entry, from: { file: path, index } })) };
}

// A first run usually ends here: say where we looked and the command that gets past it.
function missingConfig(path: string): SwitchyardError {
  return new SwitchyardError('E_CONFIG', `no configuration file at ${path}`, {
    details: [
      `looked for ${resolve(path)} (the path comes from --config, else $SWITCHYARD_CONFIG, else ./switchyard.yaml)`,
      `to start from the documented example: cp ${shellWord(exampleConfig())} ${shellWord(path)}`,
    ],
  });
}

/** The example shipped with the package; src/ (via tsx) and dist/src/ sit at different depths. */
function exampleConfig(): string {
  for (const rel of ['../../switchyard.example.yaml', '../../../switchyard.example.yaml']) {
    const file = fileURLToPath(new URL(rel, import.meta.url));
    if (!existsSync(file)) continue;
    const short = relative(process.cwd(), file);
    return short && !short.startsWith('..') && !isAbsolute(short) ? short : file;
  }
  return 'switchyard.example.yaml';
}

/** Quoted only when the shell would split or expand it, so the command reads as typed. */
function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function applyEnv(config: Config, env: Env): Config {
  const out: Config = { ...config };
  const endpoints = nonEmpty(env.ETCD_ENDPOINTS);
  if (endpoints !== undefined) out.etcd = { ...config.etcd, endpoints: parseEndpoints(endpoints) };
  const dockerHost = nonEmpty(env.DOCKER_HOST);
  if (dockerHost !== undefined) out.docker = { ...config.docker, host: dockerHost };
  return out;
}

function parseEndpoints(value: string): string[] {
  const endpoints = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const bad = endpoints.filter((e) => !isHttpUrl(e));
  if (endpoints.length === 0 || bad.length > 0) {
    const details = endpoints.length === 0 ? ['ETCD_ENDPOINTS: no endpoint given'] : bad.map((e) => `ETCD_ENDPOINTS: "${e}" is not an http(s) URL`);
    throw new SwitchyardError('E_CONFIG', 'invalid ETCD_ENDPOINTS (comma-separated URLs, e.g. http://127.0.0.1:2379)', { details });
  }
  return endpoints;
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}

function resolvePaths(config: Config, base: string): Config {
  const file = (p: string) => resolve(base, p);
  // HAProxy sockets may be addresses (`ipv4@127.0.0.1:9999`, `127.0.0.1:9999`), not paths.
  const socket = (p: string) => (isAbsolute(p) || /^[a-z0-9]+@/i.test(p) || /:\d+$/.test(p) ? p : resolve(base, p));
  // A bare binary name is looked up on PATH; only something path-like is relative to the file.
  const binary = (p: string) => (p.includes('/') ? resolve(base, p) : p);
  const out: Config = { ...config, acl: { ...config.acl, path: file(config.acl.path) } };
  if (config.haproxy) {
    const h = config.haproxy;
    out.haproxy = {
      ...h,
      config: file(h.config),
      adminSocket: socket(h.adminSocket),
      masterSocket: socket(h.masterSocket),
      binary: binary(h.binary),
      ...(h.template === undefined ? {} : { template: file(h.template) }),
    };
  }
  const tls = config.etcd.tls;
  if (tls) {
    out.etcd = {
      ...out.etcd,
      tls: {
        ...(tls.ca === undefined ? {} : { ca: file(tls.ca) }),
        ...(tls.cert === undefined ? {} : { cert: file(tls.cert) }),
        ...(tls.key === undefined ? {} : { key: file(tls.key) }),
      },
    };
  }
  return out;
}

function nonEmpty(s: string | undefined): string | undefined {
  const t = s?.trim();
  return t ? t : undefined;
}

/** Optional secret: trimmed (values read with `$(cat file)` carry a newline); empty means unset. */
const optionalText = z
  .string()
  .optional()
  .transform((s) => nonEmpty(s));

const HOSTNAME_RE = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

// Messages never echo values: these variables hold secrets.
const secretsSchema = z.object({
  SLACK_BOT_TOKEN: optionalText,
  SLACK_SIGNING_SECRET: optionalText,
  SLACK_APP_TOKEN: optionalText,
  SLACK_API_URL: optionalText.pipe(
    z
      .string()
      .refine(isHttpUrl, 'must be an http(s) URL, e.g. http://127.0.0.1:1234/api/')
      // @slack/web-api joins method names onto the base URL, so it must end with "/".
      .transform((s) => (s.endsWith('/') ? s : `${s}/`))
      .optional(),
  ),
  // Where serve listens: all interfaces by default (a container's port mapping needs it).
  HOST: optionalText.pipe(
    z
      .string()
      .refine((s) => isIP(s) !== 0 || HOSTNAME_RE.test(s), 'must be an IP address or a host name, e.g. 0.0.0.0 or 127.0.0.1')
      .default('0.0.0.0'),
  ),
  PORT: optionalText.pipe(
    z
      .string()
      .regex(/^\d{1,5}$/, 'must be a port number 1-65535')
      .transform(Number)
      .pipe(z.number().int().min(1, 'must be a port number 1-65535').max(65535, 'must be a port number 1-65535'))
      .default(3000),
  ),
  ETCD_PASSWORD: optionalText,
  LOG_LEVEL: optionalText.pipe(z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).optional()),
});

export interface Secrets {
  slackBotToken?: string;
  slackSigningSecret?: string;
  slackAppToken?: string;
  /** Always ends with "/". */
  slackApiUrl?: string;
  /** HOST: the address serve listens on. Default 0.0.0.0. */
  host: string;
  port: number;
  etcdPassword?: string;
  logLevel?: (typeof LOG_LEVELS)[number];
}

/** Secrets and process settings come from the environment only, never from switchyard.yaml. */
export function loadSecrets(env: Env = process.env): Secrets {
  const parsed = secretsSchema.safeParse(env);
  if (!parsed.success) {
    const details = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new SwitchyardError('E_CONFIG', 'invalid environment', { details });
  }
  const e = parsed.data;
  return dropUndefined({
    slackBotToken: e.SLACK_BOT_TOKEN,
    slackSigningSecret: e.SLACK_SIGNING_SECRET,
    slackAppToken: e.SLACK_APP_TOKEN,
    slackApiUrl: e.SLACK_API_URL,
    host: e.HOST,
    port: e.PORT,
    etcdPassword: e.ETCD_PASSWORD,
    logLevel: e.LOG_LEVEL,
  });
}

/** Unset secrets are absent keys, so `'slackAppToken' in secrets` means it was given. */
function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
