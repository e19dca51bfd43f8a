/** The request an ACL decision is made on. */
export interface AclRequest {
  userId: string;
  /** Channel ID, or 'dm'. */
  channel: string;
  command: string;
  /**
   * The command's service argument. `undefined`: the command names no service.
   * ANY_SERVICE: "for some service" — used by `help` to list commands the caller could run.
   */
  service?: string | typeof ANY_SERVICE;
}

export const ANY_SERVICE = Symbol('any-service');

/**
 * An allow rule's `approval:`: the command is not run when asked, but recorded for others
 * to approve.
 */
export interface ApprovalRequirement {
  /** The rule asking for it, as refusals name rules ("rule \"payments\" at acl.yaml:9"). */
  rule: string;
  groups: readonly string[];
  /** Distinct approvers needed. */
  count: number;
  expiryMs: number;
  /** `shell: allow`: `switchyard shell` may run it without approval. */
  shellAllowed: boolean;
  /** Who may approve (the requester never may): members of `groups` now, or '*' for anyone. */
  approvers: ReadonlySet<string> | '*';
}

/**
 * Three outcomes: allowed; refused; or — `allowed: false` with `approval` — allowed only once
 * others approve. `allowed` stays false for the last so that nothing that only checks it can
 * run such a command directly.
 */
export interface AclDecision {
  allowed: boolean;
  /** Human-readable reason naming the deciding rule, or saying none allowed it. */
  reason: string;
  /** 0-based index of the deciding rule, if any. */
  ruleIndex?: number;
  approval?: ApprovalRequirement;
}

export type AclOutcome = 'allow' | 'deny' | 'approval';

export function aclOutcome(d: AclDecision): AclOutcome {
  if (d.allowed) return 'allow';
  return d.approval ? 'approval' : 'deny';
}

/** What the router needs from the ACL engine (the current rules, hot-reloaded behind it). */
export interface AclEvaluator {
  decide(req: AclRequest): AclDecision;
}

/** "1 of leads", "2 of leads, sre", "1 other person". */
export function describeApprovers(a: Pick<ApprovalRequirement, 'groups' | 'count'>): string {
  if (a.groups.includes('*')) return a.count === 1 ? '1 other person' : `${a.count} other people`;
  return `${a.count} of ${a.groups.join(', ')}`;
}
