import { z } from 'zod';
import type { PosterTerm, PositionStore } from '../../feed/ports.js';
import { toRegistryError } from './errors.js';
import { EtcdPosterTerm } from './election.js';
import type { EtcdRegistry } from './registry.js';
import { putOp } from './ops.js';

const positionSchema = z.object({ revision: z.string().regex(/^\d{1,19}$/) });

/**
 * The revision up to which the #ops feed has posted, as JSON under `<switchyard>/feed/position`
 * (`{"revision":"…","at":"…","by":"<replica>"}`). Written only while the writer's poster key
 * exists, so a deposed poster cannot move it.
 */
export class EtcdFeedPosition implements PositionStore {
  constructor(
    private readonly registry: EtcdRegistry,
    /** Default: the #ops feed's position; the history recorder keeps its own. */
    private readonly key = registry.layout.feedPositionKey(),
  ) {}

  async read(): Promise<{ position?: string; current: string }> {
    const key = this.key;
    let res;
    try {
      res = await this.registry.client.get(key).exec();
    } catch (err) {
      throw toRegistryError(err, this.registry.endpoints, 'reading the feed position');
    }
    const raw = res.kvs[0]?.value.toString();
    const parsed = raw === undefined ? undefined : parse(raw);
    // A hand-edited, unreadable position counts as none: the feed starts from now.
    return { ...(parsed ? { position: parsed } : {}), current: res.header.revision };
  }

  async write(revision: string, term: PosterTerm): Promise<boolean> {
    if (!(term instanceof EtcdPosterTerm)) throw new TypeError('EtcdFeedPosition needs a term from EtcdPosterElection');
    const value = JSON.stringify({ revision, at: new Date().toISOString(), by: term.replica });
    try {
      const res = await this.registry.client.kv.txn({
        compare: [{ key: Buffer.from(term.key), target: 'Version', result: 'Greater', version: 0 }],
        success: [putOp(this.key, value)],
        failure: [],
      });
      return res.succeeded;
    } catch (err) {
      throw toRegistryError(err, this.registry.endpoints, 'saving the feed position');
    }
  }
}

function parse(raw: string): string | undefined {
  try {
    const r = positionSchema.safeParse(JSON.parse(raw));
    return r.success ? r.data.revision : undefined;
  } catch {
    return undefined;
  }
}
