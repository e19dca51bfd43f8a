/**
 * An HAProxy agent's apply result: what it reports to the #ops feed and keeps (JSON) under
 * `<switchyardPrefix>/agents/<agent-id>` on its lease, read back by `status` and the feed.
 * One schema for the writer and every reader; the readers validate because the key may be
 * written by another version, or by hand.
 */
import { z } from 'zod';

const lines = z.array(z.string());

export const APPLY_METHODS = ['runtime', 'reload', 'none'] as const;

/**
 * Where a failed apply stopped. `unavailable`: HAProxy did not answer; the validated config
 * is on disk for it to start from, and the agent applies it when HAProxy answers. `write`:
 * the validated config could not be written.
 */
export const APPLY_FAILURES = ['unavailable', 'render', 'check', 'write', 'reload', 'runtime', 'internal'] as const;

export const applyResultSchema = z.object({
  agentId: z.string(),
  method: z.enum(APPLY_METHODS),
  ok: z.boolean(),
  durationMs: z.number().nonnegative(),
  /** "+web-4", "-web-2", "web-3 drain", "+backend api", … */
  changes: lines,
  /** HAProxy's own error lines, or what went wrong. */
  error: lines.optional(),
  /** Registry keys left out (invalid), adjustments that failed after a reload, … */
  warnings: lines.optional(),
  /** Servers in maintenance whose deletion waits for their sessions to end. */
  pending: lines.optional(),
  /** Why a reload was chosen. */
  reasons: lines.optional(),
  failure: z.enum(APPLY_FAILURES).optional(),
  /** Worker PID serving after the apply, when known. */
  worker: z.number().int().optional(),
  at: z.string(),
});

export type ApplyResult = z.infer<typeof applyResultSchema>;
export type ApplyMethod = ApplyResult['method'];
export type ApplyFailureKind = NonNullable<ApplyResult['failure']>;

/** The result in a stored value, or why it is not one ("not JSON", "not an apply result (…)"). */
export function parseApplyResult(value: string): ApplyResult | string {
  let data: unknown;
  try {
    data = JSON.parse(value);
  } catch {
    return 'not JSON';
  }
  const r = applyResultSchema.safeParse(data);
  if (r.success) return r.data;
  const issues = r.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || 'value'}: ${i.message}`);
  return `not an apply result (${issues.join('; ')})`;
}
