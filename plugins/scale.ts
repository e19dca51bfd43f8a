import { z } from 'zod';
import { scalableService } from '../src/config/schema.js';
import { fail } from '../src/core/errors.js';
import { intArg, serviceName } from '../src/core/names.js';
import { defineCommand, type CommandContext, type Plugin } from '../src/core/plugin.js';
import type { Reply } from '../src/core/reply.js';
import { failureLines } from '../src/orchestrator/failure.js';
import { depsFromServices } from '../src/orchestrator/from-services.js';
import { scaleService, type ScaleResult } from '../src/orchestrator/scaler.js';

const args = z.object({ service: serviceName, replicas: intArg(0, 1000).describe('replicas') });

/** `scale <service> <replicas>`: the launch script, done in parallel, with drain on the way down. */
export default function scalePlugin(): Plugin {
  return {
    name: 'scale',
    commands: [
      defineCommand({
        name: 'scale',
        summary: 'converge a service’s containers to N: start and register in parallel; scale down by draining, deregistering, stopping',
        args,
        positionals: ['service', 'replicas'],
        serviceArg: 'service',
        mutating: true,
        async needsConfirmation(ctx, { service, replicas }) {
          check(ctx, service, replicas);
          return replicas === 0 ? `scaling ${service} to 0 stops every instance of ${service}` : undefined;
        },
        async handler(ctx, { service, replicas }) {
          check(ctx, service, replicas);
          const deps = depsFromServices(ctx.services, ctx.log);
          const result = await scaleService(deps, {
            service,
            replicas,
            actor: ctx.caller.userId,
            requestId: ctx.requestId,
            progress: (text) => ctx.progress(text),
          });
          return scaleReply(result);
        },
      }),
    ],
  };
}

function check(ctx: CommandContext, service: string, replicas: number): void {
  const svc = ctx.services.config.services[service];
  if (!svc) {
    const known = Object.keys(ctx.services.config.services);
    fail('E_NOT_FOUND', `${service} is not a configured service: only services under services: in switchyard.yaml can be scaled`, {
      details: [known.length ? `configured: ${known.sort().join(', ')}` : 'no service is configured'],
    });
  }
  scalableService(service, svc);
  if (replicas > svc.maxReplicas) fail('E_BAD_ARGS', `${service} allows at most ${svc.maxReplicas} replicas (services.${service}.maxReplicas); asked for ${replicas}`);
}

function scaleReply(r: ScaleResult): Reply {
  const live = r.after.managed.filter((iv) => iv.running);
  const table = {
    title: `${r.service}: ${live.length} running, desired ${r.replicas}`,
    table: {
      header: ['instance', 'address', 'state', 'container', 'status'],
      rows: live.map((iv) => [
        iv.instance,
        iv.registration?.address ?? '-',
        iv.registration ? (iv.registration.state?.state ?? 'ready') : 'unregistered',
        iv.running!.name,
        iv.running!.statusText,
      ]),
    },
  };
  const notes = [...r.tidied.map((t) => `tidied: ${t}`), ...r.problems.map((p) => `note: ${p}`)];
  const what = r.started.length
    ? `started ${r.started.map((s) => s.instance).join(', ')}`
    : r.retired.length
      ? `removed ${r.retired.join(', ')}`
      : 'nothing to change';
  if (r.failed.length === 0) {
    const summary = r.before === r.replicas ? `${r.service} already runs ${r.replicas}: ${what}` : `scaled ${r.service} from ${r.before} to ${live.length}: ${what}`;
    return { ok: true, summary, ...(notes.length ? { details: notes } : {}), tables: [table] };
  }
  const verb = r.replicas > r.before ? 'start' : 'stop';
  return {
    ok: false,
    code: r.failed[0]!.error.code,
    summary: `${r.service}: ${live.length} of ${r.replicas} running — could not ${verb} ${r.failed.length} instance${r.failed.length === 1 ? '' : 's'}${
      r.started.length + r.retired.length ? ` (${what})` : ''
    }`,
    details: [
      ...failureLines(r.failed),
      verb === 'start'
        ? 'failed instances were removed and never registered; what started is kept'
        : 'instances that could not be stopped are left as they are',
      `desired replicas of ${r.service} stay at ${r.replicas}`,
      ...notes,
    ],
    tables: [table],
  };
}
