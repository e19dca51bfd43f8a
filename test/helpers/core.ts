import pino from 'pino';
import type { AclEvaluator, AclRequest } from '../../src/core/acl-types.js';
import type { AuditRecord } from '../../src/core/audit.js';
import type { Caller } from '../../src/core/caller.js';
import { configSchema } from '../../src/config/schema.js';
import type { FeedEvent } from '../../src/core/feed.js';
import { createMetrics } from '../../src/core/metrics.js';
import type { Registry } from '../../src/core/registry.js';
import { Router } from '../../src/core/router.js';
import { loadPlugins } from '../../plugins/index.js';
import { MemoryRegistry } from './memory-registry.js';

/** An ACL from a predicate, for unit tests that are not about ACL rules themselves. */
export const aclFrom = (allow: (r: AclRequest) => boolean): AclEvaluator => ({
  decide: (r) => (allow(r) ? { allowed: true, reason: 'test allows' } : { allowed: false, reason: 'test rule denies' }),
});

export const shellCaller = (userId = 'U1', channel = 'dm'): Caller => ({ userId, channel, source: 'shell' });

/** A router over the real plugins with recording audit/feed sinks. */
export function testRouter<R extends Registry = MemoryRegistry>(opts: { registry?: R; acl?: AclEvaluator } = {}) {
  const registry = (opts.registry ?? new MemoryRegistry()) as R;
  const audits: AuditRecord[] = [];
  const feed: FeedEvent[] = [];
  const metrics = createMetrics();
  const router = new Router({
    plugins: loadPlugins(),
    acl: opts.acl ?? aclFrom(() => true),
    services: { registry, feed: { publish: (e) => feed.push(e) }, config: configSchema.parse({ etcd: {} }) },
    log: pino({ level: 'silent' }),
    audit: { record: (r) => audits.push(r) },
    metrics,
  });
  return { router, registry, audits, feed, metrics };
}
