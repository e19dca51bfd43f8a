import pino from 'pino';
import { z } from 'zod';
import type { AclEvaluator, AclRequest } from '../../src/core/acl-types.js';
import type { ApprovalRequester } from '../../src/core/approval.js';
import type { AuditRecord } from '../../src/core/audit.js';
import type { Caller } from '../../src/core/caller.js';
import { configSchema, type Config } from '../../src/config/schema.js';
import type { FeedEvent } from '../../src/core/feed.js';
import { SwitchyardError } from '../../src/core/errors.js';
import { createMetrics } from '../../src/core/metrics.js';
import { defineCommand } from '../../src/core/plugin-api.js';
import type { Registry } from '../../src/core/registry.js';
import { Router } from '../../src/core/router.js';
import { loadBuiltinPlugins } from '../../src/app/builtin-plugins.js';
import { buildFacades, type FacadeSources } from '../../src/app/facades.js';
import { MemoryRegistry } from './memory-registry.js';

/** An ACL from a predicate, for unit tests that are not about ACL rules themselves. */
export const aclFrom = (allow: (r: AclRequest) => boolean): AclEvaluator => ({
  decide: (r) => (allow(r) ? { allowed: true, reason: 'test allows' } : { allowed: false, reason: 'test rule denies' }),
});

/** The error `fn` throws, which must be a SwitchyardError. */
export function thrown(fn: () => unknown): SwitchyardError {
  try {
    fn();
  } catch (e) {
    if (e instanceof SwitchyardError) return e;
    throw e;
  }
  throw new Error('expected a SwitchyardError, nothing was thrown');
}

/** A command whose handler throws a plain Error: the router's "unexpected failure" path. */
export const throwingCommand = (message: string) =>
  defineCommand({
    name: 'broken',
    summary: 'throws',
    args: z.object({}),
    positionals: [],
    handler: async () => {
      throw new Error(message);
    },
  });

export const shellCaller = (userId = 'U1', channel = 'dm'): Caller => ({ userId, channel, source: 'shell' });

/**
 * A router over the built-in plugins and the app's own facades, as the runtime wires them,
 * from whatever adapters a test has (the rest is left out, as when it is not configured).
 */
export function routerOver(
  sources: Omit<FacadeSources, 'log' | 'config' | 'feed'> & { config?: Config; feed?: FacadeSources['feed'] },
  opts: { acl?: AclEvaluator; audit?: (r: AuditRecord) => void; metrics?: ReturnType<typeof createMetrics>; approvals?: ApprovalRequester } = {},
) {
  const log = pino({ level: 'silent' });
  const facades = buildFacades({ feed: { publish: () => {} }, config: configSchema.parse({ etcd: {} }), ...sources, log });
  return new Router({
    plugins: loadBuiltinPlugins({ facades, log }),
    acl: opts.acl ?? aclFrom(() => true),
    facades,
    log,
    audit: { record: (r) => opts.audit?.(r) },
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
    ...(opts.approvals ? { approvals: opts.approvals } : {}),
  });
}

/** A router over the real plugins with recording audit/feed sinks. */
export function testRouter<R extends Registry = MemoryRegistry>(opts: { registry?: R; acl?: AclEvaluator } = {}) {
  const registry = (opts.registry ?? new MemoryRegistry()) as R;
  const audits: AuditRecord[] = [];
  const feed: FeedEvent[] = [];
  const metrics = createMetrics();
  const router = routerOver(
    { registry, feed: { publish: (e) => feed.push(e) } },
    { ...(opts.acl ? { acl: opts.acl } : {}), audit: (r) => audits.push(r), metrics },
  );
  return { router, registry, audits, feed, metrics };
}
