import { describe, expect, it } from 'vitest';
import { aclOutcome, ANY_SERVICE } from '../src/core/acl-types.js';
import { parseAcl, type CompiledAcl } from '../src/core/acl.js';
import type { ApprovalRequester } from '../src/core/approval.js';
import { MemoryRegistry } from './helpers/memory-registry.js';
import { routerOver } from './helpers/core.js';

// Line numbers matter: reasons and errors point at them.
const ACL = `groups:
  oncall: [UONCALL1, UONCALL2]
  leads: [ULEAD1, ULEAD2]
rules:
  - allow: [status, help]
    users: ["*"]
  - name: oncall
    allow: ["*"]
    groups: [oncall, leads]
  - name: scale needs a lead
    allow: [scale]
    groups: [oncall, leads]
    approval: { groups: [leads], count: 2, expiry: 5m }
  - name: payments need a lead
    allow: [deregister]
    groups: [oncall]
    services: ["payments-*"]
    approval: { groups: [leads] }
    shell: allow
  - name: frozen
    deny: [scale]
    services: [legacy]
    users: ["*"]
`;

function compiled(text: string): CompiledAcl {
  const r = parseAcl(text, '/etc/switchyard/acl.yaml');
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.value;
}

function errors(text: string): string[] {
  const r = parseAcl(text, 'acl.yaml');
  if (r.ok) throw new Error('expected the file to be refused');
  return r.errors;
}

describe('acl.yaml approval rules', () => {
  const acl = compiled(ACL);

  it('a matching approval rule outweighs a plain allow: the third outcome names rule, groups and count', () => {
    const d = acl.decide({ userId: 'UONCALL1', channel: 'C1', command: 'scale', service: 'web' });
    expect(aclOutcome(d)).toBe('approval');
    expect(d.allowed).toBe(false);
    expect(d.reason).toBe('needs approval by 2 of leads (rule "scale needs a lead" at acl.yaml:10)');
    expect(d.approval).toMatchObject({ rule: 'rule "scale needs a lead" at acl.yaml:10', groups: ['leads'], count: 2, expiryMs: 300_000, shellAllowed: false });
    expect(d.approval?.approvers).toEqual(new Set(['ULEAD1', 'ULEAD2']));
    // A lead asking needs approval too: the rule is about the command, not the person.
    expect(aclOutcome(acl.decide({ userId: 'ULEAD1', channel: 'C1', command: 'scale', service: 'web' }))).toBe('approval');
  });

  it('deny still wins, and commands the approval rule does not name stay plainly allowed', () => {
    expect(aclOutcome(acl.decide({ userId: 'UONCALL1', channel: 'C1', command: 'scale', service: 'legacy' }))).toBe('deny');
    expect(aclOutcome(acl.decide({ userId: 'UONCALL1', channel: 'C1', command: 'drain', service: 'payments-api' }))).toBe('allow');
    expect(aclOutcome(acl.decide({ userId: 'UOTHER', channel: 'C1', command: 'scale', service: 'web' }))).toBe('deny');
  });

  it('services-limited approval applies to those services only; help (any service) then shows the command as plain', () => {
    const pay = acl.decide({ userId: 'UONCALL1', channel: 'C1', command: 'deregister', service: 'payments-api' });
    expect(pay.approval).toMatchObject({ count: 1, expiryMs: 15 * 60_000, shellAllowed: true });
    expect(aclOutcome(acl.decide({ userId: 'UONCALL1', channel: 'C1', command: 'deregister', service: 'web' }))).toBe('allow');
    expect(aclOutcome(acl.decide({ userId: 'UONCALL1', channel: 'C1', command: 'deregister', service: ANY_SERVICE }))).toBe('allow');
    expect(aclOutcome(acl.decide({ userId: 'UONCALL1', channel: 'C1', command: 'scale', service: ANY_SERVICE }))).toBe('approval');
  });

  it('is validated with file:line errors', () => {
    const base = `groups:\n  leads: [ULEAD1]\nrules:\n`;
    expect(errors(`${base}  - deny: [scale]\n    users: ["*"]\n    approval: { groups: [leads] }\n`)).toEqual([
      'acl.yaml:6: rules.0.approval: approval: goes on allow rules (a deny refuses outright)',
    ]);
    expect(errors(`${base}  - allow: [scale]\n    users: ["*"]\n    shell: allow\n`)).toEqual([
      'acl.yaml:6: rules.0.shell: shell: allow only applies to a rule with approval:',
    ]);
    expect(errors(`${base}  - allow: [scale]\n    users: ["*"]\n    approval: { groups: [leads], shell: allow }\n`)).toEqual([
      expect.stringMatching(/^acl\.yaml:6: rules\.0\.approval\.shell: unknown key/),
    ]);
    expect(errors(`${base}  - allow: [scale]\n    users: ["*"]\n    approval:\n      groups: [lead]\n`)).toEqual([
      'acl.yaml:7: rules.0.approval.groups.0: unknown group "lead" (define it under groups:)',
    ]);
    expect(errors(`${base}  - allow: [scale]\n    users: ["*"]\n    approval:\n      groups: [leads]\n      count: 2\n`)).toEqual([
      'acl.yaml:8: rules.0.approval.count: count 2 needs that many distinct approvers, but leads has 1 member',
    ]);
    expect(errors(`${base}  - allow: [scale]\n    users: ["*"]\n    approval:\n      groups: [leads]\n      expiry: 2d\n`)).toEqual([
      'acl.yaml:8: rules.0.approval.expiry: "2d" is not a duration (write 30s, 15m, 1h)',
    ]);
    expect(errors(`${base}  - allow: [scale]\n    users: ["*"]\n    approval: { groups: [leads] }\n    shell: yes\n`)).toEqual([
      'acl.yaml:7: rules.0.shell: the only value is "allow" (leave shell out to refuse it in the shell)',
    ]);
  });
});

describe('the router on approval rules', () => {
  const caller = (userId: string, channel: string, source: 'slack' | 'shell' = 'slack') => ({ userId, channel, source });
  const requests: Parameters<ApprovalRequester['request']>[0][] = [];
  const approvals: ApprovalRequester = {
    request: async (p) => {
      requests.push(p);
      return { ...p, id: `id-${requests.length}` } as never;
    },
  };

  it('records the request and answers with it, changing nothing', async () => {
    const registry = new MemoryRegistry();
    const router = routerOver({ registry }, { acl: compiled(ACL) });
    const r = routerOver({ registry }, { acl: compiled(ACL), approvals });
    await registry.register('payments-api', 'p1', '10.0.0.1:80', { by: 'test' });
    await registry.register('payments-api', 'p2', '10.0.0.2:80', { by: 'test' });
    const reply = await r.dispatch({ text: 'deregister payments-api p1', caller: caller('UONCALL1', 'C1') });
    expect(reply).toMatchObject({ ok: false, code: 'E_APPROVAL_PENDING', approval: { id: 'id-1' } });
    expect(reply.summary).toBe('deregister payments-api p1 needs approval by 1 of leads before it runs: request id-1 is waiting');
    expect(requests[0]).toMatchObject({ text: 'deregister payments-api p1', command: 'deregister', service: 'payments-api', caller: { userId: 'UONCALL1' } });
    expect(await registry.get('payments-api', 'p1')).toBeDefined();

    // Without a place to record it, and from a DM where approvers cannot see it: refused.
    const text = 'deregister payments-api p1';
    expect(await router.dispatch({ text, caller: caller('UONCALL1', 'C1') })).toMatchObject({ ok: false, code: 'E_APPROVAL_REQUIRED' });
    const dm = await r.dispatch({ text, caller: caller('UONCALL1', 'dm') });
    expect(dm.summary).toBe(
      'deregister on payments-api needs approval by 1 of leads (rule "payments need a lead" at acl.yaml:14); ask in a channel where the approvers can see the request: nothing was changed',
    );
    // shell: allow on that rule: the shell runs it without asking.
    expect(await r.dispatch({ text, caller: caller('UONCALL1', 'dm', 'shell') })).toMatchObject({ ok: true });
    expect(await registry.get('payments-api', 'p1')).toBeUndefined();
    expect(requests).toHaveLength(1);
  });

  it('help lists approval commands with what they need', async () => {
    const router = routerOver({ registry: new MemoryRegistry() }, { acl: compiled(ACL) });
    const list = await router.dispatch({ text: 'help', caller: caller('UONCALL1', 'C1') });
    const rows = list.tables?.[0]?.table.rows ?? [];
    expect(rows.find((r) => r[0]?.startsWith('scale'))?.[1]).toMatch(/\(needs approval by 2 of leads\)$/);
    expect(rows.find((r) => r[0]?.startsWith('status'))?.[1]).not.toMatch(/approval/);
    const one = await router.dispatch({ text: 'help scale', caller: caller('UONCALL1', 'C1') });
    expect(one.details).toEqual([expect.stringMatching(/^usage: scale/), 'needs approval by 2 of leads before it runs']);
  });
});
