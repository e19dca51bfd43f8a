import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics, one registry per process (tests create their own). */
export function createMetrics(opts: { defaults?: boolean } = {}) {
  const registry = new Registry();
  if (opts.defaults) collectDefaultMetrics({ register: registry, prefix: 'switchyard_' });
  return {
    registry,
    commands: new Counter({
      name: 'switchyard_commands_total',
      help: 'Commands by name and result (ok, error, denied, invalid)',
      labelNames: ['command', 'result'] as const,
      registers: [registry],
    }),
    aclRefusals: new Counter({
      name: 'switchyard_acl_refusals_total',
      help: 'Commands refused by the ACL',
      labelNames: ['command'] as const,
      registers: [registry],
    }),
    commandDuration: new Histogram({
      name: 'switchyard_command_duration_seconds',
      help: 'Command handling time',
      labelNames: ['command'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
