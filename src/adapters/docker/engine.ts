import Dockerode from 'dockerode';
import { z } from 'zod';
import { fail } from '../../core/errors.js';
import { createLogger, type Logger } from '../../core/log.js';
import { NAME_RE } from '../../core/names.js';
import { dockerMessage, dockerStatus, toEngineError, type DockerCallContext } from './errors.js';
import { EventStream } from './events.js';
import { dockerodeOptions, resolveDockerHost } from './host.js';
import { demuxLogs, lastLines } from './logs.js';
import { parseInspect, parseManagedList } from './schemas.js';
import {
  LABEL_INSTANCE,
  LABEL_OWNER,
  LABEL_SERVICE,
  type ContainerEngine,
  type ContainerInfo,
  type ContainerSpec,
  type EventStreamOptions,
  type EventSubscription,
  type ManagedContainer,
  type WaitOptions,
} from './types.js';
import { waitUntilRunning } from './wait.js';

export interface DockerEngineOptions {
  /** `unix:///…` or `tcp://…`; default: DOCKER_HOST, then /var/run/docker.sock. */
  host?: string;
  /** Per-request deadline (a stop adds its grace period); default 10 s. */
  requestTimeoutMs?: number;
  log?: Logger;
}

export const OWNER_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

const specSchema = z.object({
  service: z.string().regex(NAME_RE, 'service must match ^[a-z0-9][a-z0-9_.-]{0,62}$'),
  instance: z.string().regex(NAME_RE, 'instance must match ^[a-z0-9][a-z0-9_.-]{0,62}$'),
  owner: z.string().regex(OWNER_RE, 'owner must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'),
  image: z.string().min(1, 'image is empty'),
  port: z.number().int().min(1).max(65535),
  hostIp: z.string().min(1),
  hostPort: z.number().int().min(0).max(65535).optional(),
  cmd: z.array(z.string()).min(1, 'cmd, when given, needs at least the executable').optional(),
  env: z.record(z.string().regex(/^[^=\0]+$/, 'env names cannot contain = or NUL'), z.string()).optional(),
  name: z
    .string()
    .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/, 'not a valid container name')
    .optional(),
});

export class DockerEngine implements ContainerEngine {
  readonly host: string;
  /** The underlying client, for tests and tools; switchyard code uses the interface. */
  readonly docker: Dockerode;
  private readonly timeoutMs: number;
  private readonly log: Logger;

  constructor(opts: DockerEngineOptions = {}) {
    this.host = opts.host ?? resolveDockerHost(undefined);
    this.docker = new Dockerode(dockerodeOptions(this.host));
    this.timeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.log = opts.log ?? createLogger();
  }

  /** Run one API call with a deadline; every Docker failure leaves here as a coded error. */
  private async call<T>(ctx: Omit<DockerCallContext, 'host'>, fn: (signal: AbortSignal) => Promise<T>, extraMs = 0): Promise<T> {
    try {
      return await fn(AbortSignal.timeout(this.timeoutMs + extraMs));
    } catch (err) {
      throw toEngineError(err, { ...ctx, host: this.host });
    }
  }

  async ping(): Promise<void> {
    // The typings omit ping's options, but dockerode honours abortSignal there like everywhere else.
    const ping = this.docker.ping.bind(this.docker) as unknown as (opts: { abortSignal: AbortSignal }) => Promise<unknown>;
    await this.call({ op: 'ping' }, (abortSignal) => ping({ abortSignal }));
  }

  async create(spec: ContainerSpec): Promise<{ id: string }> {
    const parsed = specSchema.safeParse(spec);
    if (!parsed.success) {
      fail('E_BAD_ARGS', 'invalid container spec', { details: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) });
    }
    const s = parsed.data;
    const portKey = `${s.port}/tcp`;
    const body: Dockerode.ContainerCreateOptions = {
      Image: s.image,
      Labels: { [LABEL_SERVICE]: s.service, [LABEL_INSTANCE]: s.instance, [LABEL_OWNER]: s.owner },
      Env: Object.entries(s.env ?? {}).map(([k, v]) => `${k}=${v}`),
      ExposedPorts: { [portKey]: {} },
      HostConfig: {
        // '' asks Docker for a free port; the real one is read back after start.
        PortBindings: { [portKey]: [{ HostIp: s.hostIp, HostPort: s.hostPort ? String(s.hostPort) : '' }] },
        // switchyard replaces dead instances itself (restart: always), under a new
        // instance name and registration; a Docker restart would hide the death.
        RestartPolicy: { Name: 'no' },
      },
    };
    if (s.cmd) body.Cmd = s.cmd;
    if (s.name) body.name = s.name;
    // The create endpoint never pulls (only the CLI does), so a missing image is a 404 here.
    const container = await this.call({ op: 'create', image: s.image }, (abortSignal) => this.docker.createContainer({ ...body, abortSignal }));
    return { id: container.id };
  }

  async start(id: string): Promise<ContainerInfo> {
    // No retry on a port clash: for auto-assigned ports Docker's port mapper already moves
    // on to the next port by itself, so an E_CONFLICT here is a fixed port that is taken.
    await this.call({ op: 'start', id }, async (abortSignal) => {
      try {
        await this.docker.getContainer(id).start({ abortSignal });
      } catch (err) {
        if (dockerStatus(err) !== 304) throw err; // 304: already started
      }
    });
    return this.inspect(id);
  }

  waitRunning(id: string, opts?: WaitOptions): Promise<ContainerInfo> {
    return waitUntilRunning(id, { inspect: (i) => this.inspect(i), tailLogs: (i) => this.tailLogs(i) }, opts);
  }

  async stop(id: string, graceMs: number): Promise<void> {
    const t = Math.max(0, Math.ceil(graceMs / 1000));
    await this.call(
      { op: 'stop', id },
      async (abortSignal) => {
        try {
          await this.docker.getContainer(id).stop({ t, abortSignal });
        } catch (err) {
          if (dockerStatus(err) !== 304) throw err; // 304: already stopped
        }
      },
      t * 1000,
    );
  }

  async remove(id: string, opts: { force?: boolean } = {}): Promise<void> {
    await this.call({ op: 'remove', id }, async (abortSignal) => {
      try {
        await this.docker.getContainer(id).remove({ force: opts.force ?? false, v: true, abortSignal });
      } catch (err) {
        // Someone (the engine's autoremove, a concurrent cleanup) is already removing it.
        if (dockerStatus(err) === 409 && /already in progress/i.test(dockerMessage(err))) return;
        throw err;
      }
    });
  }

  async inspect(id: string): Promise<ContainerInfo> {
    const raw: unknown = await this.call({ op: 'inspect', id }, (abortSignal) => this.docker.getContainer(id).inspect({ abortSignal }));
    return parseInspect(raw);
  }

  async listManaged(owner: string, service?: string): Promise<ManagedContainer[]> {
    const label = [`${LABEL_OWNER}=${owner}`];
    if (service !== undefined) label.push(`${LABEL_SERVICE}=${service}`);
    const raw: unknown = await this.call({ op: 'list' }, (abortSignal) => this.docker.listContainers({ all: true, filters: { label }, abortSignal }));
    // The engine filtered already; checking again keeps a lenient proxy from handing us strangers.
    return parseManagedList(raw).filter((c) => c.owner === owner && (service === undefined || c.service === service));
  }

  events(opts: EventStreamOptions): EventSubscription {
    return new EventStream(this.docker, opts, this.log);
  }

  /** Last lines of output, for error reports; a failure here must not mask the real error. */
  private async tailLogs(id: string, lines = 10): Promise<string[]> {
    try {
      const raw: unknown = await this.call({ op: 'logs', id }, (abortSignal) =>
        this.docker.getContainer(id).logs({ stdout: true, stderr: true, tail: lines, follow: false, abortSignal }),
      );
      const text = Buffer.isBuffer(raw) ? demuxLogs(raw) : typeof raw === 'string' ? raw : '';
      return lastLines(text, lines);
    } catch (err) {
      this.log.debug({ err, id }, 'docker: could not read container logs');
      return [];
    }
  }
}

export function createDockerEngine(opts: DockerEngineOptions = {}): DockerEngine {
  return new DockerEngine(opts);
}
