import { z } from 'zod';
import { NAME_RE } from './names.js';

/**
 * What a `switchyard watch` process keeps under `<switchyardPrefix>/watchers/<host>`, on the
 * same lease as its registrations: the record and the keys it owns disappear together, so
 * status never lists a watcher whose registrations are gone, and the feed can tell whose
 * keys a lease expiry removed.
 */
export const watcherRecordSchema = z.object({
  host: z.string().regex(NAME_RE),
  advertise: z.string().min(1),
  /** etcd lease ID (decimal) its registrations live on. */
  lease: z.string().regex(/^\d{1,20}$/),
  pid: z.number().int(),
  startedAt: z.string(),
  /** When it last compared the engine's containers with its keys. */
  lastReconcile: z.string().optional(),
  /** Instances it had registered at that reconcile. */
  registered: z.number().int().min(0).default(0),
  /** Set just before a clean stop revokes the lease: the keys go because it stopped, not died. */
  stopping: z.boolean().optional(),
});

export type WatcherRecord = z.output<typeof watcherRecordSchema>;

/** undefined for anything that is not a watcher record (written by hand, another version). */
export function decodeWatcherRecord(value: string): WatcherRecord | undefined {
  try {
    const r = watcherRecordSchema.safeParse(JSON.parse(value));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

/** The `by` of a watcher's registry writes: `watch@<host>`. */
export const watcherActor = (host: string): string => `watch@${host}`;
