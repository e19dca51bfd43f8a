/**
 * What a command may do to the world, as plugins see it. The core owns these interfaces;
 * src/app wires implementations from the etcd, HAProxy and orchestration adapters. Plugins
 * get facades, never engines: a plugin cannot reach Docker, a socket or the etcd client.
 *
 * Registry writes made through a facade are attributed to the command that runs them (the
 * router's ambient cause: who, which command, which request), so they reach #ops and
 * `history` as that caller's, with nothing for the plugin to pass.
 */
import type { ApplyResult } from './apply-result.js';
import type { ErrorCode } from './errors.js';
import type { FeedEvent } from './feed.js';
import type { DesiredRecord, EtcdHealth, Instance, InstanceState, Listing } from './registry.js';
import type { Table } from './reply.js';
import type { WatcherRecord } from './watcher-record.js';

export interface RegistryFacade {
  list(service?: string): Promise<Listing>;
  get(service: string, instance: string): Promise<Instance | undefined>;
  /** Add or update an instance; `ttlMs` binds it to a lease the instance renews by registering again. */
  register(service: string, instance: string, address: string, opts?: { ttlMs?: number; weight?: number }): Promise<{ created: boolean }>;
  /** False when there was nothing to remove. */
  deregister(service: string, instance: string): Promise<boolean>;
  setState(service: string, instance: string, state: InstanceState): Promise<void>;
  /** Change the HAProxy weight, keeping the registration and its lease. E_NOT_FOUND when not registered. */
  setWeight(service: string, instance: string, weight: number): Promise<void>;
  getDesired(service: string): Promise<DesiredRecord | undefined>;
  health(): Promise<EtcdHealth>;
  /** The `switchyard watch` processes alive now (their records); absent on registries without them. */
  watchers?(): Promise<WatcherRecord[]>;
}

/** One server as the local HAProxy sees it. `status`: UP, DOWN, DRAIN, MAINT, NOLB, … */
export interface ServerState {
  service: string;
  instance: string;
  status: string;
  sessions: number;
  /** The effective weight HAProxy routes with. */
  weight: number;
}

/** A candidate haproxy.cfg: what the registry would produce now. */
export interface RoutingCandidate {
  text: string;
  /** Registry keys left out of it, as "key: problem". */
  skipped: string[];
  /** The template file on disk differs from the one the agent has loaded. */
  templateChanged: boolean;
}

export interface ConfigCheck {
  ok: boolean;
  /** HAProxy's own ALERT/WARNING lines. */
  lines: string[];
}

/** This process's own HAProxy agent. */
export interface LocalRouting {
  readonly agentId: string;
  /** The live haproxy.cfg path (for messages). */
  readonly configPath: string;
  servers(): Promise<ServerState[]>;
  candidate(): Promise<RoutingCandidate>;
  live(): Promise<string | undefined>;
  check(text: string): Promise<ConfigCheck>;
  /** Apply what the registry wants now; resolves with the agent's result. */
  applyNow(timeoutMs: number): Promise<ApplyResult>;
}

export type AgentReport = { agentId: string; result: ApplyResult } | { agentId: string; problem: string };

export interface Routing {
  /** Undefined when this process runs no agent (no `haproxy:` in its config). */
  readonly local?: LocalRouting;
  /** Every agent's last apply (from etcd), by agent ID; a key that does not validate as its problem. */
  agents(): Promise<AgentReport[]>;
  /** An apply result in the one line #ops uses ("haproxy lb-1: runtime +web-4 in 3 ms"). */
  describe(result: ApplyResult): string;
}

export type DrainOutcome =
  /** Out of rotation and no session left. */
  | { kind: 'drained'; waitedMs: number; agentId: string }
  /** Out of rotation; sessions still open at the timeout. */
  | { kind: 'open'; sessions: number; waitedMs: number; agentId: string }
  /** The agent did not take it out of rotation in time. */
  | { kind: 'not-applied'; status: string; sessions: number; waitedMs: number; agentId: string }
  /** Not in this bot's HAProxy. */
  | { kind: 'absent'; agentId: string }
  /** HAProxy could not be asked (restarting, gone). */
  | { kind: 'unreadable'; error: string; agentId: string }
  /** No local agent: sessions cannot be observed from here. */
  | { kind: 'unobserved'; reason: string };

/** Drain and undrain: one implementation, used by `drain`, `undrain` and scale-down. */
export interface Rotation {
  /**
   * Set the instance to drain (under the service's lock) unless it already is, then wait for
   * its sessions to end, at most `timeoutMs`. E_NOT_FOUND when not registered.
   */
  drain(
    service: string,
    instance: string,
    opts?: { timeoutMs?: number; progress?: (text: string) => void },
  ): Promise<{ already: boolean; outcome: DrainOutcome }>;
  /** Back to ready (under the lock) and wait until HAProxy has it back in rotation. */
  undrain(
    service: string,
    instance: string,
    opts?: { progress?: (text: string) => void },
  ): Promise<{ already: boolean; outcome: DrainOutcome | { kind: 'ready'; status: string; agentId: string } }>;
  /** Why removing or draining this instance needs a confirmation (the last ready one), else undefined. */
  lastReadyWarning(service: string, instance: string): Promise<string | undefined>;
}

export interface ScaledInstance {
  instance: string;
  address: string;
  state: string;
  container: string;
  status: string;
}

export interface ScaleOutcome {
  service: string;
  replicas: number;
  before: number;
  running: ScaledInstance[];
  started: string[];
  retired: string[];
  /** Instances that could not be started or stopped; `details` are the backend's own lines. */
  failed: { instance: string; code: ErrorCode; message: string; details: string[] }[];
  tidied: string[];
  problems: string[];
}

/** Extra `status` columns an orchestration backend knows (container state, image, uptime…). */
export interface StatusColumns {
  header: string[];
  cells(service: string, instance: string): string[];
  /** Services that have backend resources. */
  services: string[];
  /** Backend resources of a service whose instance is not registered. */
  unregistered(service: string, registered: ReadonlySet<string>): { instance: string; cells: string[] }[];
  problem?: string;
}

/** Backend-neutral: docker today, swarm next; nothing above it knows which runs a service. */
export interface Orchestration {
  /**
   * Refuse, with a coded error, a scale the configuration does not allow: E_NOT_FOUND for a
   * service not under `services:`, E_BAD_ARGS for a routed-only one or more than maxReplicas.
   */
  checkScale(service: string, replicas: number): void;
  /** E_UNAVAILABLE when no backend is configured (no `docker:`). */
  scale(service: string, replicas: number, opts?: { progress?: (text: string) => void }): Promise<ScaleOutcome>;
  /** Undefined when no backend is configured. */
  statusColumns(service?: string): Promise<StatusColumns | undefined>;
}

/** How a change came about: the attribution #ops shows, as one word for `history`. */
export type ChangeVia = 'command' | 'approval' | 'lease expiry' | 'container death' | 'switchyard' | 'agent' | 'outside edit' | 'gap';

/** One recorded registry change, as `history` and `status` list it. */
export interface HistoryEntry {
  /** etcd revision (decimal) of the change. */
  revision: string;
  /** When it was recorded (ISO 8601): the writer's own time for switchyard's writes. */
  at: string;
  /** The service (or `agent <id>`, `registry` for unreadable keys, '' for gaps). */
  service: string;
  subject: string;
  what: string;
  via: ChangeVia;
  /** Who: a Slack user ID, the shell's user, a component ("docker"), an agent ID. */
  by?: string;
  command?: string;
  reason?: string;
}

export interface HistoryQuery {
  service?: string;
  /** Only changes recorded at or after this time (ms since the epoch). */
  sinceMs?: number;
  limit: number;
  /** Continue an earlier page: only changes older than this revision. */
  beforeRevision?: string;
}

export interface HistoryPage {
  /** Newest first. */
  entries: HistoryEntry[];
  /** Set when older matching changes remain: pass it as `beforeRevision`. */
  next?: string;
}

/** The change history kept in etcd (retention from `history.retention`). */
export interface HistoryFacade {
  list(q: HistoryQuery): Promise<HistoryPage>;
}

/** Post to #ops (plain text; the sink escapes it). */
export interface FeedFacade {
  publish(event: FeedEvent): void;
  /**
   * Leave `service`'s changes out of the feed for `ms`: the feed of `channel` when that is a
   * feed channel, else every feed. Ends by itself. E_UNAVAILABLE where no feed is kept.
   */
  mute(service: string, ms: number, channel: string): Promise<{ scope: 'this feed' | 'every feed'; until: string }>;
  /** False when no such mute was set. */
  unmute(service: string, channel: string): Promise<boolean>;
}

export interface Facades {
  registry: RegistryFacade;
  rotation: Rotation;
  /** Present without a backend too: it then refuses to scale and adds no status columns. */
  orchestration: Orchestration;
  routing: Routing;
  feed: FeedFacade;
  /** E_UNAVAILABLE where no history is kept (a process without etcd). */
  history: HistoryFacade;
}

export type { Table };
