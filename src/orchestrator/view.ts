import type { ManagedContainer, PortBinding } from '../adapters/docker/types.js';
import type { ServiceConfig } from '../config/schema.js';
import type { Instance } from '../core/registry.js';
import type { OrchestratorDeps } from './deps.js';
import { joinHostPort } from './naming.js';
import { isOwned } from './ownership.js';

/** One instance as the engine and the registry see it together. */
export interface InstanceView {
  instance: string;
  /** Every container of ours labelled with this instance (normally one; a replaced run's leftovers too). */
  containers: ManagedContainer[];
  /** The running one, if any. */
  running?: ManagedContainer;
  /** Where the running container is published, as it would be registered. */
  address?: string;
  registration?: Instance;
}

export interface ServiceView {
  service: string;
  /** Instances that have at least one container of ours. */
  managed: InstanceView[];
  /** Registrations marked as ours whose container is gone altogether. */
  orphaned: Instance[];
  /** Every registration of the service, ours or not (never touched unless in `managed`/`orphaned`). */
  registrations: Instance[];
}

const WILDCARD = new Set(['', '0.0.0.0', '::']);

/** The address a container's published port is registered under (as launchContainer computes it). */
export function publishedAddress(ports: readonly PortBinding[], svc: ServiceConfig | undefined): string | undefined {
  const tcp = ports.filter((p) => p.protocol === 'tcp' && p.hostPort > 0 && (svc === undefined || p.containerPort === svc.port));
  // A wildcard bind is listed once per address family; the IPv4 entry is the one we registered.
  const binding = tcp.find((p) => !p.hostIp.includes(':')) ?? tcp[0];
  if (!binding) return undefined;
  const host = WILDCARD.has(binding.hostIp) ? (svc?.hostIp ?? '127.0.0.1') : binding.hostIp;
  return joinHostPort(host, binding.hostPort);
}

export function buildServiceView(
  service: string,
  containers: readonly ManagedContainer[],
  registrations: readonly Instance[],
  owner: string,
  svc: ServiceConfig | undefined,
): ServiceView {
  const byInstance = new Map<string, InstanceView>();
  for (const c of containers) {
    if (c.service !== service || c.owner !== owner) continue;
    let iv = byInstance.get(c.instance);
    if (!iv) byInstance.set(c.instance, (iv = { instance: c.instance, containers: [] }));
    iv.containers.push(c);
    // Two running containers for one instance should not happen; the newest one wins.
    if (c.status === 'running' && (!iv.running || c.created > iv.running.created)) iv.running = c;
  }
  const orphaned: Instance[] = [];
  for (const r of registrations) {
    if (r.service !== service) continue;
    const iv = byInstance.get(r.instance);
    if (iv) iv.registration = r;
    else if (isOwned(r.state?.by, owner)) orphaned.push(r);
  }
  for (const iv of byInstance.values()) {
    if (!iv.running) continue;
    const address = publishedAddress(iv.running.ports, svc);
    if (address) iv.address = address;
  }
  return {
    service,
    managed: [...byInstance.values()].sort((a, b) => a.instance.localeCompare(b.instance)),
    orphaned,
    registrations: registrations.filter((r) => r.service === service),
  };
}

export async function serviceView(deps: OrchestratorDeps, service: string): Promise<ServiceView> {
  const [containers, listing] = await Promise.all([deps.engine.listManaged(deps.settings.owner, service), deps.registry.list(service)]);
  return buildServiceView(service, containers, listing.instances, deps.settings.owner, deps.config.services[service]);
}
