import type { Plugin, PluginApi } from '../src/plugin.js';

/**
 * `weight <service> <instance> <0-256>`: HAProxy's share of new traffic for one instance,
 * changed at runtime (the agents apply it with `set server … weight`, no reload). Unlike
 * registering again, it keeps the registration and its TTL lease.
 */
export default function weight(api: PluginApi): Plugin {
  const { z, args } = api;
  return {
    name: 'weight',
    commands: [
      api.defineCommand({
        name: 'weight',
        summary: 'change an instance’s HAProxy weight (0–256; 0 takes no new traffic) at runtime, keeping its registration and lease',
        args: z.object({ service: args.service, instance: args.instance, weight: args.weight.describe('0-256') }),
        positionals: ['service', 'instance', 'weight'],
        serviceArg: 'service',
        async handler(ctx, { service, instance, weight: to }) {
          const current = await ctx.registry.get(service, instance);
          if (!current) api.errors.fail('E_NOT_FOUND', `${service}/${instance} is not registered`);
          const from = current.state?.weight;
          if (from === to) return `${service}/${instance} already has weight ${to}`;
          await ctx.registry.setWeight(service, instance, to);
          const lease = current.lease ? '; its lease is kept' : '';
          return `${service}/${instance} weight ${from ?? 'default'} → ${to}${lease}; the HAProxy agents apply it at runtime`;
        },
      }),
    ],
  };
}
