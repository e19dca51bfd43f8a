import type { Plugin, PluginApi, Reply, ScaleOutcome } from '../src/plugin.js';

/** `scale <service> <replicas>`: the launch script, done in parallel, with drain on the way down. */
export default function scale(api: PluginApi): Plugin {
  const { z, args } = api;
  return {
    name: 'scale',
    commands: [
      api.defineCommand({
        name: 'scale',
        summary: 'converge a service’s containers to N: start and register in parallel; scale down by draining, deregistering, stopping',
        args: z.object({ service: args.service, replicas: args.int(0, 1000).describe('replicas') }),
        positionals: ['service', 'replicas'],
        serviceArg: 'service',
        // Starts, health checks and drains are each bounded by their own settings; this only
        // bounds the reply.
        timeoutMs: 15 * 60_000,
        async needsConfirmation(ctx, { service, replicas }) {
          ctx.orchestration.checkScale(service, replicas);
          return replicas === 0 ? `scaling ${service} to 0 stops every instance of ${service}` : undefined;
        },
        async handler(ctx, { service, replicas }) {
          return scaleReply(api, await ctx.orchestration.scale(service, replicas, { progress: (text) => ctx.progress(text) }));
        },
      }),
    ],
  };
}

function scaleReply(api: PluginApi, r: ScaleOutcome): Reply {
  const live = r.running;
  const table = api.reply.table(
    `${r.service}: ${live.length} running, desired ${r.replicas}`,
    ['instance', 'address', 'state', 'container', 'status'],
    live.map((iv) => [iv.instance, iv.address, iv.state, iv.container, iv.status]),
  );
  const notes = [...r.tidied.map((t) => `tidied: ${t}`), ...r.problems.map((p) => `note: ${p}`)];
  const what = r.started.length ? `started ${r.started.join(', ')}` : r.retired.length ? `removed ${r.retired.join(', ')}` : 'nothing to change';
  if (r.failed.length === 0) {
    const summary =
      r.before === r.replicas ? `${r.service} already runs ${r.replicas}: ${what}` : `scaled ${r.service} from ${r.before} to ${live.length}: ${what}`;
    return api.reply.ok(summary, { ...(notes.length ? { details: notes } : {}), tables: [table] });
  }
  const verb = r.replicas > r.before ? 'start' : 'stop';
  const failure = api.reply.fail(
    r.failed[0]!.code,
    `${r.service}: ${live.length} of ${r.replicas} running — could not ${verb} ${r.failed.length} instance${r.failed.length === 1 ? '' : 's'}${
      r.started.length + r.retired.length ? ` (${what})` : ''
    }`,
    [
      ...r.failed.flatMap((f) => [`${f.instance}: ${f.message}`, ...f.details.map((d) => `    ${d}`)]),
      verb === 'start'
        ? 'failed instances were removed and never registered; what started is kept'
        : 'instances that could not be stopped are left as they are',
      `desired replicas of ${r.service} stay at ${r.replicas}`,
      ...notes,
    ],
  );
  return { ...failure, tables: [table] };
}
