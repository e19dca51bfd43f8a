import { backendName } from '../adapters/haproxy/model.js';
import type { StatRow } from '../adapters/haproxy/runtime-parse.js';
import type { SessionCounter } from './ports.js';

/**
 * Sessions as the local HAProxy counts them (`show stat` scur on the admin socket): the
 * server of an instance is named after it in its service's backend. Unknown (undefined)
 * when the server is not there, e.g. the agent has not added it or already removed it.
 */
export class HaproxySessionCounter implements SessionCounter {
  constructor(private readonly stats: { showStat(): Promise<StatRow[]> }) {}

  async currentSessions(service: string, instance: string): Promise<number | undefined> {
    const backend = backendName(service);
    return (await this.stats.showStat()).find((r) => r.backend === backend && r.name === instance)?.scur;
  }
}
