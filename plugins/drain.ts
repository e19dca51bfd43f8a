import { z } from 'zod';
import { backendName } from '../src/adapters/haproxy/model.js';
import type { StatRow } from '../src/adapters/haproxy/runtime-parse.js';
import type { HaproxyControl } from '../src/agent/control.js';
import { fail } from '../src/core/errors.js';
import { duration, instanceName, serviceName } from '../src/core/names.js';
import { defineCommand, type CommandContext, type Plugin } from '../src/core/plugin.js';
import { ok, type Reply } from '../src/core/reply.js';
import { describeHolder } from '../src/orchestrator/lock.js';
import { orchestratorSettings } from '../src/orchestrator/settings.js';
import { lastReadyWarning } from './register.js';

const DEFAULT_TIMEOUT_MS = 60_000;
/** HAProxy has no push for session counts: `show stat` is read this often while draining. */
const POLL_MS = 200;
/** How long the agent may take to show a state change before we say it has not applied it. */
const APPLY_GRACE_MS = 5_000;
/** HAProxy statuses in which a server gets no new requests. */
const OUT_OF_ROTATION = new Set<StatRow['status']>(['DRAIN', 'MAINT', 'DOWN', 'NOLB']);

const target = { service: serviceName, instance: instanceName };
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const secs = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;

/** drain / undrain: take an instance out of rotation without cutting its sessions, and put it back. */
export default function drainPlugin(): Plugin {
  return {
    name: 'drain',
    commands: [
      defineCommand({
        name: 'drain',
        summary: 'take an instance out of rotation without cutting live sessions; waits (at most --timeout) for its sessions to end',
        args: z.object({
          ...target,
          timeout: duration.pipe(z.number().min(0).max(3_600_000, 'timeout must be at most 1h')).optional().describe('60s'),
        }),
        positionals: ['service', 'instance'],
        serviceArg: 'service',
        mutating: true,
        needsConfirmation: (ctx, { service, instance }) => lastReadyWarning(ctx, service, instance),
        async handler(ctx, { service, instance, timeout }) {
          const current = await ctx.services.registry.get(service, instance);
          if (!current) fail('E_NOT_FOUND', `${service}/${instance} is not registered`);
          const already = current.state?.state === 'drain';
          if (!already) await underLock(ctx, service, `drain ${service} ${instance}`, () => ctx.services.registry.setState(service, instance, 'drain', ctx.caller.userId));
          const done = already ? `${service}/${instance} was already draining` : `${service}/${instance} set to drain`;
          const hap = ctx.services.haproxy;
          if (!hap) {
            return ok(`${done}; the HAProxy agents take it out of rotation`, {
              details: ['sessions cannot be observed from here: this bot runs no HAProxy agent (no haproxy: in its config); status shows each agent’s last apply'],
            });
          }
          const waited = await watchDrain(hap, service, instance, timeout ?? DEFAULT_TIMEOUT_MS, (t) => ctx.progress(t));
          return drainReply(done, service, instance, hap.agentId, waited);
        },
      }),
      defineCommand({
        name: 'undrain',
        summary: 'put a drained (or maintenance) instance back into rotation',
        args: z.object(target),
        positionals: ['service', 'instance'],
        serviceArg: 'service',
        mutating: true,
        async handler(ctx, { service, instance }) {
          const current = await ctx.services.registry.get(service, instance);
          if (!current) fail('E_NOT_FOUND', `${service}/${instance} is not registered`);
          if ((current.state?.state ?? 'ready') === 'ready') return ok(`${service}/${instance} is already ready`);
          await underLock(ctx, service, `undrain ${service} ${instance}`, () => ctx.services.registry.setState(service, instance, 'ready', ctx.caller.userId));
          const done = `${service}/${instance} set to ready`;
          const hap = ctx.services.haproxy;
          if (!hap) return ok(`${done}; the HAProxy agents put it back into rotation`);
          const row = await waitForStat(hap, service, instance, (r) => !!r && !['DRAIN', 'MAINT'].includes(r.status), APPLY_GRACE_MS);
          if (row.kind === 'error') return ok(`${done}; HAProxy cannot be asked here: ${row.error}`);
          if (row.kind === 'timeout') {
            const shows = row.row ? `still shows it ${row.row.status}` : 'does not have it';
            return { ok: false, code: 'E_TIMEOUT', summary: `${done} in etcd, but HAProxy (agent ${hap.agentId}) ${shows} after ${secs(APPLY_GRACE_MS)}`, details: ['status shows the agent’s last apply'] };
          }
          return ok(`${done}: back in rotation (haproxy ${hap.agentId}: ${row.row!.status})`);
        },
      }),
    ],
  };
}

/** The per-service lock (when configured) serialises drains with scale. */
async function underLock<T>(ctx: CommandContext, service: string, what: string, fn: () => Promise<T>): Promise<T> {
  const locks = ctx.services.locks;
  if (!locks) return fn();
  const held = await locks.acquire(
    service,
    { by: ctx.caller.userId, what, requestId: ctx.requestId },
    { waitMs: orchestratorSettings(ctx.services.config).lockWaitMs, onWait: (h) => ctx.progress(`waiting for ${describeHolder(h)}`) },
  );
  try {
    return await fn();
  } finally {
    await held.release();
  }
}

type Watched =
  | { kind: 'drained'; waitedMs: number }
  | { kind: 'open'; sessions: number; waitedMs: number }
  | { kind: 'not-applied'; status: string; sessions: number; waitedMs: number }
  | { kind: 'absent' }
  | { kind: 'error'; error: string };

const findRow = (rows: StatRow[], service: string, instance: string) => {
  const backend = backendName(service);
  return rows.find((r) => r.backend === backend && r.name === instance);
};

/**
 * Follow the instance in the local HAProxy until the agent has applied the drain and its
 * sessions reach 0, or the timeout; a new session count is reported as progress.
 */
async function watchDrain(hap: HaproxyControl, service: string, instance: string, timeoutMs: number, progress: (t: string) => void): Promise<Watched> {
  const started = Date.now();
  const elapsed = () => Date.now() - started;
  let reported: string | undefined;
  const say = (text: string) => {
    if (text !== reported) progress((reported = text));
  };
  let last: StatRow | undefined;
  for (;;) {
    let row: StatRow | undefined;
    try {
      row = findRow(await hap.stats(), service, instance);
    } catch (err) {
      // HAProxy restarting or gone: not worth waiting the whole timeout for.
      if (elapsed() >= Math.min(APPLY_GRACE_MS, timeoutMs)) return { kind: 'error', error: err instanceof Error ? err.message : String(err) };
    }
    if (row) last = row;
    const applied = !!row && OUT_OF_ROTATION.has(row.status);
    if (applied && row!.scur === 0) return { kind: 'drained', waitedMs: elapsed() };
    if (!row && elapsed() >= Math.min(APPLY_GRACE_MS, timeoutMs)) return { kind: 'absent' };
    if (applied) say(`${service}/${instance}: ${row!.scur} session${row!.scur === 1 ? '' : 's'} draining`);
    else if (row) say(`waiting for agent ${hap.agentId} to apply the drain (HAProxy shows ${row.status})`);
    if (elapsed() >= timeoutMs) {
      if (!last || !OUT_OF_ROTATION.has(last.status)) return { kind: 'not-applied', status: last?.status ?? '-', sessions: last?.scur ?? 0, waitedMs: elapsed() };
      return { kind: 'open', sessions: last.scur, waitedMs: elapsed() };
    }
    await sleep(Math.min(POLL_MS, Math.max(1, timeoutMs - elapsed())));
  }
}

function drainReply(done: string, service: string, instance: string, agentId: string, w: Watched): Reply {
  switch (w.kind) {
    case 'drained':
      return ok(`${done}: no sessions left after ${secs(w.waitedMs)} (haproxy ${agentId})`);
    case 'open':
      return ok(`${done}: ${w.sessions} session${w.sessions === 1 ? '' : 's'} still open after ${secs(w.waitedMs)} (haproxy ${agentId})`, {
        details: [`new requests already go elsewhere; run drain ${service} ${instance} again to keep watching`],
      });
    case 'not-applied':
      return {
        ok: false,
        code: 'E_TIMEOUT',
        summary: `${done} in etcd, but HAProxy (agent ${agentId}) still shows it ${w.status} after ${secs(w.waitedMs)}`,
        details: ['status shows the agent’s last apply'],
      };
    case 'absent':
      return ok(`${done}; it is not in this bot’s HAProxy (agent ${agentId}), so there are no sessions to watch here`);
    case 'error':
      return ok(`${done}; sessions cannot be observed: ${w.error}`);
  }
}

type Waited = { kind: 'ok' | 'timeout'; row: StatRow | undefined } | { kind: 'error'; error: string };

/** Poll HAProxy until `pred` holds for the instance's row, at most `timeoutMs`. */
async function waitForStat(hap: HaproxyControl, service: string, instance: string, pred: (r: StatRow | undefined) => boolean, timeoutMs: number): Promise<Waited> {
  const deadline = Date.now() + timeoutMs;
  let row: StatRow | undefined;
  let error: string | undefined;
  for (;;) {
    try {
      row = findRow(await hap.stats(), service, instance);
      error = undefined;
      if (pred(row)) return { kind: 'ok', row };
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() >= deadline) return error ? { kind: 'error', error } : { kind: 'timeout', row };
    await sleep(POLL_MS);
  }
}
