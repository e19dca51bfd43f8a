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

export interface AclDecision {
  allowed: boolean;
  /** Human-readable reason naming the deciding rule, or saying none allowed it. */
  reason: string;
  /** 0-based index of the deciding rule, if any. */
  ruleIndex?: number;
}

/** What the router needs from the ACL engine (the current rules, hot-reloaded behind it). */
export interface AclEvaluator {
  decide(req: AclRequest): AclDecision;
}
