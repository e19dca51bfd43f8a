import type { FeedEvent } from '../core/feed.js';
import type { ApplyResult } from '../core/apply-result.js';
import type { InstanceState } from '../core/registry.js';

/**
 * One registry change as the #ops feed tells it. Built from the watch (never from the code
 * that made the change), so changes made by etcdctl, lease expiry or another replica are
 * reported the same way as our own.
 */
export type ChangeKind = 'added' | 'removed' | 'moved' | 'state' | 'weight' | 'desired' | 'apply' | 'agent-gone' | 'invalid' | 'gap' | 'mute-ended';

/** Why it happened. */
export type ChangeCause =
  /** Written by switchyard: a command (who, which), or a reason such as "container died". */
  | { kind: 'switchyard'; by: string; command?: string; requestId?: string; source?: string; reason?: string; approvedBy?: readonly string[]; at?: string }
  /**
   * Deleted by etcd when the keys' lease ran out or was revoked; `watcher` when it was a
   * `switchyard watch` lease (crashed or cut off from etcd; `stopped`: it stopped cleanly).
   */
  | { kind: 'lease'; watcher?: { host: string; stopped: boolean } }
  /** No attribution at that revision: etcdctl, a confd-era script, a person. */
  | { kind: 'outside' }
  /** An HAProxy agent reporting its own work. */
  | { kind: 'agent'; agent: string }
  /** etcd compacted the history the feed needed. */
  | { kind: 'history' };

export interface FeedChange {
  /** etcd revision (decimal string) of the change. */
  revision: string;
  kind: ChangeKind;
  /** What summaries group by: the service, or the agent ("agent lb-1"); '' for gaps. */
  group: string;
  /** What changed: "web/web-1", "desired replicas of web", "agent lb-1". */
  subject: string;
  /** What happened, plain text: "registered at 10.0.0.1:80 (weight 50)". */
  what: string;
  cause: ChangeCause;
  /** Failed applies and unreadable values: shown as problems. */
  problem?: boolean;
  /** Extra plain lines for the details (haproxy's error lines). */
  notes?: string[];
  /** Set for kind 'apply'. */
  apply?: ApplyResult;
  /** The instance's registration is (or was) on a TTL lease: it comes and goes by itself. */
  leased?: boolean;
  /** The registered instance the change leaves in place (not set for removals): what feed buttons act on. */
  instance?: { service: string; instance: string; state?: InstanceState };
  /** Set for kind 'mute-ended': the feed the mute applied to (a channel ID, or 'all'). */
  muteScope?: string;
}

/** What waits in the pacer: a registry change, or another event published to the feed. */
export interface FeedItem {
  change?: FeedChange;
  event?: FeedEvent;
  /** When the feed learned of it (ms since the epoch): the queue lag is measured from here. */
  seenAt: number;
}

/** The newest revision among the items' changes, if any. */
export function maxRevision(items: readonly FeedItem[]): string | undefined {
  let max: bigint | undefined;
  for (const i of items) {
    if (!i.change) continue;
    const r = BigInt(i.change.revision);
    if (max === undefined || r > max) max = r;
  }
  return max === undefined ? undefined : String(max);
}
