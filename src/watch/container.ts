/**
 * What one container should look like in the registry, decided from its labels and state
 * alone (no I/O), so every rule is unit-testable. Docker's inspect body is validated here:
 * the watcher needs labels, which the engine adapter's ContainerInfo does not carry.
 */
import { z } from 'zod';
import { LABEL_INSTANCE, LABEL_OWNER } from '../adapters/docker/types.js';
import type { InstanceState } from '../core/registry.js';
import { isWeight } from '../core/registry.js';
import { NAME_RE } from '../core/names.js';

export const LABEL_REGISTER = 'switchyard.register';
export const LABEL_PORT = 'switchyard.port';
export const LABEL_WEIGHT = 'switchyard.weight';
export { LABEL_INSTANCE, LABEL_OWNER };

const binding = z.object({ HostIp: z.string().default(''), HostPort: z.string().default('') });

export const inspectSchema = z.object({
  Id: z.string().min(1),
  Name: z.string().default(''),
  State: z.object({
    Status: z.string(),
    Running: z.boolean().default(false),
    Paused: z.boolean().default(false),
    Health: z.object({ Status: z.string() }).nullish(),
  }),
  Config: z.object({ Labels: z.record(z.string(), z.string()).nullish() }),
  NetworkSettings: z.object({ Ports: z.record(z.string(), z.array(binding).nullable()).nullish() }).nullish(),
});

export type InspectedContainer = z.output<typeof inspectSchema>;

/** Where a container should be: registered (ready or maint), or nowhere. */
export type Desired =
  | { kind: 'register'; service: string; instance: string; port: number; weight?: number; state: InstanceState; why: string }
  | { kind: 'absent'; service?: string; instance?: string; why: string }
  /** Not ours to write: unlabelled, or owned by the orchestrator. */
  | { kind: 'ignore'; why: string };

/** `/Web_App.1` → `web_app.1`: a container name as an instance name. */
export function instanceFromName(name: string): string | undefined {
  const s = name
    .replace(/^\//, '')
    .toLowerCase()
    .replace(/[^a-z0-9_.-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 63);
  return NAME_RE.test(s) ? s : undefined;
}

function publishedPort(c: InspectedContainer, wanted: string | undefined): number | string {
  const ports = Object.entries(c.NetworkSettings?.Ports ?? {}).filter(([k, v]) => k.endsWith('/tcp') && (v ?? []).some((b) => /^\d+$/.test(b.HostPort)));
  let entry: (typeof ports)[number] | undefined;
  if (wanted !== undefined) {
    if (!/^\d{1,5}$/.test(wanted)) return `${LABEL_PORT}=${JSON.stringify(wanted)} is not a port number`;
    entry = ports.find(([k]) => k === `${wanted}/tcp`);
    if (!entry) return `container port ${wanted}/tcp (${LABEL_PORT}) is not published on the host`;
  } else if (ports.length === 1) {
    entry = ports[0];
  } else {
    return ports.length === 0 ? 'no tcp port is published on the host (docker run -p)' : `several ports are published; say which with ${LABEL_PORT}`;
  }
  // Prefer an IPv4 binding: Docker publishes on 0.0.0.0 and :: with the same port anyway.
  const bindings = (entry![1] ?? []).filter((b) => /^\d+$/.test(b.HostPort));
  const chosen = bindings.find((b) => !b.HostIp.includes(':')) ?? bindings[0]!;
  return Number(chosen.HostPort);
}

/** The registration a container asks for, or why it gets none. */
export function desiredFor(c: InspectedContainer): Desired {
  const labels = c.Config.Labels ?? {};
  const service = labels[LABEL_REGISTER];
  if (service === undefined) return { kind: 'ignore', why: `no ${LABEL_REGISTER} label` };
  // One owner per container: `scale` registers its own, and two writers for one key would fight.
  if (labels[LABEL_OWNER] !== undefined) return { kind: 'ignore', why: `managed by switchyard scale (${LABEL_OWNER}=${labels[LABEL_OWNER]})` };
  if (!NAME_RE.test(service)) return { kind: 'ignore', why: `${LABEL_REGISTER}=${JSON.stringify(service)} is not a service name (${NAME_RE.source})` };
  const instance = labels[LABEL_INSTANCE] ?? instanceFromName(c.Name);
  if (instance === undefined || !NAME_RE.test(instance)) {
    return { kind: 'ignore', why: `instance name ${JSON.stringify(instance ?? c.Name)} is invalid; set ${LABEL_INSTANCE}` };
  }
  const base = { service, instance };
  let weight: number | undefined;
  if (labels[LABEL_WEIGHT] !== undefined) {
    const w = Number(labels[LABEL_WEIGHT]);
    if (!/^\d+$/.test(labels[LABEL_WEIGHT]) || !isWeight(w))
      return { kind: 'ignore', why: `${LABEL_WEIGHT}=${JSON.stringify(labels[LABEL_WEIGHT])} is not a weight 0-256` };
    weight = w;
  }
  const status = c.State.Status;
  if (status !== 'running' && status !== 'paused') return { ...base, kind: 'absent', why: `container ${status}` };
  const port = publishedPort(c, labels[LABEL_PORT]);
  if (typeof port === 'string') return { kind: 'ignore', why: port };
  const reg = { ...base, kind: 'register' as const, port, ...(weight !== undefined ? { weight } : {}) };
  if (status === 'paused' || c.State.Paused) return { ...reg, state: 'maint', why: 'container paused' };
  const health = c.State.Health?.Status;
  if (health === 'starting') return { ...base, kind: 'absent', why: 'container not healthy yet' };
  if (health === 'unhealthy') return { ...reg, state: 'maint', why: 'container unhealthy' };
  return { ...reg, state: 'ready', why: health === 'healthy' ? 'container healthy' : 'container running' };
}
