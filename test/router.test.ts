import { describe, expect, it } from 'vitest';
import { ANY_SERVICE } from '../src/core/acl-types.js';
import { replyToText } from '../src/core/reply.js';
import { aclFrom, shellCaller, testRouter } from './helpers/core.js';

describe('router', () => {
  it('registers through the plugin and writes one audit record', async () => {
    const { router, registry, audits } = testRouter();
    const reply = await router.dispatch({ text: 'register web web-1 10.0.0.1:80 --weight 10', caller: shellCaller(), requestId: 'r1' });
    expect(reply).toMatchObject({ ok: true, summary: 'registered web/web-1 at 10.0.0.1:80 (weight 10)' });
    expect((await registry.get('web', 'web-1'))?.state).toMatchObject({ weight: 10, by: 'U1', state: 'ready' });
    expect(audits).toHaveLength(1);
    expect(audits[0]).toMatchObject({
      requestId: 'r1',
      user: 'U1',
      channel: 'dm',
      source: 'shell',
      command: 'register',
      args: { service: 'web', instance: 'web-1', address: '10.0.0.1:80', weight: 10 },
      result: 'ok',
    });
    expect(audits[0]!.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('says "did you mean" for an unknown command, audited as invalid', async () => {
    const { router, audits } = testRouter();
    const reply = await router.dispatch({ text: 'stauts web', caller: shellCaller() });
    expect(reply).toMatchObject({ ok: false, code: 'E_UNKNOWN_COMMAND' });
    expect(reply.summary).toContain('did you mean "status"');
    expect(audits[0]).toMatchObject({ command: 'stauts', result: 'invalid', code: 'E_UNKNOWN_COMMAND' });
  });

  it('explains malformed arguments with usage and writes nothing', async () => {
    const { router, registry } = testRouter();
    const reply = await router.dispatch({ text: 'register web web-1 10.0.0.1:99999', caller: shellCaller() });
    expect(reply.ok).toBe(false);
    expect(reply.code).toBe('E_BAD_ARGS');
    expect(replyToText(reply)).toContain('port must be a number 1-65535');
    expect(replyToText(reply)).toContain('usage: register <service> <instance> <host:port> [--ttl 30s] [--weight N]');
    expect(registry.instances.size).toBe(0);
  });

  it('refuses before looking at arguments when the command is not allowed at all', async () => {
    const { router, audits, metrics } = testRouter({ acl: aclFrom((r) => r.command !== 'register') });
    const reply = await router.dispatch({ text: 'register', caller: shellCaller() });
    expect(reply).toMatchObject({ ok: false, code: 'E_DENIED' });
    expect(reply.summary).toContain('test rule denies');
    expect(audits[0]?.result).toBe('denied');
    expect(await metrics.registry.getSingleMetricAsString('switchyard_acl_refusals_total')).toContain('command="register"} 1');
  });

  it('passes the service argument to the ACL', async () => {
    const seen: unknown[] = [];
    const { router, registry } = testRouter({
      acl: aclFrom((r) => {
        seen.push(r.service);
        return r.service !== 'payments';
      }),
    });
    const reply = await router.dispatch({ text: 'register payments p1 10.0.0.1:80', caller: shellCaller() });
    expect(reply.code).toBe('E_DENIED');
    expect(reply.summary).toContain('register on payments');
    expect(seen).toEqual([ANY_SERVICE, 'payments']);
    expect(registry.instances.size).toBe(0);
  });

  it('help lists only the commands the caller may run', async () => {
    const { router } = testRouter({ acl: aclFrom((r) => r.command === 'help' || r.command === 'status') });
    const text = replyToText(await router.dispatch({ text: 'help', caller: shellCaller() }));
    expect(text).toContain('status [service]');
    expect(text).not.toContain('register');
    const one = await router.dispatch({ text: 'help register', caller: shellCaller() });
    expect(one).toMatchObject({ ok: false, code: 'E_NOT_FOUND' });
    const empty = await router.dispatch({ text: '', caller: shellCaller() });
    expect(replyToText(empty)).toContain('commands you may run');
  });

  it('asks for confirmation before removing the last ready instance', async () => {
    const { router, registry } = testRouter();
    await router.dispatch({ text: 'register web web-1 10.0.0.1:80', caller: shellCaller() });
    const refused = await router.dispatch({ text: 'deregister web web-1', caller: shellCaller() });
    expect(refused).toMatchObject({ ok: false, code: 'E_CONFIRM_REQUIRED' });
    expect(replyToText(refused)).toContain('deregister web web-1 --yes');
    expect(registry.instances.size).toBe(1);
    const done = await router.dispatch({ text: 'deregister web web-1 --yes', caller: shellCaller() });
    expect(done).toMatchObject({ ok: true, summary: 'deregistered web/web-1' });
    expect(registry.instances.size).toBe(0);
  });

  it('does not ask when other ready instances remain', async () => {
    const { router } = testRouter();
    await router.dispatch({ text: 'register web web-1 10.0.0.1:80', caller: shellCaller() });
    await router.dispatch({ text: 'register web web-2 10.0.0.2:80', caller: shellCaller() });
    expect(await router.dispatch({ text: 'deregister web web-1', caller: shellCaller() })).toMatchObject({ ok: true });
  });

  it('reports deregistering an unknown instance as not found', async () => {
    const { router } = testRouter();
    const r = await router.dispatch({ text: 'deregister web nope --yes', caller: shellCaller() });
    expect(r).toMatchObject({ ok: false, code: 'E_NOT_FOUND', summary: 'web/nope is not registered' });
  });

  it('turns an unexpected exception into an internal error without leaking it', async () => {
    const { router, registry, audits } = testRouter();
    registry.list = async () => {
      throw new Error('secret internals');
    };
    const r = await router.dispatch({ text: 'status', caller: shellCaller(), requestId: 'req-9' });
    expect(r).toMatchObject({ ok: false, code: 'E_INTERNAL' });
    expect(r.summary).toContain('req-9');
    expect(r.summary).not.toContain('secret internals');
    expect(audits[0]).toMatchObject({ result: 'error', code: 'E_INTERNAL' });
  });

  it('status shows instances, state and desired replicas', async () => {
    const { router, registry } = testRouter();
    await router.dispatch({ text: 'register web web-1 10.0.0.1:80', caller: shellCaller() });
    await router.dispatch({ text: 'register web web-2 10.0.0.2:80 --ttl 30s', caller: shellCaller() });
    await registry.setState('web', 'web-2', 'drain', 'U2');
    await registry.setDesired('web', 2, 'U1');
    const text = replyToText(await router.dispatch({ text: 'status web', caller: shellCaller() }));
    expect(text).toContain('web: 2 instances, 1 ready, desired 2');
    expect(text).toMatch(/web-2\s+10\.0\.0\.2:80\s+drain\s+100\s+yes\s+U2/);
  });

  it('counts commands by name and result', async () => {
    const { router, metrics } = testRouter();
    await router.dispatch({ text: 'status', caller: shellCaller() });
    await router.dispatch({ text: 'bogus', caller: shellCaller() });
    const text = await metrics.registry.metrics();
    expect(text).toContain('switchyard_commands_total{command="status",result="ok"} 1');
    expect(text).toContain('switchyard_commands_total{command="unknown",result="invalid"} 1');
  });
});
