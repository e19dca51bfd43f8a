/**
 * Attribution of registry writes. Every transaction the registry makes also puts the
 * cause key (one key, overwritten): the watch then delivers that put at the same revision
 * as the change it explains, so any replica — or a restarted one replaying history — can
 * tell who changed what and why. Deletions are covered too, which the `by` field of a
 * state record cannot do. A change without a cause at its revision was made by something
 * other than switchyard (etcdctl, confd-era scripts) or by etcd itself (lease expiry).
 */
import type { IRequestOp } from 'etcd3';
import { z } from 'zod';
import { currentCause, type Cause } from '../../core/feed.js';
import type { KeyLayout } from './keys.js';
import { putOp } from './ops.js';

export interface CauseRecord extends Cause {
  at: string;
}

const causeSchema = z.object({
  by: z.string(),
  command: z.string().optional(),
  requestId: z.string().optional(),
  source: z.string().optional(),
  reason: z.string().optional(),
  approvedBy: z.array(z.string()).max(20).optional(),
  at: z.string(),
});

/** Reasons are free text from code paths such as container supervision; keep them short. */
const MAX_FIELD = 200;

export function encodeCause(cause: Cause, at: Date): string {
  const clip = (s: string | undefined) => (s === undefined ? undefined : s.slice(0, MAX_FIELD));
  const rec: CauseRecord = {
    by: clip(cause.by) ?? '',
    ...(cause.command !== undefined ? { command: clip(cause.command)! } : {}),
    ...(cause.requestId !== undefined ? { requestId: clip(cause.requestId)! } : {}),
    ...(cause.source !== undefined ? { source: clip(cause.source)! } : {}),
    ...(cause.reason !== undefined ? { reason: clip(cause.reason)! } : {}),
    ...(cause.approvedBy?.length ? { approvedBy: cause.approvedBy.slice(0, 20).map((u) => u.slice(0, MAX_FIELD)) } : {}),
    at: at.toISOString(),
  };
  return JSON.stringify(rec);
}

/** undefined for anything that is not a cause record (someone wrote the key by hand). */
export function decodeCause(value: string): CauseRecord | undefined {
  try {
    const r = causeSchema.safeParse(JSON.parse(value));
    return r.success ? stripUndefined(r.data) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The op recording why the surrounding transaction happens: the ambient cause (set by the
 * router for commands, or by `withCause` elsewhere), else just the writer's `by`. Written
 * on the change's lease, if any, so an expired registration leaves nothing behind.
 */
export function causeOp(layout: KeyLayout, fallbackBy: string, now: Date, lease?: string): IRequestOp {
  return putOp(layout.causeKey(), encodeCause(currentCause() ?? { by: fallbackBy }, now), lease);
}

function stripUndefined(r: z.output<typeof causeSchema>): CauseRecord {
  return Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as unknown as CauseRecord;
}
