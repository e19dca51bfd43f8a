/**
 * The seen-set contract shared by the Slack front door and its store (etcd): every Slack
 * request executes at most once, whichever replica it reaches and however often Slack (or
 * an attacker holding a copy) sends it again.
 */

/** What the first delivery left behind, so a duplicate can name the request it repeats. */
export interface SeenRecord {
  requestId: string;
  /** ISO time of the first delivery. */
  at: string;
}

export type ClaimResult =
  | { duplicate: false }
  /** `key` is the first key found already claimed; `original` is absent if its record is unreadable. */
  | { duplicate: true; key: string; original?: SeenRecord };

export interface RequestDeduper {
  /**
   * Claim every key of one request (`event/<id>`, `trigger/<id>`, `sig/<hex>`) in one step:
   * the request is new exactly when none of its keys was claimed before, and of two
   * deliveries sharing a key — concurrent, on any replica — exactly one is told "new". A
   * duplicate's answer names one key found taken and, when readable, the first record.
   */
  claim(keys: readonly string[], record: SeenRecord): Promise<ClaimResult>;
}
