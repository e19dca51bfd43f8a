/**
 * Feed mutes (`feed mute <service> 30m`): `<switchyard>/feed/mute/<scope>/<service>` on a
 * lease of the mute's length, so a mute ends by itself even if every replica is down when
 * it runs out. Scope is a feed's channel ID, or `all` for every feed. Only a mute's end by itself is news.
 */
import { z } from 'zod';
import { toRegistryError } from './errors.js';
import { prefixEnd } from './keys.js';
import { deleteOp, putOp } from './ops.js';
import { causeOp } from './attribution.js';
import type { EtcdRegistry } from './registry.js';

export interface FeedMute {
  scope: string;
  service: string;
  by: string;
  until: string;
}

const muteSchema = z.object({ by: z.string(), until: z.string() });

export class EtcdFeedMutes {
  constructor(private readonly registry: EtcdRegistry) {}

  private get dir(): string {
    return `${this.registry.layout.feedDir()}mute/`;
  }

  private key(scope: string, service: string): string {
    return `${this.dir}${scope}/${service}`;
  }

  async mute(scope: string, service: string, ms: number, by: string, now = Date.now()): Promise<FeedMute> {
    const until = new Date(now + ms).toISOString();
    const value = JSON.stringify({ by, until });
    try {
      const lease = await this.registry.client.leaseClient.leaseGrant({ TTL: Math.max(1, Math.ceil(ms / 1000)), ID: 0 });
      await this.registry.client.kv.txn({ compare: [], success: [putOp(this.key(scope, service), value, lease.ID)], failure: [] });
    } catch (err) {
      throw toRegistryError(err, this.registry.endpoints, 'muting the feed');
    }
    return { scope, service, by, until };
  }

  /**
   * False when there was no such mute. The delete carries a cause record: the feed tells a
   * mute that ran out (an unattributed delete) from one lifted by a command, which says so itself.
   */
  async unmute(scope: string, service: string): Promise<boolean> {
    try {
      const res = await this.registry.client.kv.txn({
        compare: [],
        success: [causeOp(this.registry.layout, 'switchyard', new Date()), deleteOp(this.key(scope, service))],
        failure: [],
      });
      return res.responses.some((r) => Number(r.response_delete_range?.deleted ?? 0) > 0);
    } catch (err) {
      throw toRegistryError(err, this.registry.endpoints, 'unmuting the feed');
    }
  }

  async list(): Promise<FeedMute[]> {
    let kvs;
    try {
      kvs = (await this.registry.client.kv.range({ key: Buffer.from(this.dir), range_end: prefixEnd(this.dir) })).kvs;
    } catch (err) {
      throw toRegistryError(err, this.registry.endpoints, 'reading feed mutes');
    }
    const out: FeedMute[] = [];
    for (const kv of kvs) {
      const [scope, service, ...rest] = kv.key.toString().slice(this.dir.length).split('/');
      if (!scope || !service || rest.length) continue;
      try {
        const r = muteSchema.safeParse(JSON.parse(kv.value.toString()));
        if (r.success) out.push({ scope, service, ...r.data });
      } catch {
        // A hand-written value is not a mute.
      }
    }
    return out;
  }
}
