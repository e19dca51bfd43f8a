/**
 * The HAProxy model: what the config should contain, built from a registry listing and
 * switchyard.yaml. Every name and address in it has passed NAME_RE / parseHostPort, so the
 * template can print fields verbatim. Pure.
 */
import type { Config, ServiceConfig } from '../../config/schema.js';
import { SwitchyardError } from '../../core/errors.js';
import { NAME_RE, parseHostPort } from '../../core/names.js';
import { DEFAULT_WEIGHT, INSTANCE_STATES, isWeight, MAX_WEIGHT, type InstanceState, type Listing, type RegistryProblem } from '../../core/registry.js';
import { formatAddress } from './runtime.js';

export { DEFAULT_WEIGHT, MAX_WEIGHT };

export interface ModelServer {
  service: string;
  name: string;
  host: string;
  port: number;
  /** host:port as HAProxy takes it (IPv6 bracketed). */
  address: string;
  /** True when host is a DNS name: HAProxy 2.6 cannot resolve it for a server added at runtime. */
  dns: boolean;
  state: InstanceState;
  weight: number;
  /** The weight written in haproxy.cfg: 0 while draining, so a fresh start keeps it out of rotation. */
  configWeight: number;
  /** Rendered as `disabled`: starts in maintenance. */
  maint: boolean;
  drain: boolean;
  /** The registry key and value it came from (the confd view). */
  key: string;
  value: string;
}

export interface ModelFrontend {
  name: string;
  /** host:port to bind. */
  bind: string;
}

export interface ModelService {
  name: string;
  backend: string;
  frontend: ModelFrontend | null;
  listen: string | null;
  mode: 'http' | 'tcp';
  /** Must stay a dynamic algorithm: runtime `add server` refuses static-rr and non-consistent hashes. */
  balance: 'roundrobin' | 'leastconn';
  /** Declared in switchyard.yaml (as opposed to only present in the registry). */
  configured: boolean;
  servers: ModelServer[];
}

/** A raw registry key, for confd-style templates: `server {{base}} {{value}} check`. */
export interface ModelKey {
  key: string;
  /** Last path segment (the instance name). */
  base: string;
  /** Parent directory (the service's key prefix). */
  dir: string;
  value: string;
  service: string;
}

export interface ModelGlobal {
  adminSocket: string;
  stateFile: string;
  /** Health-check interval of every server, ms. */
  checkInterMs: number;
}

export interface HaproxyModel {
  global: ModelGlobal;
  services: ModelService[];
  /** All servers of all services, flattened. */
  instances: ModelServer[];
  keys: ModelKey[];
  /** Registry keys left out because their name or value is invalid. */
  problems: RegistryProblem[];
}

export interface ModelOptions {
  servicesPrefix: string;
  /** Defaults to `<config>.state` beside haproxy.cfg. */
  stateFile?: string;
  checkInterMs?: number;
}

/** The backend of a service is named after it: the runtime API and `status` address it by that name. */
export function backendName(service: string): string {
  return service;
}

export function frontendName(service: string): string {
  return `fe_${service}`;
}

export function defaultStateFile(configPath: string): string {
  return `${configPath}.state`;
}

/** Paths are printed unquoted into haproxy.cfg, where whitespace, quotes and # mean something. */
function checkPath(what: string, path: string): void {
  if (!/^[^\s"'#\\]+$/.test(path)) {
    throw new SwitchyardError('E_CONFIG', `${what} ${JSON.stringify(path)} cannot go into haproxy.cfg: no spaces, quotes, # or backslashes`);
  }
}

const byName = <T extends { name: string }>(a: T, b: T) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** Build the model. Invalid entries become problems; nothing unvalidated gets through. */
export function buildModel(
  listing: Listing,
  config: { services: Record<string, ServiceConfig>; haproxy: NonNullable<Config['haproxy']> },
  opts: ModelOptions,
): HaproxyModel {
  const problems: RegistryProblem[] = [...listing.problems];
  const services = new Map<string, ModelService>();
  const svc = (name: string, cfg: ServiceConfig | undefined): ModelService => {
    let s = services.get(name);
    if (!s) {
      s = {
        name,
        backend: backendName(name),
        frontend: cfg?.listen ? { name: frontendName(name), bind: cfg.listen } : null,
        listen: cfg?.listen ?? null,
        mode: cfg?.mode ?? 'http',
        balance: 'roundrobin',
        configured: cfg !== undefined,
        servers: [],
      };
      services.set(name, s);
    }
    return s;
  };
  for (const [name, cfg] of Object.entries(config.services)) {
    if (!NAME_RE.test(name)) {
      problems.push({ key: `services.${name}`, problem: `service name must match ${NAME_RE.source}` });
      continue;
    }
    if (cfg.listen !== undefined && typeof parseHostPort(cfg.listen) === 'string') {
      problems.push({ key: `services.${name}.listen`, problem: `"${cfg.listen}" is not host:port` });
      continue;
    }
    svc(name, cfg);
  }
  const keys: ModelKey[] = [];
  const dir = (service: string) => `${opts.servicesPrefix}/${service}`;
  for (const inst of listing.instances) {
    const key = `${dir(inst.service)}/${inst.instance}`;
    // The listing is validated by the registry adapter; re-checked because this is the
    // last gate before haproxy.cfg and the listing may come from elsewhere (tests, fakes).
    if (!NAME_RE.test(inst.service) || !NAME_RE.test(inst.instance)) {
      problems.push({ key, problem: `invalid service or instance name` });
      continue;
    }
    const hp = parseHostPort(inst.address);
    if (typeof hp === 'string') {
      problems.push({ key, problem: `value ${JSON.stringify(inst.address)} is not host:port (${hp})` });
      continue;
    }
    const state = inst.state?.state ?? 'ready';
    const weight = inst.state?.weight ?? DEFAULT_WEIGHT;
    if (!INSTANCE_STATES.includes(state) || !isWeight(weight)) {
      problems.push({ key, problem: `state ${JSON.stringify(inst.state)} is invalid (state ready|drain|maint, weight 0-${MAX_WEIGHT})` });
      continue;
    }
    const dns = !/^[\d.]+$/.test(hp.host) && !hp.host.includes(':');
    const address = formatAddress(hp.host, hp.port);
    svc(inst.service, config.services[inst.service]).servers.push({
      service: inst.service,
      name: inst.instance,
      host: hp.host,
      port: hp.port,
      address,
      dns,
      state,
      weight,
      configWeight: state === 'drain' ? 0 : weight,
      maint: state === 'maint',
      drain: state === 'drain',
      key,
      value: inst.address,
    });
    keys.push({ key, base: inst.instance, dir: dir(inst.service), value: inst.address, service: inst.service });
  }
  const stateFile = opts.stateFile ?? defaultStateFile(config.haproxy.config);
  checkPath('haproxy.adminSocket', config.haproxy.adminSocket);
  checkPath('server-state-file', stateFile);
  const list = [...services.values()].sort(byName);
  for (const s of list) s.servers.sort(byName);
  keys.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return {
    global: {
      adminSocket: config.haproxy.adminSocket,
      stateFile,
      checkInterMs: opts.checkInterMs ?? 2000,
    },
    services: list,
    instances: list.flatMap((s) => s.servers),
    keys,
    problems,
  };
}

export function findServer(model: HaproxyModel, backend: string, name: string): ModelServer | undefined {
  return model.services.find((s) => s.backend === backend)?.servers.find((x) => x.name === name);
}
