/**
 * What the feed needs from the store it watches. The etcd adapter implements these
 * (src/adapters/etcd/feed-*.ts, election.ts); the feed itself knows no keys.
 */
import type { FeedChange } from './types.js';

export interface ChangeHandlers {
  /**
   * Changes up to `revision`, in order. Called with an empty list when the store moved on
   * with nothing to report (locks, confirmations), so the position can follow.
   */
  changes(changes: FeedChange[], revision: string): void;
  /** History between the last revision seen and `revision` is gone (compacted). */
  gap(change: FeedChange, revision: string): void;
  error(err: Error): void;
}

export interface ChangeSource {
  /** The store's current revision: where a feed without a position starts. */
  currentRevision(): Promise<string>;
  /** Changes after `fromRevision`, exactly once and in order, until closed. */
  open(fromRevision: string, handlers: ChangeHandlers): Promise<{ close(): Promise<void> }>;
  /** Revision of the newest attributed write, so a caller can wait until its own writes were seen. */
  lastWriteRevision(): Promise<string>;
}

/** One replica's time as the feed poster. */
export interface PosterTerm {
  readonly replica: string;
  /** Asks the store whether this term still holds the role; rejects when it cannot tell. */
  isCurrent(): Promise<boolean>;
}

export interface PositionStore {
  /** The persisted position (undefined before the first post) and the store's current revision. */
  read(): Promise<{ position?: string; current: string }>;
  /** Persist `revision` only while `term` holds the poster role: false when it no longer does. */
  write(revision: string, term: PosterTerm): Promise<boolean>;
}

export interface PosterElection {
  /** Campaign until stopped; `elected`/`lost` bracket each term this replica holds. */
  run(handlers: { elected(term: PosterTerm): void; lost(term: PosterTerm, err?: Error): void }): void;
  /** Resign (another replica takes over at once) and stop campaigning. */
  stop(): Promise<void>;
}
