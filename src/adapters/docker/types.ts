/**
 * The narrow contract between switchyard and a container engine. The scale plugin, death
 * detection and reconcile only see this interface, so tests (and a future Swarm backend)
 * can swap the implementation. Every failure is a coded SwitchyardError.
 */

/** Labels every managed container carries; ownership is decided on these, never on names. */
export const LABEL_SERVICE = 'switchyard.service';
export const LABEL_INSTANCE = 'switchyard.instance';
export const LABEL_OWNER = 'switchyard.owner';

export interface ContainerSpec {
  service: string;
  instance: string;
  /** Identifies this switchyard deployment; containers with another owner are never touched. */
  owner: string;
  image: string;
  /** Container port to publish (tcp). */
  port: number;
  /** Host address the port is published on (and later registered). */
  hostIp: string;
  /** Fixed host port; omitted or 0 lets Docker pick a free one. */
  hostPort?: number;
  cmd?: readonly string[];
  env?: Readonly<Record<string, string>>;
  /** Docker container name; omitted lets Docker generate one. */
  name?: string;
}

export type ContainerStatus = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';
export type HealthStatus = 'none' | 'starting' | 'healthy' | 'unhealthy';

export interface PortBinding {
  containerPort: number;
  protocol: string;
  hostIp: string;
  hostPort: number;
}

export interface ManagedLabels {
  service: string;
  instance: string;
  owner: string;
}

/** A validated `GET /containers/{id}/json`. */
export interface ContainerInfo {
  id: string;
  name: string;
  /** Image reference the container was created from (e.g. `switchyard/web:demo`). */
  image: string;
  imageId: string;
  /** Present only when all three switchyard labels are. */
  managed: ManagedLabels | undefined;
  status: ContainerStatus;
  running: boolean;
  exitCode: number;
  oomKilled: boolean;
  /** Docker's own error for the last start attempt, '' when none. */
  error: string;
  startedAt: Date | undefined;
  finishedAt: Date | undefined;
  restartCount: number;
  /** Whether the image or container defines a HEALTHCHECK. */
  hasHealthcheck: boolean;
  health: HealthStatus;
  /** Published ports; empty until the container runs. */
  ports: PortBinding[];
}

/** A validated entry of `GET /containers/json` for a container carrying switchyard labels. */
export interface ManagedContainer extends ManagedLabels {
  id: string;
  name: string;
  image: string;
  status: ContainerStatus;
  /** Docker's human summary, e.g. "Up 3 minutes", "Exited (137) 2 seconds ago". */
  statusText: string;
  created: Date;
  ports: PortBinding[];
}

export type EngineEventAction = 'start' | 'die' | 'oom' | 'kill' | 'destroy';

export interface EngineEvent extends ManagedLabels {
  action: EngineEventAction;
  id: string;
  /** Container name without the leading slash. */
  name: string;
  image: string;
  /** `die` only. */
  exitCode: number | undefined;
  /** `kill` only: the signal sent, e.g. "9" or "SIGKILL" depending on the engine. */
  signal: string | undefined;
  time: Date;
}

export interface ReconnectInfo {
  /** Connection attempts it took (1: the first retry succeeded). */
  attempts: number;
  /** How long the stream was down. */
  downMs: number;
  /** Why it went down. */
  cause: string;
}

export interface EventStreamOptions {
  /** Only containers with this owner label; omitted: any container with a switchyard owner. */
  owner?: string;
  service?: string;
  onEvent(event: EngineEvent): void;
  /**
   * The stream is back after a loss. Events may have been missed (an engine restart drops
   * its event buffer), so the caller should reconcile.
   */
  onReconnect?(info: ReconnectInfo): void;
  /** The stream was lost; a reconnect is scheduled after `retryInMs`. */
  onDisconnect?(info: { cause: string; retryInMs: number }): void;
  /** First retry delay; doubles up to maxBackoffMs. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

export interface EventSubscription {
  /** Resolves once the first subscription is established (so no later event is missed). */
  readonly ready: Promise<void>;
  close(): void;
}

export interface WaitOptions {
  /** Give up (E_TIMEOUT) after this long; default 30 s. */
  timeoutMs?: number;
  /** Poll interval; default 50 ms. */
  pollMs?: number;
}

export interface ContainerEngine {
  /** Resolves when the engine answers; E_UNAVAILABLE otherwise. */
  ping(): Promise<void>;
  /** Create (never pull) a managed container. */
  create(spec: ContainerSpec): Promise<{ id: string }>;
  /** Start and inspect, so the caller learns the host port Docker chose. */
  start(id: string): Promise<ContainerInfo>;
  /** Running, and healthy when a HEALTHCHECK is defined; E_BAD_ARGS if it exits first. */
  waitRunning(id: string, opts?: WaitOptions): Promise<ContainerInfo>;
  /** SIGTERM, then SIGKILL after graceMs. Stopping a stopped container is not an error. */
  stop(id: string, graceMs: number): Promise<void>;
  /** `force` kills a running container first. */
  remove(id: string, opts?: { force?: boolean }): Promise<void>;
  inspect(id: string): Promise<ContainerInfo>;
  /** Containers (running or not) labelled with this owner, optionally one service. */
  listManaged(owner: string, service?: string): Promise<ManagedContainer[]>;
  events(opts: EventStreamOptions): EventSubscription;
}
