/**
 * A single-node Swarm on the run-wide test engine (sharedDockerHost): `docker swarm init
 * --advertise-addr 127.0.0.1`, on random loopback ports so it never meets a Swarm of the
 * host's own. Plain containers of other test files keep working on a Swarm manager; the
 * Swarm is left (with --force, removing its services) by the file that created it.
 */
import { randomInt } from 'node:crypto';
import Dockerode from 'dockerode';
import { dockerodeOptions } from '../../src/adapters/docker/host.js';

export interface TestSwarm {
  /** The manager's node ID. */
  nodeId: string;
  /** Leave the Swarm if this call created it; idempotent. */
  leave(): Promise<void>;
}

export async function initSwarm(host: string): Promise<TestSwarm> {
  const docker = new Dockerode(dockerodeOptions(host));
  const info = (await docker.info()) as { Swarm?: { LocalNodeState?: string; NodeID?: string } };
  let created = false;
  if (info.Swarm?.LocalNodeState !== 'active') {
    await docker.swarmInit({ ListenAddr: `127.0.0.1:${randomInt(20000, 40000)}`, AdvertiseAddr: '127.0.0.1', DataPathPort: randomInt(40000, 49000) });
    created = true;
  }
  const nodeId = ((await docker.info()) as { Swarm: { NodeID: string } }).Swarm.NodeID;
  let left = false;
  return {
    nodeId,
    async leave() {
      if (!created || left) return;
      left = true;
      await docker.swarmLeave({ force: true });
    },
  };
}
