/**
 * The Swarm half of the Docker adapter: services, tasks and nodes of the engine at
 * `docker.host` when it is a Swarm manager. Every answer is validated with zod; every
 * failure is a coded SwitchyardError (via toEngineError).
 */
import Dockerode from 'dockerode';
import { z } from 'zod';
import { SwitchyardError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { dockerMessage, toEngineError } from './errors.js';
import { dockerodeOptions } from './host.js';
import { LABEL_OWNER, LABEL_SERVICE } from './types.js';

export interface SwarmServiceSpec {
  service: string;
  owner: string;
  image: string;
  /** Container port, published in host mode with no fixed port: each task gets its own. */
  port: number;
  cmd?: readonly string[];
  env?: Readonly<Record<string, string>>;
}

const serviceSchema = z.object({
  ID: z.string(),
  Version: z.object({ Index: z.number().int() }),
  Spec: z
    .object({
      Name: z.string(),
      Labels: z.record(z.string(), z.string()).nullish(),
      Mode: z.object({ Replicated: z.object({ Replicas: z.number().int().optional() }).optional() }).passthrough(),
    })
    .passthrough(),
});
export type SwarmService = z.output<typeof serviceSchema>;

const taskSchema = z.object({
  ID: z.string(),
  ServiceID: z.string(),
  Slot: z.number().int().optional(),
  NodeID: z.string().optional(),
  DesiredState: z.string(),
  Status: z
    .object({
      Timestamp: z.string().optional(),
      State: z.string(),
      Err: z.string().optional(),
      ContainerStatus: z.object({ ContainerID: z.string().optional() }).passthrough().optional(),
      PortStatus: z
        .object({
          Ports: z.array(z.object({ Protocol: z.string().optional(), TargetPort: z.number().int(), PublishedPort: z.number().int().optional() })).nullish(),
        })
        .passthrough()
        .optional(),
    })
    .passthrough(),
  CreatedAt: z.string().optional(),
});

export interface SwarmTask {
  id: string;
  slot: number;
  nodeId: string;
  state: string;
  desiredState: string;
  error: string;
  containerId: string | undefined;
  /** Host ports by target (container) port. */
  published: Map<number, number>;
  /** When the task reached its current state. */
  since: Date | undefined;
}

const nodeSchema = z.object({
  ID: z.string(),
  Description: z.object({ Hostname: z.string().optional() }).passthrough().optional(),
  Status: z.object({ State: z.string(), Addr: z.string().optional() }).passthrough(),
  ManagerStatus: z.object({ Addr: z.string().optional() }).passthrough().nullish(),
});

export interface SwarmNode {
  id: string;
  hostname: string;
  state: string;
  /** The address tasks on this node are reached at. */
  addr: string;
}

const eventSchema = z.object({
  Type: z.string(),
  Action: z.string(),
  Actor: z.object({ ID: z.string(), Attributes: z.record(z.string(), z.string()).optional() }),
});

/** A concurrent update won: Swarm refuses an update made with a stale version index. */
const OUT_OF_SEQUENCE = /update out of sequence/i;

export class SwarmEngine {
  private readonly docker: Dockerode;

  constructor(
    readonly host: string,
    private readonly log: Logger,
  ) {
    this.docker = new Dockerode(dockerodeOptions(host));
  }

  private async call<T>(op: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (OUT_OF_SEQUENCE.test(dockerMessage(err)))
        throw new SwitchyardError('E_CONFLICT', `swarm ${op}: another update changed the service first`, { cause: err });
      throw toEngineError(err, { op: `swarm ${op}`, host: this.host });
    }
  }

  /** The service by name; undefined when Swarm has none. */
  async inspectService(name: string): Promise<SwarmService | undefined> {
    const list = await this.call('list services', () => this.docker.listServices({ filters: JSON.stringify({ name: [name] }) }) as Promise<unknown>);
    const found = z
      .array(serviceSchema)
      .parse(list)
      .filter((s) => s.Spec.Name === name);
    return found[0];
  }

  /** Services carrying our owner label. */
  async listOwned(owner: string): Promise<SwarmService[]> {
    const list = await this.call(
      'list services',
      () => this.docker.listServices({ filters: JSON.stringify({ label: [`${LABEL_OWNER}=${owner}`] }) }) as Promise<unknown>,
    );
    return z.array(serviceSchema).parse(list);
  }

  /** Create a replicated service at 0 replicas; the caller scales it with updateReplicas. */
  async createService(spec: SwarmServiceSpec): Promise<SwarmService> {
    const body = {
      Name: spec.service,
      Labels: { [LABEL_SERVICE]: spec.service, [LABEL_OWNER]: spec.owner },
      TaskTemplate: {
        ContainerSpec: {
          Image: spec.image,
          ...(spec.cmd ? { Args: [...spec.cmd] } : {}),
          Env: Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`),
          Labels: { [LABEL_SERVICE]: spec.service },
        },
        RestartPolicy: { Condition: 'any', Delay: 0 },
      },
      Mode: { Replicated: { Replicas: 0 } },
      EndpointSpec: { Ports: [{ Protocol: 'tcp', TargetPort: spec.port, PublishMode: 'host' }] },
    };
    await this.call('create service', () => this.docker.createService(body as never));
    const created = await this.inspectService(spec.service);
    if (!created) throw new SwitchyardError('E_UNAVAILABLE', `swarm: service ${spec.service} vanished right after it was created`);
    return created;
  }

  /** Set replicas with the version index read before: E_CONFLICT when another update came first. */
  async updateReplicas(service: SwarmService, replicas: number): Promise<void> {
    const spec = { ...service.Spec, Mode: { Replicated: { Replicas: replicas } } };
    await this.call('update service', () => this.docker.getService(service.ID).update({ version: service.Version.Index, ...spec }) as Promise<unknown>);
  }

  async tasks(serviceId: string): Promise<SwarmTask[]> {
    const list = await this.call('list tasks', () => this.docker.listTasks({ filters: JSON.stringify({ service: [serviceId] }) }) as Promise<unknown>);
    return z
      .array(taskSchema)
      .parse(list)
      .map((t) => ({
        id: t.ID,
        slot: t.Slot ?? 0,
        nodeId: t.NodeID ?? '',
        state: t.Status.State,
        desiredState: t.DesiredState,
        error: t.Status.Err ?? '',
        containerId: t.Status.ContainerStatus?.ContainerID || undefined,
        published: publishedPorts(t.Status.PortStatus?.Ports ?? []),
        since: t.Status.Timestamp ? new Date(t.Status.Timestamp) : undefined,
      }));
  }

  async nodes(): Promise<Map<string, SwarmNode>> {
    const list = await this.call('list nodes', () => this.docker.listNodes() as Promise<unknown>);
    const out = new Map<string, SwarmNode>();
    for (const n of z.array(nodeSchema).parse(list)) {
      // A manager reports 0.0.0.0 in Status.Addr on some engines; its ManagerStatus has the advertised one.
      const managerHost = n.ManagerStatus?.Addr?.replace(/:\d+$/, '');
      const addr = n.Status.Addr && n.Status.Addr !== '0.0.0.0' ? n.Status.Addr : (managerHost ?? '');
      out.set(n.ID, { id: n.ID, hostname: n.Description?.Hostname ?? n.ID.slice(0, 12), state: n.Status.State, addr });
    }
    return out;
  }

  /**
   * Swarm emits no task events; service and container events are what it has. `onChange`
   * runs on any of them (a hint to look at tasks now); the stream reconnects on loss.
   */
  watch(onChange: () => void): { close(): void } {
    let closed = false;
    let stream: NodeJS.ReadableStream | undefined;
    const open = async () => {
      while (!closed) {
        try {
          stream = (await this.docker.getEvents({ filters: JSON.stringify({ type: ['service', 'container'] }) })) as NodeJS.ReadableStream;
          if (closed) return (stream as unknown as { destroy(): void }).destroy();
          await new Promise<void>((resolve) => {
            let buf = '';
            stream!.on('data', (chunk: Buffer) => {
              buf += chunk.toString('utf8');
              const lines = buf.split('\n');
              buf = lines.pop() ?? '';
              for (const line of lines) if (eventSchema.safeParse(safeJson(line)).success) onChange();
            });
            stream!.on('end', resolve);
            stream!.on('close', resolve);
            stream!.on('error', resolve);
          });
        } catch (err) {
          this.log.debug({ err }, 'swarm events stream failed; the task poll covers the gap');
        }
        if (!closed) await new Promise((r) => setTimeout(r, 1000));
      }
    };
    void open();
    return {
      close() {
        closed = true;
        (stream as unknown as { destroy?(): void } | undefined)?.destroy?.();
      },
    };
  }
}

/** A host-mode port is listed once per address family; the first one is kept. */
function publishedPorts(ports: readonly { Protocol?: string | undefined; TargetPort: number; PublishedPort?: number | undefined }[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const p of ports) if ((p.Protocol ?? 'tcp') === 'tcp' && p.PublishedPort && !out.has(p.TargetPort)) out.set(p.TargetPort, p.PublishedPort);
  return out;
}

function safeJson(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}
