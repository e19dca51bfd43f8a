import type { DrainOutcome, Plugin, PluginApi, Reply } from '../src/plugin.js';

const DEFAULT_TIMEOUT_MS = 60_000;
const secs = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;
const sessions = (n: number) => `${n} session${n === 1 ? '' : 's'}`;

/** drain / undrain: take an instance out of rotation without cutting its sessions, and put it back. */
export default function drain(api: PluginApi): Plugin {
  const { z, args } = api;
  const target = { service: args.service, instance: args.instance };
  return {
    name: 'drain',
    commands: [
      api.defineCommand({
        name: 'drain',
        summary: 'take an instance out of rotation without cutting live sessions; waits (at most --timeout) for its sessions to end',
        args: z.object({
          ...target,
          timeout: args.duration.pipe(z.number().min(0).max(3_600_000, 'timeout must be at most 1h')).optional().describe('60s'),
        }),
        positionals: ['service', 'instance'],
        serviceArg: 'service',
        // The wait itself is bounded by --timeout; the rest is etcd and the lock.
        timeoutMs: ({ timeout }) => (timeout ?? DEFAULT_TIMEOUT_MS) + 60_000,
        needsConfirmation: (ctx, { service, instance }) => ctx.rotation.lastReadyWarning(service, instance),
        async handler(ctx, { service, instance, timeout }) {
          const { already, outcome } = await ctx.rotation.drain(service, instance, {
            timeoutMs: timeout ?? DEFAULT_TIMEOUT_MS,
            progress: (t) => ctx.progress(t),
          });
          const done = already ? `${service}/${instance} was already draining` : `${service}/${instance} set to drain`;
          return drainReply(api, done, service, instance, outcome);
        },
      }),
      api.defineCommand({
        name: 'undrain',
        summary: 'put a drained (or maintenance) instance back into rotation',
        args: z.object(target),
        positionals: ['service', 'instance'],
        serviceArg: 'service',
        async handler(ctx, { service, instance }) {
          const { already, outcome } = await ctx.rotation.undrain(service, instance, { progress: (t) => ctx.progress(t) });
          if (already) return `${service}/${instance} is already ready`;
          const done = `${service}/${instance} set to ready`;
          switch (outcome.kind) {
            case 'ready':
              return `${done}: back in rotation (haproxy ${outcome.agentId}: ${outcome.status})`;
            case 'unobserved':
              return `${done}; the HAProxy agents put it back into rotation`;
            case 'unreadable':
              return `${done}; HAProxy cannot be asked here: ${outcome.error}`;
            case 'absent':
              return api.reply.fail('E_TIMEOUT', `${done} in etcd, but HAProxy (agent ${outcome.agentId}) does not have it after ${secs(5000)}`, [
                'status shows the agent’s last apply',
              ]);
            case 'not-applied':
              return api.reply.fail(
                'E_TIMEOUT',
                `${done} in etcd, but HAProxy (agent ${outcome.agentId}) still shows it ${outcome.status} after ${secs(outcome.waitedMs)}`,
                ['status shows the agent’s last apply'],
              );
            default:
              return done;
          }
        },
      }),
    ],
  };
}

function drainReply(api: PluginApi, done: string, service: string, instance: string, w: DrainOutcome): Reply | string {
  switch (w.kind) {
    case 'drained':
      return `${done}: no sessions left after ${secs(w.waitedMs)} (haproxy ${w.agentId})`;
    case 'open':
      return api.reply.text(`${done}: ${sessions(w.sessions)} still open after ${secs(w.waitedMs)} (haproxy ${w.agentId})`, [
        `new requests already go elsewhere; run drain ${service} ${instance} again to keep watching`,
      ]);
    case 'not-applied':
      return api.reply.fail('E_TIMEOUT', `${done} in etcd, but HAProxy (agent ${w.agentId}) still shows it ${w.status} after ${secs(w.waitedMs)}`, [
        'status shows the agent’s last apply',
      ]);
    case 'absent':
      return `${done}; it is not in this bot’s HAProxy (agent ${w.agentId}), so there are no sessions to watch here`;
    case 'unreadable':
      return `${done}; sessions cannot be observed: ${w.error}`;
    case 'unobserved':
      return api.reply.text(`${done}; the HAProxy agents take it out of rotation`, [
        `sessions cannot be observed from here: ${w.reason}; status shows each agent’s last apply`,
      ]);
  }
}
