/**
 * One deadline per etcd operation (`etcd.commandTimeout`), however many calls, retries and
 * endpoints it takes. Without it, a cluster without quorum made every command wait a
 * per-try deadline once per endpoint (10 s with two endpoints), and a runbook of N commands
 * 10·N s.
 *
 * The budget travels in an AsyncLocalStorage so it reaches etcd3's internals (its fault
 * handling policy and call options, see policies.ts and client.ts) without threading a
 * parameter through every builder: an operation that makes several calls (read, then a
 * compare-and-swap) opens a scope with withinDeadline(); a call made outside any scope gets
 * a budget of its own.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export interface Budget {
  /** Epoch ms after which nothing more is tried. */
  readonly deadline: number;
  /** The configured figure, for messages. */
  readonly timeoutMs: number;
  /** Endpoints an attempt was made on, in order; shared by every call of one operation. */
  readonly tried: string[];
  /** Set once the scope's function has settled: a timer or stream started inside it must not inherit a spent budget. */
  ended: boolean;
}

/** One call's attempts within a budget (what the per-attempt deadline is derived from). */
export interface CallBudget extends Budget {
  /** Attempts made by this call so far (the one in flight included). */
  attempts: number;
  /** How many endpoints the client has: each untried one gets a fair share of what is left. */
  readonly endpoints: number;
  /** The gRPC deadline handed to the attempt in flight (see attemptDeadline). */
  attemptEnds?: number;
}

const scopes = new AsyncLocalStorage<Budget>();

/** The budget of the operation in progress, if any (ended scopes do not count). */
export function currentBudget(): Budget | undefined {
  const b = scopes.getStore();
  return b && !b.ended ? b : undefined;
}

/** A budget of `timeoutMs` from now, never past an enclosing operation's deadline. */
export function newBudget(timeoutMs: number, outer = currentBudget()): Budget {
  const own = Date.now() + timeoutMs;
  if (outer && outer.deadline <= own) return { deadline: outer.deadline, timeoutMs: outer.timeoutMs, tried: outer.tried, ended: false };
  return { deadline: own, timeoutMs, tried: outer?.tried ?? [], ended: false };
}

/** Run `fn` with `budget` as the current one; the budget ends when `fn` settles. */
export async function runWithin<T, B extends Budget>(budget: B, fn: () => Promise<T>): Promise<T> {
  try {
    return await scopes.run(budget, fn);
  } finally {
    budget.ended = true;
  }
}

/**
 * Run `fn` (any number of etcd calls) within `timeoutMs`, or within the enclosing
 * operation's deadline if that comes first. Shutdown uses this to bound every etcd call it
 * makes (resigning, revoking) by what is left of its grace period.
 */
export function withinDeadline<T>(timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  return runWithin(newBudget(timeoutMs), fn);
}

/** The call budget of the attempt in progress (see policies.ts), if any. */
export function currentCallBudget(): CallBudget | undefined {
  const b = currentBudget();
  return b && 'attempts' in b ? (b as CallBudget) : undefined;
}

/**
 * gRPC deadline of the attempt in progress: the first attempts share what is left among
 * the endpoints not tried yet, so one black-holed endpoint cannot eat the whole budget
 * while a healthy one waits its turn; once each has had its turn, an attempt may use all
 * that is left.
 */
export function attemptDeadline(b: CallBudget, now = Date.now()): number {
  const left = Math.max(0, b.deadline - now);
  const untried = b.endpoints - (b.attempts - 1);
  b.attemptEnds = untried > 1 ? now + Math.ceil(left / untried) : b.deadline;
  return b.attemptEnds;
}

/**
 * The operation ran out of time. Carries what the message needs; toRegistryError() turns
 * it into E_UNAVAILABLE naming the action.
 */
export class EtcdDeadlineError extends Error {
  constructor(
    readonly timeoutMs: number,
    readonly tried: readonly string[],
    /** The last failure before time ran out (more telling than "deadline exceeded"). */
    readonly last: unknown,
  ) {
    super(`etcd did not answer within ${timeoutMs} ms`);
    this.name = 'EtcdDeadlineError';
  }
}
