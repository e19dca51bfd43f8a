import { z } from 'zod';
import { SwitchyardError } from '../../core/errors.js';
import {
  LABEL_INSTANCE,
  LABEL_OWNER,
  LABEL_SERVICE,
  type ContainerInfo,
  type ContainerStatus,
  type EngineEvent,
  type EngineEventAction,
  type HealthStatus,
  type ManagedContainer,
  type ManagedLabels,
  type PortBinding,
} from './types.js';

/**
 * Docker API responses are validated here, at the boundary, and turned into our own
 * shapes: the rest of switchyard never sees Docker's PascalCase or its zero dates. Only
 * the fields we use are declared; everything else is stripped.
 */

const labels = z
  .record(z.string(), z.string())
  .nullish()
  .transform((l) => l ?? {});
const status = z.enum(['created', 'running', 'paused', 'restarting', 'removing', 'exited', 'dead']);

// Docker reports "never" as Go's zero time.
const dockerDate = z.string().transform((s) => (s === '' || s.startsWith('0001-01-01') ? undefined : new Date(s)));

const inspectSchema = z.object({
  Id: z.string(),
  Name: z.string(),
  Image: z.string(),
  RestartCount: z.number().int(),
  State: z.object({
    Status: status,
    Running: z.boolean(),
    ExitCode: z.number().int(),
    OOMKilled: z.boolean(),
    Error: z.string().default(''),
    StartedAt: dockerDate,
    FinishedAt: dockerDate,
    Health: z.object({ Status: z.string() }).nullish(),
  }),
  Config: z.object({
    Image: z.string(),
    Labels: labels,
    Healthcheck: z.object({ Test: z.array(z.string()).nullish() }).nullish(),
  }),
  NetworkSettings: z.object({
    Ports: z
      .record(z.string(), z.array(z.object({ HostIp: z.string(), HostPort: z.string() })).nullable())
      .nullish()
      .transform((p) => p ?? {}),
  }),
});

const summarySchema = z.array(
  z.object({
    Id: z.string(),
    Names: z
      .array(z.string())
      .nullish()
      .transform((n) => n ?? []),
    Image: z.string(),
    Created: z.number(),
    State: status,
    Status: z.string(),
    Labels: labels,
    Ports: z
      .array(z.object({ IP: z.string().optional(), PrivatePort: z.number().int(), PublicPort: z.number().int().optional(), Type: z.string() }))
      .nullish()
      .transform((p) => p ?? []),
  }),
);

const EVENT_ACTIONS = ['start', 'die', 'oom', 'kill', 'destroy'] as const satisfies readonly EngineEventAction[];

const eventSchema = z.object({
  Type: z.string(),
  Action: z.string(),
  Actor: z.object({ ID: z.string(), Attributes: labels }),
  time: z.number(),
  timeNano: z.number().optional(),
});

function invalid(what: string, error: z.ZodError): SwitchyardError {
  return new SwitchyardError('E_INTERNAL', `unexpected Docker API response for ${what}`, {
    details: error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`),
    cause: error,
  });
}

export function managedLabels(l: Record<string, string>): ManagedLabels | undefined {
  const service = l[LABEL_SERVICE];
  const instance = l[LABEL_INSTANCE];
  const owner = l[LABEL_OWNER];
  return service !== undefined && instance !== undefined && owner !== undefined ? { service, instance, owner } : undefined;
}

const stripSlash = (name: string) => name.replace(/^\//, '');

function healthOf(raw: string | undefined): HealthStatus {
  return raw === 'starting' || raw === 'healthy' || raw === 'unhealthy' ? raw : 'none';
}

export function parseInspect(body: unknown): ContainerInfo {
  const r = inspectSchema.safeParse(body);
  if (!r.success) throw invalid('container inspect', r.error);
  const c = r.data;
  const test = c.Config.Healthcheck?.Test;
  const ports: PortBinding[] = [];
  for (const [key, bindings] of Object.entries(c.NetworkSettings.Ports)) {
    const [portStr, protocol = 'tcp'] = key.split('/');
    for (const b of bindings ?? []) {
      ports.push({ containerPort: Number(portStr), protocol, hostIp: b.HostIp, hostPort: Number(b.HostPort) });
    }
  }
  return {
    id: c.Id,
    name: stripSlash(c.Name),
    image: c.Config.Image,
    imageId: c.Image,
    managed: managedLabels(c.Config.Labels),
    status: c.State.Status,
    running: c.State.Running,
    exitCode: c.State.ExitCode,
    oomKilled: c.State.OOMKilled,
    error: c.State.Error,
    startedAt: c.State.StartedAt,
    finishedAt: c.State.FinishedAt,
    restartCount: c.RestartCount,
    hasHealthcheck: (c.State.Health !== undefined && c.State.Health !== null) || (test !== undefined && test !== null && test.length > 0 && test[0] !== 'NONE'),
    health: healthOf(c.State.Health?.Status),
    ports,
  };
}

export function parseManagedList(body: unknown): ManagedContainer[] {
  const r = summarySchema.safeParse(body);
  if (!r.success) throw invalid('container list', r.error);
  const out: ManagedContainer[] = [];
  for (const c of r.data) {
    const m = managedLabels(c.Labels);
    if (!m) continue; // the label filter already excludes these; a half-labelled container is not ours either
    out.push({
      ...m,
      id: c.Id,
      name: stripSlash(c.Names[0] ?? ''),
      image: c.Image,
      status: c.State as ContainerStatus,
      statusText: c.Status,
      created: new Date(c.Created * 1000),
      ports: c.Ports.filter((p) => p.PublicPort !== undefined).map((p) => ({
        containerPort: p.PrivatePort,
        protocol: p.Type,
        hostIp: p.IP ?? '',
        hostPort: p.PublicPort ?? 0,
      })),
    });
  }
  return out;
}

/** One line of the events stream; undefined for events that are not about a managed container. */
export function parseEvent(body: unknown): (EngineEvent & { timeNano: number }) | undefined {
  const r = eventSchema.safeParse(body);
  if (!r.success) throw invalid('event', r.error);
  const e = r.data;
  const action = EVENT_ACTIONS.find((a) => a === e.Action);
  if (e.Type !== 'container' || action === undefined) return undefined;
  const attrs = e.Actor.Attributes;
  const m = managedLabels(attrs);
  if (!m) return undefined;
  const exit = attrs.exitCode;
  return {
    ...m,
    action,
    id: e.Actor.ID,
    name: attrs.name ?? '',
    image: attrs.image ?? '',
    exitCode: action === 'die' && exit !== undefined && /^-?\d+$/.test(exit) ? Number(exit) : undefined,
    signal: action === 'kill' ? attrs.signal : undefined,
    time: new Date(e.timeNano !== undefined ? e.timeNano / 1e6 : e.time * 1000),
    timeNano: e.timeNano ?? e.time * 1e9,
  };
}
