/**
 * The change history in etcd: `<switchyard>/history/<revision, zero-padded>` holds the
 * changes of that revision with the feed's attribution. Live keys, not etcd's own
 * history, so compaction and restarts leave it alone; retention is ours (trim()).
 *
 * Keyed by revision so that recording is idempotent: a recorder that replays a stretch
 * after a crash writes the same keys again instead of adding entries.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { ChangeVia, HistoryEntry, HistoryFacade, HistoryPage, HistoryQuery } from '../../core/facades.js';
import type { FeedChange } from '../../feed/types.js';
import { toRegistryError } from './errors.js';
import { prefixEnd } from './keys.js';
import { putOp } from './ops.js';
import type { EtcdRegistry } from './registry.js';

const VIAS = ['command', 'approval', 'lease expiry', 'container death', 'switchyard', 'agent', 'outside edit', 'gap'] as const satisfies readonly ChangeVia[];

const entrySchema = z.object({
  at: z.string(),
  service: z.string(),
  subject: z.string(),
  what: z.string(),
  via: z.enum(VIAS),
  by: z.string().optional(),
  command: z.string().optional(),
  reason: z.string().optional(),
});
const recordSchema = z.object({ changes: z.array(entrySchema) });

type StoredEntry = Omit<HistoryEntry, 'revision'>;

/** Keys read, and at most deleted, per etcd round trip while trimming. */
const SCAN_CHUNK = 100;
/**
 * Pause between trimming deletes. Every deleted key is an event on the feed's watch (it
 * covers the switchyard prefix): a backlog deleted in one go would queue the feed's next
 * change behind thousands of them; in paced chunks it waits for one chunk at most. Paced
 * this way a backlog goes at up to 1,000 revisions a second, which is plenty for a trim
 * that runs every minute.
 */
const TRIM_PAUSE_MS = 100;
/** The first change's time in a stored record, read without parsing the whole record. */
const FIRST_AT = /"at":"([^"]*)"/;
/** Widest revision window one page read spans (a sparse or filtered history widens it). */
const MAX_WINDOW = 1n << 16n;
/** Revisions per write transaction (etcd's default limit is 128 ops). */
const WRITE_CHUNK = 100;

export interface HistoryRetention {
  retentionMs: number;
  maxEntries: number;
}

/** A change as history keeps it: the feed's cause, reduced to who and via what. */
export function historyEntry(change: FeedChange, seenAt: Date): StoredEntry {
  const base = { service: change.group, subject: change.subject, what: change.what };
  const c = change.cause;
  switch (c.kind) {
    case 'switchyard': {
      // Approvals will set source 'approval'; the death watcher writes as 'docker'.
      const via: ChangeVia = c.source === 'approval' ? 'approval' : c.command ? 'command' : c.by === 'docker' ? 'container death' : 'switchyard';
      return {
        ...base,
        at: c.at ?? seenAt.toISOString(),
        via,
        by: c.by,
        ...(c.command !== undefined ? { command: c.command } : {}),
        ...(c.reason !== undefined ? { reason: c.reason } : {}),
      };
    }
    case 'lease':
      return { ...base, at: seenAt.toISOString(), via: 'lease expiry' };
    case 'outside':
      return { ...base, at: seenAt.toISOString(), via: 'outside edit' };
    case 'agent':
      return { ...base, at: seenAt.toISOString(), via: 'agent', by: c.agent };
    case 'history':
      break;
  }
  return { ...base, at: seenAt.toISOString(), via: 'gap' };
}

export class EtcdHistory implements HistoryFacade {
  constructor(private readonly registry: EtcdRegistry) {}

  private get dir(): string {
    return this.registry.layout.historyDir();
  }

  /** Write the changes, one key per revision (replacing what a replay wrote before). */
  async record(changes: readonly FeedChange[], seenAt: Date): Promise<void> {
    const byRevision = new Map<string, StoredEntry[]>();
    for (const c of changes) {
      let list = byRevision.get(c.revision);
      if (!list) byRevision.set(c.revision, (list = []));
      list.push(historyEntry(c, seenAt));
    }
    const ops = [...byRevision].map(([rev, list]) => putOp(this.registry.layout.historyKey(rev), JSON.stringify({ changes: list })));
    for (let i = 0; i < ops.length; i += WRITE_CHUNK) {
      try {
        await this.registry.client.kv.txn({ compare: [], success: ops.slice(i, i + WRITE_CHUNK), failure: [] });
      } catch (err) {
        throw toRegistryError(err, this.registry.endpoints, 'recording the change history');
      }
    }
  }

  async list(q: HistoryQuery): Promise<HistoryPage> {
    const entries: HistoryEntry[] = [];
    // etcd sorts a descending range in memory, all of it: so pages are read as ascending
    // windows of revisions below `upper`, newest window first, widened while it is sparse.
    let upper = q.beforeRevision !== undefined ? BigInt(q.beforeRevision) : BigInt(await this.currentRevision()) + 1n;
    let window = BigInt(Math.max(64, q.limit * 2));
    while (upper > 0n) {
      const lower = upper > window ? upper - window : 0n;
      const kvs = (await this.window(lower, upper)).reverse();
      for (const [i, kv] of kvs.entries()) {
        const revision = kv.key
          .toString()
          .slice(this.dir.length)
          .replace(/^0+(?=\d)/, '');
        const raw = kv.value.toString();
        // Revision order is (near enough) time order: the first older entry ends the scan.
        if (q.sinceMs !== undefined) {
          const at = FIRST_AT.exec(raw)?.[1];
          if (at !== undefined && Date.parse(at) < q.sinceMs) return { entries };
        }
        // Most revisions of a busy history are other services': skipped unparsed. JSON
        // escapes quotes inside values, so the pattern can only match a real service field.
        if (q.service !== undefined && !raw.includes(`"service":${JSON.stringify(q.service)}`)) continue;
        const all = decode(raw);
        const found = all.filter((e) => q.service === undefined || e.service === q.service).map((e) => ({ revision, ...e }));
        if (found.length === 0) continue;
        // A page ends between revisions, so continuing from `next` loses nothing.
        if (entries.length > 0 && entries.length + found.length > q.limit) return { entries, next: entries.at(-1)!.revision };
        entries.push(...found.slice(0, q.limit));
        if (entries.length >= q.limit) return i < kvs.length - 1 || lower > 0n ? { entries, next: revision } : { entries };
      }
      upper = lower;
      if (window < MAX_WINDOW) window *= 4n;
    }
    return { entries };
  }

  private async currentRevision(): Promise<string> {
    try {
      return (await this.registry.client.kv.range({ key: Buffer.from(this.registry.layout.historyPositionKey()) })).header.revision;
    } catch (err) {
      throw toRegistryError(err, this.registry.endpoints, 'reading the change history');
    }
  }

  /** History keys of revisions in [lower, upper), oldest first (etcd's own order: no sorting). */
  private async window(lower: bigint, upper: bigint, limit?: number) {
    try {
      const res = await this.registry.client.kv.range({
        key: Buffer.from(this.registry.layout.historyKey(String(lower))),
        range_end: Buffer.from(this.registry.layout.historyKey(String(upper))),
        ...(limit !== undefined ? { limit } : {}),
      });
      return res.kvs;
    } catch (err) {
      throw toRegistryError(err, this.registry.endpoints, 'reading the change history');
    }
  }

  /**
   * Delete entries older than the retention and beyond the cap, oldest first, in paced
   * chunks; `signal` ends it between chunks. Returns how many keys were deleted.
   *
   * Every range etcd answers walks its whole key range in the index (to count it), deleted
   * keys included until compaction: so the oldest key and the count are asked once per pass,
   * and the scan then reads bounded windows of revisions from there, never the whole
   * directory again — which would hold etcd's index, and every write, for the walk.
   */
  async trim(r: HistoryRetention, now = Date.now(), signal?: AbortSignal): Promise<number> {
    const cutoff = now - r.retentionMs;
    const first = (await this.oldest(1, true))[0];
    if (!first) return 0;
    const count = await this.count();
    let excess = count - r.maxEntries;
    let deleted = 0;
    // Keys looked at: once every key counted was, the rest is newer than this pass.
    let seen = 0;
    let lo = revisionOf(first.key, this.dir);
    let width = BigInt(SCAN_CHUNK) * 4n;
    while (seen < count) {
      const hi = lo + width;
      const kvs = await this.window(lo, hi, SCAN_CHUNK);
      let last: Buffer | undefined;
      let young = false;
      for (const kv of kvs) {
        seen++;
        // The time alone decides: no need to parse (and validate) a record that may go.
        const at = FIRST_AT.exec(kv.value.toString())?.[1];
        const old = at === undefined || Date.parse(at) < cutoff;
        if (!old && excess <= 0) {
          young = true;
          break;
        }
        last = kv.key;
        excess--;
      }
      if (last) deleted += await this.deleteBetween(lo, last);
      if (young) break;
      if (kvs.length === SCAN_CHUNK) {
        lo = revisionOf(kvs.at(-1)!.key, this.dir) + 1n;
      } else {
        lo = hi;
        // A sparse stretch: wider windows, still bounded.
        if (kvs.length === 0 && width < MAX_WINDOW) width *= 4n;
      }
      // Stopping: the rest waits for the next pass (the next recorder).
      if (last && !(await pause(signal))) break;
    }
    return deleted;
  }

  /** Deletes the history keys of revisions from `lower` up to and including the key `last`. */
  private async deleteBetween(lower: bigint, last: Buffer): Promise<number> {
    try {
      const res = await this.registry.client.kv.deleteRange({
        key: Buffer.from(this.registry.layout.historyKey(String(lower))),
        range_end: Buffer.concat([last, Buffer.from([0])]),
      });
      return Number(res.deleted);
    } catch (err) {
      throw toRegistryError(err, this.registry.endpoints, 'trimming the change history');
    }
  }

  private async count(): Promise<number> {
    try {
      const res = await this.registry.client.kv.range({ key: Buffer.from(this.dir), range_end: prefixEnd(this.dir), count_only: true });
      return Number(res.count);
    } catch (err) {
      throw toRegistryError(err, this.registry.endpoints, 'counting the change history');
    }
  }

  /** The oldest `limit` keys (etcd's own order, so the limit applies before anything is read). */
  private async oldest(limit: number, keysOnly = false) {
    try {
      const res = await this.registry.client.kv.range({
        key: Buffer.from(this.dir),
        range_end: prefixEnd(this.dir),
        limit,
        ...(keysOnly ? { keys_only: true } : {}),
      });
      return res.kvs;
    } catch (err) {
      throw toRegistryError(err, this.registry.endpoints, 'reading the change history');
    }
  }
}

function revisionOf(key: Buffer, dir: string): bigint {
  return BigInt(key.toString().slice(dir.length));
}

/** Wait between trimming chunks; false once `signal` asks to stop. */
async function pause(signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted) return false;
  try {
    await sleep(TRIM_PAUSE_MS, undefined, signal ? { signal } : {});
    return true;
  } catch {
    return false;
  }
}

/** A hand-edited or foreign value under the history directory lists as nothing. */
function decode(raw: string): StoredEntry[] {
  try {
    const r = recordSchema.safeParse(JSON.parse(raw));
    return r.success ? r.data.changes.map(stripUndefined) : [];
  } catch {
    return [];
  }
}

function stripUndefined(e: z.output<typeof entrySchema>): StoredEntry {
  return Object.fromEntries(Object.entries(e).filter(([, v]) => v !== undefined)) as unknown as StoredEntry;
}
