import { z } from 'zod';
import { fail } from '../src/core/errors.js';
import { address, duration, formatDuration, instanceName, intArg, serviceName } from '../src/core/names.js';
import { defineCommand, type CommandContext, type Plugin } from '../src/core/plugin.js';
import { ok } from '../src/core/reply.js';

/** register / deregister: the launch script's `announce ip:port` and the gossip handler's cleanup. */
export default function registerPlugin(): Plugin {
  return {
    name: 'register',
    commands: [
      defineCommand({
        name: 'register',
        summary: 'add or update an instance (--ttl binds it to an etcd lease that the instance must renew)',
        args: z.object({
          service: serviceName,
          instance: instanceName,
          address,
          ttl: duration.pipe(z.number().min(1000, 'ttl must be at least 1s').max(86_400_000, 'ttl must be at most 24h')).optional().describe('30s'),
          weight: intArg(0, 256).optional().describe('N'),
        }),
        positionals: ['service', 'instance', 'address'],
        serviceArg: 'service',
        mutating: true,
        async handler(ctx, { service, instance, address: addr, ttl, weight }) {
          const { created } = await ctx.services.registry.register(service, instance, addr, {
            by: ctx.caller.userId,
            ...(ttl !== undefined ? { ttlMs: ttl } : {}),
            ...(weight !== undefined ? { weight } : {}),
          });
          const extras = [ttl !== undefined ? `ttl ${formatDuration(ttl)}` : '', weight !== undefined ? `weight ${weight}` : '']
            .filter(Boolean)
            .join(', ');
          return ok(`${created ? 'registered' : 'updated'} ${service}/${instance} at ${addr}${extras ? ` (${extras})` : ''}`);
        },
      }),
      defineCommand({
        name: 'deregister',
        summary: 'remove an instance from the registry',
        args: z.object({ service: serviceName, instance: instanceName }),
        positionals: ['service', 'instance'],
        serviceArg: 'service',
        mutating: true,
        needsConfirmation: (ctx, { service, instance }) => lastReadyWarning(ctx, service, instance),
        async handler(ctx, { service, instance }) {
          const removed = await ctx.services.registry.deregister(service, instance);
          if (!removed) fail('E_NOT_FOUND', `${service}/${instance} is not registered`);
          return ok(`deregistered ${service}/${instance}`);
        },
      }),
    ],
  };
}

/** Removing the last instance that takes traffic is an outage: ask first. */
export async function lastReadyWarning(ctx: CommandContext, service: string, instance: string): Promise<string | undefined> {
  const { instances } = await ctx.services.registry.list(service);
  const ready = instances.filter((i) => (i.state?.state ?? 'ready') === 'ready');
  if (ready.length === 1 && ready[0]!.instance === instance) {
    return `${service}/${instance} is the last ready instance of ${service}; removing it leaves ${service} with no traffic`;
  }
  return undefined;
}
