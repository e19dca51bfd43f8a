/**
 * The router with what test/router-unit.test.ts always passes left out or watched: no audit
 * sink (the audit goes to the log), no metrics, no request id, no progress callback; what it
 * logs; the measured duration; an approval for a command without a service. Found by reading
 * router.ts against mutation testing (docs/TESTING.md); every fixture is built in its test.
 */
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import type { AclDecision, ApprovalRequirement } from '../src/core/acl-types.js';
import type { ApprovalRecord, ApprovalRequester } from '../src/core/approval.js';
import type { AuditRecord } from '../src/core/audit.js';
import type { Caller } from '../src/core/caller.js';
import type { Facades } from '../src/core/facades.js';
import { createMetrics } from '../src/core/metrics.js';
import { defineCommand, type CommandDef } from '../src/core/plugin-api.js';
import { Router, type RouterDeps } from '../src/core/router.js';
import { throwingCommand } from './helpers/core.js';

const slack = (userId = 'U1', channel = 'COPS'): Caller => ({ userId, channel, source: 'slack' });
const allowAll = { decide: (): AclDecision => ({ allowed: true, reason: 'allowed by test' }) };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A logger at `level` whose lines the test reads. */
function capture(level = 'info') {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  return { log, lines };
}

const echo = defineCommand({
  name: 'echo',
  summary: 'says it back',
  args: z.object({ service: z.string().describe('service') }),
  positionals: ['service'],
  serviceArg: 'service',
  handler: async (_ctx, a) => a.service,
});

/** A router over `commands`; what a test leaves out is off: allow-all ACL, silent log, audit dropped. */
function routerOf(commands: CommandDef[], deps: Partial<RouterDeps> = {}): Router {
  return new Router({
    plugins: [{ name: 'p', commands }],
    acl: allowAll,
    facades: {} as Facades,
    log: pino({ level: 'silent' }),
    audit: { record: () => {} },
    ...deps,
  });
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('Router without an audit sink or metrics', () => {
  it('writes the audit record to the log at info, even when the log level is warn', async () => {
    const { log, lines } = capture('warn');
    const router = new Router({ plugins: [{ name: 'p', commands: [echo] }], acl: allowAll, facades: {} as Facades, log });
    expect(await router.dispatch({ text: 'echo web', caller: slack(), requestId: 'r1' })).toEqual({ ok: true, summary: 'web' });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 30,
      component: 'audit',
      audit: true,
      msg: 'audit echo ok',
      requestId: 'r1',
      user: 'U1',
      channel: 'COPS',
      source: 'slack',
      command: 'echo',
      args: { service: 'web' },
      result: 'ok',
    });
  });

  it('refuses, fails and succeeds without metrics to count in', async () => {
    const acl = { decide: (r: { service?: unknown }): AclDecision => ({ allowed: r.service !== 'payments', reason: 'denied by rule #3' }) };
    const audits: AuditRecord[] = [];
    const router = routerOf([echo], { acl, audit: { record: (r) => audits.push(r) } });
    expect((await router.dispatch({ text: 'echo payments', caller: slack() })).code).toBe('E_DENIED');
    expect((await router.dispatch({ text: 'echo web', caller: slack() })).ok).toBe(true);
    expect(audits.map((a) => a.result)).toEqual(['denied', 'ok']);
  });
});

describe('Router: ACL refusals metric', () => {
  it('counts refusals only: an unknown command, bad arguments or a failing handler are not', async () => {
    const acl = { decide: (r: { service?: unknown }): AclDecision => ({ allowed: r.service !== 'payments', reason: 'denied by rule #3' }) };
    const metrics = createMetrics();
    const router = routerOf([echo], { acl, metrics });
    for (const text of ['ecoh web', 'echo', 'echo "open', 'echo payments']) await router.dispatch({ text, caller: slack() });
    const lines = (await metrics.registry.getSingleMetricAsString('switchyard_acl_refusals_total')).split('\n').filter((l) => !l.startsWith('#'));
    expect(lines).toEqual(['switchyard_acl_refusals_total{command="echo"} 1']);
  });
});

describe('Router: request ids and progress', () => {
  it('makes up a request id when the front-end gives none, the same in the audit and the reply', async () => {
    const broken = throwingCommand('boom');
    const audits: AuditRecord[] = [];
    const router = routerOf([broken], { audit: { record: (r) => audits.push(r) } });
    const reply = await router.dispatch({ text: 'broken', caller: slack() });
    expect(audits[0]?.requestId).toMatch(UUID);
    expect(reply.summary).toBe(`internal error (request ${audits[0]?.requestId}); details are in the bot's log`);
  });

  it('a handler may report progress when the front-end shows none', async () => {
    const chatty = defineCommand({
      name: 'chatty',
      summary: 'c',
      args: z.object({}),
      positionals: [],
      handler: async (ctx) => {
        ctx.progress('step 1');
        return 'done';
      },
    });
    const router = routerOf([chatty]);
    expect(await router.dispatch({ text: 'chatty', caller: slack() })).toEqual({ ok: true, summary: 'done' });
  });
});

describe('Router: what it logs', () => {
  it('logs an unexpected failure with the error, the command and who asked, and keeps it out of the reply', async () => {
    const broken = throwingCommand('secret detail');
    const { log, lines } = capture();
    const router = routerOf([broken], { log });
    const reply = await router.dispatch({ text: 'broken', caller: slack('U7', 'C9'), requestId: 'r9' });
    expect(JSON.stringify(reply)).not.toContain('secret detail');
    expect(lines.find((l) => l.level === 50)).toMatchObject({
      msg: 'command failed unexpectedly',
      command: 'broken',
      requestId: 'r9',
      user: 'U7',
      channel: 'C9',
      source: 'slack',
      err: { message: 'secret detail' },
    });
  });

  it('logs a failure that comes after the deadline instead of leaving it unhandled', async () => {
    let fail: (e: Error) => void = () => {};
    const late = defineCommand({
      name: 'late',
      summary: 'l',
      args: z.object({}),
      positionals: [],
      timeoutMs: 20,
      handler: () => new Promise<string>((_, reject) => (fail = reject)),
    });
    const { log, lines } = capture();
    const router = routerOf([late], { log });
    expect((await router.dispatch({ text: 'late', caller: slack(), requestId: 'r5' })).code).toBe('E_TIMEOUT');
    fail(new Error('too late'));
    await vi.waitFor(() => expect(lines.some((l) => l.msg === 'command failed after its deadline')).toBe(true), { timeout: 10_000 });
    expect(lines.find((l) => l.msg === 'command failed after its deadline')).toMatchObject({
      level: 40,
      command: 'late',
      requestId: 'r5',
      err: { message: 'too late' },
    });
  });
});

describe('Router: duration', () => {
  it('audits the handling time in milliseconds to the microsecond, and observes it in seconds', async () => {
    // performance.now is what the router measures with; a handler that "takes" 1234.5678 ms
    // moves it forward without waiting.
    let clock = 50_000;
    vi.spyOn(performance, 'now').mockImplementation(() => clock);
    const slowish = defineCommand({
      name: 'slowish',
      summary: 's',
      args: z.object({}),
      positionals: [],
      handler: async () => {
        clock += 1234.5678;
        // A real wait inside the handler: a deadline computed wrongly (already past) would cut it off.
        await new Promise((r) => setTimeout(r, 5));
        return 'ok';
      },
    });
    const audits: AuditRecord[] = [];
    const metrics = createMetrics();
    const router = routerOf([slowish], { audit: { record: (r) => audits.push(r) }, metrics });
    expect(await router.dispatch({ text: 'slowish', caller: slack() })).toEqual({ ok: true, summary: 'ok' });
    expect(audits[0]?.durationMs).toBe(1234.568);
    const text = await metrics.registry.getSingleMetricAsString('switchyard_command_duration_seconds');
    const sum = /switchyard_command_duration_seconds_sum\{command="slowish"\} (\S+)/.exec(text)?.[1];
    expect(Number(sum)).toBeCloseTo(1.234568, 9);
    expect(text).toContain('switchyard_command_duration_seconds_bucket{le="1",command="slowish"} 0');
    expect(text).toContain('switchyard_command_duration_seconds_bucket{le="2.5",command="slowish"} 1');
  });
});

describe('Router: approval of a command without a service', () => {
  const requirement: ApprovalRequirement = { rule: 'rule #1', groups: ['leads'], count: 1, expiryMs: 60_000, shellAllowed: false, approvers: new Set(['L1']) };
  const acl = { decide: (): AclDecision => ({ allowed: false, reason: 'needs approval by 1 of leads', approval: requirement }) };
  const reload = defineCommand({ name: 'reload', summary: 'r', args: z.object({}), positionals: [], handler: async () => 'reloaded' });

  it('asks for approval without a service key, and a refusal names no service', async () => {
    const asked: Parameters<ApprovalRequester['request']>[0][] = [];
    const approvals: ApprovalRequester = {
      request: async (p) => {
        asked.push(p);
        return { id: 'ap-2' } as ApprovalRecord;
      },
    };
    const router = routerOf([reload], { acl, approvals });
    expect((await router.dispatch({ text: 'reload', caller: slack() })).summary).toBe(
      'reload needs approval by 1 of leads before it runs: request ap-2 is waiting',
    );
    expect(asked).toHaveLength(1);
    expect('service' in asked[0]!).toBe(false);
    expect((await router.dispatch({ text: 'reload', caller: slack('U1', 'dm') })).summary).toBe(
      'reload needs approval by 1 of leads; ask in a channel where the approvers can see the request: nothing was changed',
    );
  });
});

describe('Router: the coarse check comes before the arguments', () => {
  it('someone who may not run a command is refused before learning its usage', async () => {
    const acl = { decide: (): AclDecision => ({ allowed: false, reason: 'no rule allows it' }) };
    const router = routerOf([echo], { acl });
    expect(await router.dispatch({ text: 'echo --nope', caller: slack() })).toEqual({
      ok: false,
      summary: 'you may not run echo here: no rule allows it',
      details: [],
      code: 'E_DENIED',
    });
  });
});
