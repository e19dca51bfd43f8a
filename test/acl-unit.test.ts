/**
 * ACL cases test/acl.test.ts does not pin down, found by mutation testing (docs/TESTING.md):
 * approval rules and their precedence, how rules are named in reasons, and the message of
 * each validation refusal. The ACL decides who may change production, so each of these
 * once let a mutated evaluator pass.
 */
import { describe, expect, it } from 'vitest';
import { aclOutcome, ANY_SERVICE, describeApprovers, type AclDecision } from '../src/core/acl-types.js';
import { aclFileSchema, compileAcl, DEFAULT_APPROVAL_EXPIRY_MS, parseAcl, type CompiledAcl } from '../src/core/acl.js';

function compiled(text: string): CompiledAcl {
  const r = parseAcl(text, 'acl.yaml');
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.value;
}

const errorsOf = (text: string) => {
  const r = parseAcl(text, 'acl.yaml');
  return r.ok ? [] : r.errors;
};

// Line numbers matter: reasons name them.
const APPROVALS = `groups:
  oncall: [U1, U2]
  leads: [L1, L2]
rules:
  - allow: [status]
    users: ["*"]
  - allow: [scale, drain]
    groups: [oncall]
  - name: payments
    allow: [scale]
    groups: [oncall]
    services: ["payments-*"]
    approval: { groups: [leads], count: 2, expiry: 30s }
  - allow: [deregister]
    users: [U1]
    approval: { groups: ["*"] }
    shell: allow
  - allow: [render]
    users: [U1]
    channels: [COPS]
    approval: { groups: [leads, oncall] }
`;

// Compiled inside each test, not once per file: mutation testing only credits a test with
// what runs inside it.
describe('approval rules', () => {
  it('an approval rule outweighs a plain allow for the services it names, and only those', () => {
    const acl = compiled(APPROVALS);
    const d = acl.decide({ userId: 'U1', channel: 'COPS', command: 'scale', service: 'payments-api' });
    expect(aclOutcome(d)).toBe('approval');
    expect(d).toMatchObject({ allowed: false, ruleIndex: 2, reason: 'needs approval by 2 of leads (rule "payments" at acl.yaml:9)' });
    expect(d.approval).toMatchObject({ rule: 'rule "payments" at acl.yaml:9', groups: ['leads'], count: 2, expiryMs: 30_000, shellAllowed: false });
    expect(d.approval?.approvers).toEqual(new Set(['L1', 'L2']));

    const web = acl.decide({ userId: 'U1', channel: 'COPS', command: 'scale', service: 'web' });
    expect(web).toEqual({ allowed: true, reason: 'allowed by rule #2 (allow scale, drain; groups oncall) at acl.yaml:7', ruleIndex: 1 });
  });

  it('for help, a restricted approval rule does not outweigh a plain allow, but stands alone', () => {
    const acl = compiled(APPROVALS);
    expect(aclOutcome(acl.decide({ userId: 'U1', channel: 'COPS', command: 'scale', service: ANY_SERVICE }))).toBe('allow');
    // Only the approval rule matches: help shows the command as needing approval.
    const only = compiled(`groups:\n  leads: [L1]\nrules:\n  - allow: [scale]\n    users: [U9]\n    services: [web]\n    approval: { groups: [leads] }\n`);
    const d = only.decide({ userId: 'U9', channel: 'COPS', command: 'scale', service: ANY_SERVICE });
    expect(aclOutcome(d)).toBe('approval');
    expect(d.ruleIndex).toBe(0);
  });

  it('an unrestricted approval rule applies for help too', () => {
    const acl = compiled(APPROVALS);
    const d = acl.decide({ userId: 'U1', channel: 'dm', command: 'deregister', service: ANY_SERVICE });
    expect(aclOutcome(d)).toBe('approval');
    expect(d.approval).toMatchObject({ groups: ['*'], count: 1, expiryMs: DEFAULT_APPROVAL_EXPIRY_MS, shellAllowed: true, approvers: '*' });
    expect(d.reason).toBe('needs approval by 1 other person (rule #4 (allow deregister; users U1; approval 1 other person) at acl.yaml:14)');
  });

  it('approvers are the members of every named group; the label lists channel and approval', () => {
    const acl = compiled(APPROVALS);
    const d = acl.decide({ userId: 'U1', channel: 'COPS', command: 'render' });
    expect(d.approval?.approvers).toEqual(new Set(['L1', 'L2', 'U1', 'U2']));
    expect(d.approval?.rule).toBe('rule #5 (allow render; users U1; channels COPS; approval 1 of leads, oncall) at acl.yaml:18');
    expect(aclOutcome(acl.decide({ userId: 'U1', channel: 'CELSE', command: 'render' }))).toBe('deny');
  });

  it('a deny still refuses outright over an approval rule', () => {
    const withDeny = compiled(`${APPROVALS}  - deny: [scale]\n    users: [U1]\n`);
    expect(withDeny.decide({ userId: 'U1', channel: 'COPS', command: 'scale', service: 'payments-api' })).toMatchObject({
      allowed: false,
      ruleIndex: 5,
      reason: 'denied by rule #6 (deny scale; users U1) at acl.yaml:22',
    });
  });
});

describe('decisions and their reasons', () => {
  it('aclOutcome reads the three outcomes', () => {
    const approval = { rule: 'r', groups: ['g'], count: 1, expiryMs: 1, shellAllowed: false, approvers: '*' as const };
    expect(aclOutcome({ allowed: true, reason: '' })).toBe('allow');
    expect(aclOutcome({ allowed: false, reason: '' })).toBe('deny');
    expect(aclOutcome({ allowed: false, reason: '', approval } as AclDecision)).toBe('approval');
  });

  it('describeApprovers counts people, not groups, when anyone may approve', () => {
    expect(describeApprovers({ groups: ['*'], count: 1 })).toBe('1 other person');
    expect(describeApprovers({ groups: ['leads', '*'], count: 3 })).toBe('3 other people');
    expect(describeApprovers({ groups: ['leads', 'sre'], count: 2 })).toBe('2 of leads, sre');
  });

  it('names the request in a default deny: any service, a channel', () => {
    const acl = compiled('rules: []\n');
    expect(acl.decide({ userId: 'U1', channel: 'COPS', command: 'scale', service: ANY_SERVICE }).reason).toBe(
      'no rule allows scale on any service for U1 in COPS (default deny)',
    );
    expect(acl.decide({ userId: 'U1', channel: 'COPS', command: 'status' }).reason).toBe('no rule allows status for U1 in COPS (default deny)');
  });

  it('labels a rule by users and groups both, and leaves them out when it is everyone', () => {
    const acl = compiled(
      `groups:\n  g: [U2]\nrules:\n  - allow: [drain]\n    users: [U1]\n    groups: [g]\n  - allow: [status]\n    users: [U3]\n    groups: ["*"]\n`,
    );
    expect(acl.decide({ userId: 'U2', channel: 'dm', command: 'drain' }).reason).toBe('allowed by rule #1 (allow drain; users U1; groups g) at acl.yaml:4');
    expect(acl.decide({ userId: 'U9', channel: 'dm', command: 'status' }).reason).toBe('allowed by rule #2 (allow status) at acl.yaml:7');
    expect(acl.ruleCount).toBe(2);
    expect(acl.groupCount).toBe(1);
  });

  it('labels a rule with every entry of its lists', () => {
    const acl = compiled(
      `groups:\n  a: [U1]\n  b: [U2]\n  leads: [L1, L2]\nrules:\n  - allow: [drain, undrain]\n    users: [U3, U4]\n    groups: [a, b]\n    channels: [C1, C2]\n    services: [web, api]\n    approval: { groups: [leads] }\n    shell: allow\n`,
    );
    const d = acl.decide({ userId: 'U2', channel: 'C2', command: 'undrain', service: 'api' });
    expect(d.approval?.rule).toBe(
      'rule #1 (allow drain, undrain; users U3, U4; groups a, b; channels C1, C2; services web, api; approval 1 of leads) at acl.yaml:6',
    );
    expect(d.approval?.shellAllowed).toBe(true);
    expect(aclOutcome(acl.decide({ userId: 'U2', channel: 'C3', command: 'undrain', service: 'api' }))).toBe('deny');
  });

  it('a group rule admits only that group’s members, a users rule only those users', () => {
    const acl = compiled(`groups:\n  g: [U2]\n  h: [U3]\nrules:\n  - allow: [drain]\n    groups: [g]\n  - allow: [undrain]\n    users: [U1]\n`);
    expect(acl.decide({ userId: 'U2', channel: 'dm', command: 'drain' }).allowed).toBe(true);
    expect(acl.decide({ userId: 'U3', channel: 'dm', command: 'drain' }).allowed).toBe(false);
    expect(acl.decide({ userId: 'U1', channel: 'dm', command: 'undrain' }).allowed).toBe(true);
    expect(acl.decide({ userId: 'U2', channel: 'dm', command: 'undrain' }).allowed).toBe(false);
  });
});

describe('acl.yaml validation messages', () => {
  it.each([
    [
      'a count more people than the groups hold',
      `groups:\n  leads: [L1]\nrules:\n  - allow: [scale]\n    users: [U1]\n    approval:\n      groups: [leads]\n      count: 2\n`,
      ['acl.yaml:8: rules.0.approval.count: count 2 needs that many distinct approvers, but leads has 1 member'],
    ],
    [
      'a count more people than several groups hold',
      `groups:\n  a: [L1]\n  b: [L1, L2]\nrules:\n  - allow: [scale]\n    users: [U1]\n    approval: { groups: [a, b], count: 3 }\n`,
      ['acl.yaml:7: rules.0.approval.count: count 3 needs that many distinct approvers, but a, b have 2 members'],
    ],
    [
      'an approval group that is not defined',
      `rules:\n  - allow: [scale]\n    users: [U1]\n    approval: { groups: [leads] }\n`,
      ['acl.yaml:4: rules.0.approval.groups.0: unknown group "leads" (define it under groups:)'],
    ],
    [
      'approval on a deny rule',
      `rules:\n  - deny: [scale]\n    users: [U1]\n    approval: { groups: ["*"] }\n`,
      ['acl.yaml:4: rules.0.approval: approval: goes on allow rules (a deny refuses outright)'],
    ],
    [
      'shell: allow without approval',
      `rules:\n  - allow: [scale]\n    users: [U1]\n    shell: allow\n`,
      ['acl.yaml:4: rules.0.shell: shell: allow only applies to a rule with approval:'],
    ],
    [
      'an expiry that is not a duration',
      `rules:\n  - allow: [scale]\n    users: [U1]\n    approval: { groups: ["*"], expiry: soon }\n`,
      ['acl.yaml:4: rules.0.approval.expiry: "soon" is not a duration (write 30s, 15m, 1h)'],
    ],
    [
      'an expiry under a second',
      `rules:\n  - allow: [scale]\n    users: [U1]\n    approval: { groups: ["*"], expiry: 999ms }\n`,
      ['acl.yaml:4: rules.0.approval.expiry: "999ms" is out of range (1s to 24h)'],
    ],
    [
      'an expiry over a day',
      `rules:\n  - allow: [scale]\n    users: [U1]\n    approval: { groups: ["*"], expiry: 25h }\n`,
      ['acl.yaml:4: rules.0.approval.expiry: "25h" is out of range (1s to 24h)'],
    ],
    [
      'a group name with a space',
      `groups:\n  "on call": [U1]\nrules: []\n`,
      ['acl.yaml:2: groups.on call: "on call" is not a group name (letters, digits, _ . -; "*" means everyone)'],
    ],
    [
      '"*" as a channel',
      `rules:\n  - allow: [help]\n    users: [U1]\n    channels: ["*"]\n`,
      ['acl.yaml:4: rules.0.channels.0: "*" is not a channel; leave channels out to match every channel'],
    ],
    [
      'a channel written as @name',
      `rules:\n  - allow: [help]\n    users: [U1]\n    channels: ["@ops"]\n`,
      ['acl.yaml:4: rules.0.channels.0: "@ops" looks like a channel name; use the channel ID (C…/G…) or dm'],
    ],
    [
      'a user written as #name',
      `rules:\n  - allow: [help]\n    users: ["#ops"]\n`,
      ['acl.yaml:3: rules.0.users.0: "#ops" looks like a display name; use the Slack user ID (U…/W…)'],
    ],
    ['an empty user ID', `rules:\n  - allow: [help]\n    users: [""]\n`, ['acl.yaml:3: rules.0.users.0: user ID must not be empty']],
    [
      'a service glob with a space',
      `rules:\n  - allow: [help]\n    users: [U1]\n    services: ["web api"]\n`,
      ['acl.yaml:4: rules.0.services.0: "web api" contains whitespace; a service glob is a single token'],
    ],
  ])('%s', (_what, text, errors) => expect(errorsOf(text)).toEqual(errors));

  it('names an unknown command in an allow rule at its allow entry', () => {
    const r = parseAcl(`rules:\n  - allow: [status, scael]\n    users: [U1]\n`, 'acl.yaml', { knownCommands: ['status', 'scale'] });
    expect(r.ok ? [] : r.errors).toEqual(['acl.yaml:2: rules.0.allow.1: unknown command "scael" (known: scale, status)']);
  });

  it('compiled without a file name, rules point at acl.yaml', () => {
    const parsed = aclFileSchema.parse({ rules: [{ allow: ['help'], users: ['*'] }] });
    expect(compileAcl(parsed, [3]).decide({ userId: 'U1', channel: 'dm', command: 'help' }).reason).toBe('allowed by rule #1 (allow help) at acl.yaml:3');
  });

  it('accepts the bounds of expiry and "*" approvers with any count', () => {
    const acl = compiled(
      `rules:\n  - allow: [scale]\n    users: [U1]\n    approval: { groups: ["*"], expiry: 1s, count: 10 }\n  - allow: [drain]\n    users: [U1]\n    approval: { groups: ["*"], expiry: 24h }\n`,
    );
    expect(acl.decide({ userId: 'U1', channel: 'C1', command: 'scale' }).approval).toMatchObject({ expiryMs: 1000, count: 10 });
    expect(acl.decide({ userId: 'U1', channel: 'C1', command: 'drain' }).approval).toMatchObject({ expiryMs: 86_400_000 });
  });
});
