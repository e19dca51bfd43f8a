import type { Plugin, PluginApi } from '../src/plugin.js';

const formatDuration = (ms: number) =>
  ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : ms % 60_000 === 0 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;

/** register / deregister: the launch script's `announce ip:port` and the gossip handler's cleanup. */
export default function register(api: PluginApi): Plugin {
  const { z, args } = api;
  return {
    name: 'register',
    commands: [
      api.defineCommand({
        name: 'register',
        summary: 'add or update an instance (--ttl binds it to an etcd lease that the instance must renew)',
        args: z.object({
          service: args.service,
          instance: args.instance,
          address: args.address,
          ttl: args.duration.pipe(z.number().min(1000, 'ttl must be at least 1s').max(86_400_000, 'ttl must be at most 24h')).optional().describe('30s'),
          weight: args.weight.optional().describe('N'),
        }),
        positionals: ['service', 'instance', 'address'],
        serviceArg: 'service',
        async handler(ctx, { service, instance, address, ttl, weight }) {
          const { created } = await ctx.registry.register(service, instance, address, {
            ...(ttl !== undefined ? { ttlMs: ttl } : {}),
            ...(weight !== undefined ? { weight } : {}),
          });
          const extras = [ttl !== undefined ? `ttl ${formatDuration(ttl)}` : '', weight !== undefined ? `weight ${weight}` : ''].filter(Boolean).join(', ');
          return `${created ? 'registered' : 'updated'} ${service}/${instance} at ${address}${extras ? ` (${extras})` : ''}`;
        },
      }),
      api.defineCommand({
        name: 'deregister',
        summary: 'remove an instance from the registry',
        args: z.object({ service: args.service, instance: args.instance }),
        positionals: ['service', 'instance'],
        serviceArg: 'service',
        needsConfirmation: (ctx, { service, instance }) => ctx.rotation.lastReadyWarning(service, instance),
        async handler(ctx, { service, instance }) {
          const removed = await ctx.registry.deregister(service, instance);
          if (!removed) api.errors.fail('E_NOT_FOUND', `${service}/${instance} is not registered`);
          return `deregistered ${service}/${instance}`;
        },
      }),
    ],
  };
}
