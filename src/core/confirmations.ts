/**
 * The confirmation contract shared by the Slack buttons and their store (etcd), so a press
 * on any replica answers a request made on another, and only once.
 */
export interface PendingRequest {
  /** The requester: the only user who may answer. */
  user: string;
  /** The caller's channel as the ACL saw it ('dm' or an ID). */
  channel: string;
  /** The command line exactly as typed: confirming runs this and nothing else. */
  text: string;
  /** Why confirmation is needed (shown on the buttons' message). */
  reason: string;
}

export type Answer = 'confirmed' | 'cancelled';

export type TakeResult =
  | { status: 'taken'; request: PendingRequest }
  | { status: 'foreign'; user: string }
  | { status: 'expired' }
  | { status: 'answered'; answer: Answer; by: string; at: string }
  /** Unknown id, or the lease ended (expired a while ago). */
  | { status: 'missing' };

export interface ConfirmationStore {
  create(request: PendingRequest, ttlMs: number): Promise<{ id: string; expiresAt: number }>;
  /** Answers the request atomically: two presses, on any replicas, act once. */
  take(id: string, presser: string, answer: Answer): Promise<TakeResult>;
}
