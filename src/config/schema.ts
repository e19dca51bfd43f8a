import { z } from 'zod';
import { SwitchyardError } from '../core/errors.js';
import { FEED_KINDS, QUIET_KINDS } from '../feed/routes.js';
import { address, NAME_RE, parseDuration, parseHostPort } from '../core/names.js';

const durationMs = z.string().transform((s, ctx) => {
  const ms = parseDuration(s);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not a duration (write 500ms, 30s, 2m)` });
    return z.NEVER;
  }
  return ms;
});

/** "9001" or "9001-9010": host ports a service's containers are published on. */
const portRange = z
  .string()
  .regex(/^\d{1,5}(-\d{1,5})?$/, 'must be a port or a range like 9001-9010')
  .transform((s, ctx) => {
    const [lo, hi = lo] = s.split('-').map(Number) as [number, number?];
    if (lo < 1 || hi > 65535 || lo > hi) {
      ctx.addIssue({ code: 'custom', message: `"${s}" is not a port range within 1-65535 (low-high)` });
      return z.NEVER;
    }
    return { from: lo, to: hi };
  });

/** etcd.commandTimeout when not set. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 3000;

export const DEFAULT_HISTORY_RETENTION_MS = 7 * 86_400_000;
export const DEFAULT_HISTORY_MAX_ENTRIES = 100_000;

const channelId = z.string().regex(/^[CG][A-Z0-9]{2,}$/, 'must be a Slack channel ID (C… or G…), not a name');

const serviceConfig = z
  .object({
    /** Without one the service is routed only (instances registered by hand or by other tools): not scalable. */
    image: z.string().min(1).optional(),
    /** Container port; required with image. */
    port: z.number().int().min(1).max(65535).optional(),
    /** Address registered for published ports. */
    hostIp: z.string().default('127.0.0.1'),
    cmd: z.array(z.string()).optional(),
    env: z.record(z.string(), z.string()).default({}),
    mode: z.enum(['http', 'tcp']).default('http'),
    /** Where HAProxy's frontend for this service binds, e.g. 127.0.0.1:8080. */
    listen: address.optional(),
    maxReplicas: z.number().int().min(0).max(1000).default(20),
    restart: z.enum(['no', 'always']).default('no'),
    /** What runs its instances: containers on `docker.host`, or a Swarm service when that engine is a Swarm manager. */
    backend: z.enum(['docker', 'swarm']).default('docker'),
    /** Host ports to publish on, e.g. "9001-9010" (default: any free port Docker picks). */
    hostPorts: portRange.optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.image !== undefined && s.port === undefined)
      ctx.addIssue({ code: 'custom', path: ['port'], message: 'required with image: the container port to publish' });
  });

const PACKAGE_RE = /^(@[a-z0-9-~][a-z0-9-._~]*\/)?[a-z0-9-~][a-z0-9-._~]*(\/\S*)?$/;

/** `./plugins/x.js` (relative to this file), an absolute path, or a package name (npm spelling, optional subpath). */
const moduleSpecifier = z
  .string()
  .trim()
  .min(1, { message: 'must name a module: a path such as ./plugins/maintenance.js, or a package name', abort: true })
  .refine((s) => s.startsWith('.') || s.startsWith('/') || PACKAGE_RE.test(s), {
    message: 'must be a path starting with ./, ../ or /, or an npm package name (lower case, e.g. @acme/switchyard-flush)',
  });

/**
 * One `plugins:` entry: a bare module specifier, or `{ module, options }`. Options stay
 * unknown here: each plugin validates its own (`api.options(schema)`) and the loader maps
 * its errors back to this file's lines.
 */
const pluginEntry = z.preprocess(
  (v) => (typeof v === 'string' ? { module: v } : v),
  z
    .object({ module: moduleSpecifier, options: z.unknown().optional() }, { error: 'must be a module path or package name, or { module, options }' })
    .strict()
    .transform((e): PluginEntry => e),
);

export interface PluginEntry {
  module: string;
  options?: unknown;
  /** Set by loadConfig: the file the entry is written in (paths resolve from it, errors point into it) and its index. */
  from?: { file: string; index: number };
}

export const configSchema = z
  .object({
    etcd: z
      .object({
        endpoints: z.array(z.string().url()).min(1).default(['http://127.0.0.1:2379']),
        tls: z.object({ ca: z.string().optional(), cert: z.string().optional(), key: z.string().optional() }).strict().optional(),
        /** The password comes from ETCD_PASSWORD, never from this file. */
        auth: z
          .object({ username: z.string().min(1) })
          .strict()
          .optional(),
        /**
         * One deadline per registry operation, across its retries and endpoints: a command
         * during an outage fails after this long with the endpoints it tried.
         */
        commandTimeout: durationMs.refine((ms) => ms >= 100 && ms <= 60_000, 'must be between 100ms and 60s').default(DEFAULT_COMMAND_TIMEOUT_MS),
      })
      .strict(),
    registry: z
      .object({
        prefix: z
          .string()
          .regex(/^\/[^\s]*[^/\s]$/, 'must start with / and not end with /')
          .default('/services'),
        switchyardPrefix: z
          .string()
          .regex(/^\/[^\s]*[^/\s]$/, 'must start with / and not end with /')
          .default('/switchyard'),
      })
      .strict()
      .default({ prefix: '/services', switchyardPrefix: '/switchyard' }),
    acl: z
      .object({ path: z.string().default('./acl.yaml') })
      .strict()
      .default({ path: './acl.yaml' }),
    slack: z
      .object({
        feedChannel: channelId.optional(),
        /** Routed feeds: each change goes to every feed it matches, each channel paced on its own. */
        feeds: z
          .array(
            z
              .object({
                channel: channelId,
                services: z
                  .array(z.string().regex(/^[a-z0-9_.*?-]+$/, 'must be a service name or a glob (* and ?)'))
                  .min(1)
                  .default(['*']),
                kinds: z
                  .array(z.enum(FEED_KINDS))
                  .min(1)
                  .default([...FEED_KINDS]),
                quiet: z.array(z.enum(QUIET_KINDS)).default([]),
              })
              .strict(),
          )
          .optional(),
      })
      .strict()
      .superRefine((s, ctx) => {
        const seen = new Set<string>();
        for (const [i, f] of (s.feeds ?? []).entries()) {
          if (seen.has(f.channel)) ctx.addIssue({ code: 'custom', path: ['feeds', i, 'channel'], message: `${f.channel} has two feeds: merge them into one` });
          seen.add(f.channel);
        }
      })
      .optional(),
    haproxy: z
      .object({
        config: z.string(),
        adminSocket: z.string(),
        masterSocket: z.string(),
        template: z.string().optional(),
        binary: z.string().default('haproxy'),
        agentId: z.string().regex(NAME_RE).optional(),
      })
      .strict()
      .optional(),
    docker: z
      .object({
        host: z.string().optional(),
        // Orchestration settings (scale, death detection, reconcile); defaults live in
        // src/orchestrator/settings.ts so a `docker:` made from DOCKER_HOST alone is complete.
        /** Value of the switchyard.owner label; default derived from registry.switchyardPrefix. */
        owner: z
          .string()
          .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$/, 'must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$')
          .optional(),
        reconcileInterval: durationMs.optional(),
        startTimeout: durationMs.optional(),
        stopGrace: durationMs.optional(),
        drainTimeout: durationMs.optional(),
        lockTtl: durationMs.optional(),
        lockWait: durationMs.optional(),
      })
      .strict()
      .optional(),
    /** `switchyard watch` (the registrator role, one per Docker host). */
    watch: z
      .object({
        /** Address registered for published ports: required, never guessed from interfaces. */
        advertise: z.string().superRefine((s, ctx) => {
          const r = parseHostPort(s.includes(':') ? `[${s}]:1` : `${s}:1`);
          if (typeof r === 'string') ctx.addIssue({ code: 'custom', message: `must be this host's IP address or DNS name without a port: ${r}` });
        }),
        /** Lease TTL of its registrations: how long they outlive a crashed watcher or host. */
        ttl: durationMs.refine((ms) => ms >= 1000 && ms <= 300_000, 'must be between 1s and 5m').default(10_000),
        /** Host ID in the feed and status (`watch@<host>`); default: the machine's hostname. */
        host: z.string().regex(NAME_RE, 'must match ^[a-z0-9][a-z0-9_.-]{0,62}$').optional(),
      })
      .strict()
      .optional(),
    services: z.record(z.string().regex(NAME_RE, 'service names must match ^[a-z0-9][a-z0-9_.-]{0,62}$'), serviceConfig).default({}),
    /** The change history `history` lists (kept in etcd by the elected recorder in `serve`). */
    history: z
      .object({
        retention: durationMs.refine((ms) => ms >= 1000, 'must be at least 1s').default(DEFAULT_HISTORY_RETENTION_MS),
        maxEntries: z.number().int().min(100).max(10_000_000).default(DEFAULT_HISTORY_MAX_ENTRIES),
      })
      .strict()
      .default({ retention: DEFAULT_HISTORY_RETENTION_MS, maxEntries: DEFAULT_HISTORY_MAX_ENTRIES }),
    /** External plugins, loaded in this order after the built-in ones. */
    plugins: z.array(pluginEntry).default([]),
  })
  .strict();

export type Config = z.output<typeof configSchema>;
export type ServiceConfig = z.output<typeof serviceConfig>;

/** A service `scale` can run containers for: one with an image. */
export type ScalableService = ServiceConfig & { image: string; port: number };

/** The service as something to run containers for; a coded refusal naming why for a routed-only one. */
export function scalableService(name: string, svc: ServiceConfig): ScalableService {
  if (svc.image === undefined || svc.port === undefined) {
    throw new SwitchyardError(
      'E_BAD_ARGS',
      `${name} has no image configured: it is routed only (its instances are registered by hand or by other tools), so it cannot be scaled`,
      {
        details: [`to scale it, set services.${name}.image and services.${name}.port in switchyard.yaml`],
      },
    );
  }
  return { ...svc, image: svc.image, port: svc.port };
}
