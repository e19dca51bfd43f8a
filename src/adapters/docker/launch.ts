import { SwitchyardError, isSwitchyardError } from '../../core/errors.js';
import type { ContainerEngine, ContainerInfo, ContainerSpec, PortBinding } from './types.js';

export interface Launched {
  id: string;
  info: ContainerInfo;
  /** The published address to register: `${hostIp}:${hostPort}`. */
  hostIp: string;
  hostPort: number;
}

/** The binding Docker made for a container port. */
export function publishedPort(info: ContainerInfo, containerPort: number): PortBinding | undefined {
  return info.ports.find((p) => p.containerPort === containerPort && p.protocol === 'tcp' && p.hostPort > 0);
}

/**
 * create → start → running (and healthy). A launch that fails after create removes its
 * container, so "nothing left running" holds for every error; when that cleanup fails too,
 * the error says so instead of hiding a leftover.
 */
export async function launchContainer(engine: ContainerEngine, spec: ContainerSpec, opts: { timeoutMs?: number } = {}): Promise<Launched> {
  const { id } = await engine.create(spec);
  try {
    await engine.start(id);
    const info = await engine.waitRunning(id, { timeoutMs: opts.timeoutMs });
    const port = publishedPort(info, spec.port);
    if (!port) throw new SwitchyardError('E_INTERNAL', `container ${id.slice(0, 12)} runs but Docker published no host port for ${spec.port}/tcp`);
    // Docker reports 0.0.0.0 for a wildcard bind; the registered address must be reachable.
    const hostIp = port.hostIp === '' || port.hostIp === '0.0.0.0' ? spec.hostIp : port.hostIp;
    return { id, info, hostIp, hostPort: port.hostPort };
  } catch (err) {
    try {
      await engine.remove(id, { force: true });
    } catch (cleanupErr) {
      if (!isSwitchyardError(cleanupErr, 'E_NOT_FOUND')) {
        const base = isSwitchyardError(err) ? err : new SwitchyardError('E_INTERNAL', String(err), { cause: err });
        throw new SwitchyardError(base.code, base.message, {
          details: [...base.details, `and container ${id.slice(0, 12)} could not be removed: ${(cleanupErr as Error).message}`],
          cause: err,
        });
      }
    }
    throw err;
  }
}
