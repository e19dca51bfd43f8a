import type { Plugin, PluginApi } from '../src/plugin.js';

/** Longest mute: a forgotten one must not hide a service for long. */
export const MAX_MUTE_MS = 7 * 86_400_000;

/**
 * `feed mute <service> <duration>` / `feed unmute <service>`: leave a noisy service out of
 * the feed for a while. Typed in a feed channel it mutes that feed, elsewhere every feed;
 * it ends by itself. Announced in the feed, so the silence is never a mystery.
 */
export default function feed(api: PluginApi): Plugin {
  const { z, args } = api;
  return {
    name: 'feed',
    commands: [
      api.defineCommand({
        name: 'feed',
        summary: 'mute a service in the feed for a while (`feed mute web 30m`), or unmute it; ends by itself',
        args: z.object({
          action: z.enum(['mute', 'unmute']).describe('mute|unmute'),
          service: args.service,
          duration: args.duration.optional(),
        }),
        positionals: ['action', 'service', 'duration'],
        serviceArg: 'service',
        async handler(ctx, { action, service, duration }) {
          const who = ctx.caller.userId;
          if (action === 'unmute') {
            if (duration !== undefined) api.errors.fail('E_BAD_ARGS', 'feed unmute takes no duration', { details: ['usage: feed unmute <service>'] });
            const removed = await ctx.feed.unmute(service, ctx.caller.channel);
            if (!removed) return `${service} was not muted here`;
            ctx.feed.publish({ kind: 'feed.unmute', text: `feed: ${service} unmuted by ${who}` });
            return `${service} unmuted`;
          }
          if (duration === undefined) api.errors.fail('E_BAD_ARGS', 'feed mute needs a duration, e.g. `feed mute web 30m`');
          if (duration < 1000 || duration > MAX_MUTE_MS) api.errors.fail('E_BAD_ARGS', 'a mute lasts from 1s to 7d');
          const m = await ctx.feed.mute(service, duration, ctx.caller.channel);
          ctx.feed.publish({ kind: 'feed.mute', text: `feed: ${service} muted in ${m.scope} until ${m.until} by ${who}` });
          return `${service} muted in ${m.scope} until ${m.until} (\`feed unmute ${service}\` ends it sooner)`;
        },
      }),
    ],
  };
}
