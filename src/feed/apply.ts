/**
 * The apply result an HAProxy agent writes (JSON) to `<switchyardPrefix>/agents/<agentId>`
 * on its lease after an apply (src/adapters/haproxy/apply.ts `ApplyResult`). Read
 * leniently: the agent is a separate process, maybe another version, and a result the
 * feed cannot read in full is still news.
 */
import { z } from 'zod';

const lines = z.union([z.string(), z.array(z.string())]);

const applyRecordSchema = z
  .object({
    ok: z.boolean().optional(),
    result: z.string().optional(),
    method: z.string().optional(),
    durationMs: z.number().nonnegative().optional(),
    changes: z.array(z.string()).optional(),
    error: lines.optional(),
    errors: lines.optional(),
    warnings: z.array(z.string()).optional(),
    /** Where a failed apply stopped: unavailable, render, check, reload, runtime. */
    failure: z.string().optional(),
  })
  .passthrough();

/** Bounded label values for metrics. */
export type ApplyMethod = 'runtime' | 'reload' | 'none' | 'other';

export interface ApplyResult {
  ok: boolean;
  method: ApplyMethod;
  durationMs?: number;
  changes: string[];
  errors: string[];
  warnings: string[];
  failure?: string;
}

const METHODS: readonly ApplyMethod[] = ['runtime', 'reload', 'none'];
const FAILED = new Set(['error', 'failed', 'failure', 'rejected']);

const asLines = (v: string | string[] | undefined): string[] => (v === undefined ? [] : typeof v === 'string' ? [v] : v);

/** The result, or a string saying why the value is not one. */
export function parseApplyResult(value: string): ApplyResult | string {
  let data: unknown;
  try {
    data = JSON.parse(value);
  } catch {
    return 'not JSON';
  }
  const r = applyRecordSchema.safeParse(data);
  if (!r.success) return r.error.issues.map((i) => `${i.path.join('.') || 'value'}: ${i.message}`).join('; ');
  const rec = r.data;
  const errors = [...asLines(rec.error), ...asLines(rec.errors)];
  const ok = rec.ok ?? (rec.result !== undefined ? !FAILED.has(rec.result.toLowerCase()) : errors.length === 0);
  const method = (METHODS as readonly string[]).includes(rec.method ?? '') ? (rec.method as ApplyMethod) : 'other';
  return {
    ok,
    method,
    ...(rec.durationMs !== undefined ? { durationMs: rec.durationMs } : {}),
    changes: rec.changes ?? [],
    errors,
    warnings: rec.warnings ?? [],
    ...(rec.failure !== undefined ? { failure: rec.failure } : {}),
  };
}
