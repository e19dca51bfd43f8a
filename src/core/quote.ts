/**
 * Raw etcd keys in messages. Anyone with etcdctl can put a newline or another control
 * character in a key; printed as-is in a warning, a log line or the #ops feed it would
 * start a line of its own and pass for one of ours. So keys are quoted the way values
 * are: JSON string syntax, control characters escaped.
 */
import type { RegistryProblem } from './registry.js';

const MAX_KEY = 200;

export function quoteKey(key: string): string {
  return JSON.stringify(key.length > MAX_KEY ? `${key.slice(0, MAX_KEY)}…` : key);
}

/** `"<key>": <problem>`, for listing the registry entries left out. */
export function describeProblem(p: RegistryProblem): string {
  return `${quoteKey(p.key)}: ${p.problem}`;
}
