import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ANY_SERVICE, type AclRequest } from '../src/core/acl-types.js';
import { aclFileSchema, compileAcl, parseAcl, ruleLines, type CompiledAcl } from '../src/core/acl.js';

// Line numbers matter: reasons and errors point at them.
const ACL = `groups:
  oncall: [UONCALL1, UONCALL2]
  sre: [USRE1]
rules:
  - allow: [status, help]
    users: ["*"]
  - allow: [register, deregister, scale, drain, undrain, render]
    groups: [oncall]
    channels: [COPS, dm]
  - deny: [scale, deregister]
    services: ["payments-*"]
    users: ["*"]
  - name: sre everything
    allow: ["*"]
    groups: [sre]
    channels: [CSRE]
  - allow: [drain]
    users: [UDEV1]
    services: [web, "api-*"]
  - deny: ["*"]
    users: [UBLOCKED]
  - allow: [render]
    groups: ["*"]
    channels: [dm]
`;

const LABELS = [
  'rule #1 (allow status, help) at acl.yaml:5',
  'rule #2 (allow register, deregister, scale, drain, undrain, render; groups oncall; channels COPS, dm) at acl.yaml:7',
  'rule #3 (deny scale, deregister; services payments-*) at acl.yaml:10',
  'rule "sre everything" at acl.yaml:13',
  'rule #5 (allow drain; users UDEV1; services web, api-*) at acl.yaml:17',
  'rule #6 (deny *; users UBLOCKED) at acl.yaml:20',
  'rule #7 (allow render; channels dm) at acl.yaml:22',
];

function compiled(text: string, file = 'acl.yaml'): CompiledAcl {
  const r = parseAcl(text, file);
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.value;
}

const acl = compiled(ACL);

type Service = AclRequest['service'];
const ANY: typeof ANY_SERVICE = ANY_SERVICE;
const NONE = undefined;

// [what, user, channel, command, service, allowed, deciding rule index or null for default deny]
const TABLE: [string, string, string, string, Service, boolean, number | null][] = [
  ['status for everyone', 'UNOBODY', 'CRANDOM', 'status', NONE, true, 0],
  ['help for an unknown user in a dm', 'UNOBODY', 'dm', 'help', NONE, true, 0],
  ['status with a service', 'UNOBODY', 'CRANDOM', 'status', 'web', true, 0],
  ['"*" users includes an empty id', '', 'CRANDOM', 'status', NONE, true, 0],
  ['oncall scales in the ops channel', 'UONCALL1', 'COPS', 'scale', 'web', true, 1],
  ['oncall scales in a dm', 'UONCALL1', 'dm', 'scale', 'web', true, 1],
  ['oncall outside the listed channels', 'UONCALL1', 'CRANDOM', 'scale', 'web', false, null],
  ["oncall in another group's channel", 'UONCALL1', 'CSRE', 'scale', 'web', false, null],
  ['second oncall member registers', 'UONCALL2', 'COPS', 'register', 'web', true, 1],
  ['oncall renders with no service', 'UONCALL1', 'COPS', 'render', NONE, true, 1],
  ['non-member cannot scale', 'UNOBODY', 'COPS', 'scale', 'web', false, null],
  ['user ids are case-sensitive', 'uoncall1', 'COPS', 'scale', 'web', false, null],
  ['"DM" is not dm', 'UONCALL1', 'DM', 'scale', 'web', false, null],
  ['command names are exact', 'UNOBODY', 'CRANDOM', 'STATUS', NONE, false, null],
  ['unknown command: default deny', 'UONCALL1', 'COPS', 'frobnicate', NONE, false, null],
  ['deny beats allow: scale payments-api', 'UONCALL1', 'COPS', 'scale', 'payments-api', false, 2],
  ['deny beats allow: deregister in a dm', 'UONCALL1', 'dm', 'deregister', 'payments-db', false, 2],
  ['deny glob with dots', 'UONCALL2', 'COPS', 'scale', 'payments-eu.db', false, 2],
  ['deny glob does not match the bare prefix', 'UONCALL1', 'COPS', 'scale', 'payments', true, 1],
  ['deny covers only its commands', 'UONCALL1', 'COPS', 'drain', 'payments-api', true, 1],
  ['undrain on payments is allowed', 'UONCALL2', 'dm', 'undrain', 'payments-api', true, 1],
  ['deny applies in any channel', 'UONCALL1', 'CRANDOM', 'deregister', 'payments-api', false, 2],
  ['deny beats a named "*" allow', 'USRE1', 'CSRE', 'scale', 'payments-api', false, 2],
  ['"*" commands allow scale', 'USRE1', 'CSRE', 'scale', 'web', true, 3],
  ['"*" commands allow any command name', 'USRE1', 'CSRE', 'frobnicate', NONE, true, 3],
  ['services deny ignores service-less requests', 'USRE1', 'CSRE', 'deregister', NONE, true, 3],
  ['group allow limited to its channel', 'USRE1', 'COPS', 'scale', 'web', false, null],
  ['sre still gets read-only commands', 'USRE1', 'COPS', 'status', NONE, true, 0],
  ['user allow with no channel list: any channel', 'UDEV1', 'CRANDOM', 'drain', 'web', true, 4],
  ['user allow, glob service, dm', 'UDEV1', 'dm', 'drain', 'api-gw', true, 4],
  ['glob requires the dash', 'UDEV1', 'CRANDOM', 'drain', 'apix', false, null],
  ['service outside the globs', 'UDEV1', 'CRANDOM', 'drain', 'payments-x', false, null],
  ['undefined service vs services-restricted allow', 'UDEV1', 'CRANDOM', 'drain', NONE, false, null],
  ['other commands not granted', 'UDEV1', 'CRANDOM', 'undrain', 'web', false, null],
  ['deny "*" beats everyone\'s status', 'UBLOCKED', 'CRANDOM', 'status', NONE, false, 5],
  ['deny "*" in a dm too', 'UBLOCKED', 'dm', 'help', NONE, false, 5],
  ['ANY_SERVICE: restricted deny does not hide scale', 'UONCALL1', 'COPS', 'scale', ANY, true, 1],
  ['ANY_SERVICE: restricted deny does not hide deregister', 'UONCALL1', 'dm', 'deregister', ANY, true, 1],
  ['ANY_SERVICE: restricted allow grants', 'UDEV1', 'CRANDOM', 'drain', ANY, true, 4],
  ['ANY_SERVICE: unrestricted deny still denies', 'UBLOCKED', 'CRANDOM', 'drain', ANY, false, 5],
  ['ANY_SERVICE: no rule for the caller', 'UNOBODY', 'COPS', 'scale', ANY, false, null],
  ['ANY_SERVICE: "*" command allow', 'USRE1', 'CSRE', 'scale', ANY, true, 3],
  ['"*" groups = everyone, in a dm', 'UNOBODY', 'dm', 'render', NONE, true, 6],
  ['"*" groups still honours channels', 'UNOBODY', 'CRANDOM', 'render', NONE, false, null],
];

/** The rules of ACL as plain data, for the oracle below (kept apart from the parser on purpose). */
const ORACLE_GROUPS: Record<string, string[]> = { oncall: ['UONCALL1', 'UONCALL2'], sre: ['USRE1'] };
const ORACLE_RULES: { effect: 'allow' | 'deny'; commands: string[]; callers: string[]; channels?: string[]; services?: string[] }[] = [
  { effect: 'allow', commands: ['status', 'help'], callers: ['*'] },
  { effect: 'allow', commands: ['register', 'deregister', 'scale', 'drain', 'undrain', 'render'], callers: ['@oncall'], channels: ['COPS', 'dm'] },
  { effect: 'deny', commands: ['scale', 'deregister'], callers: ['*'], services: ['payments-*'] },
  { effect: 'allow', commands: ['*'], callers: ['@sre'], channels: ['CSRE'] },
  { effect: 'allow', commands: ['drain'], callers: ['UDEV1'], services: ['web', 'api-*'] },
  { effect: 'deny', commands: ['*'], callers: ['UBLOCKED'] },
  { effect: 'allow', commands: ['render'], callers: ['@*'], channels: ['dm'] },
];

/** A service glob: "*" is any run of characters; everything else literal. */
const globMatches = (glob: string, s: string) =>
  new RegExp(
    `^${glob
      .split('*')
      .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  ).test(s);

/** The decision the SPEC describes: the first matching deny, else the first matching allow, else default deny. */
function oracle(req: { userId: string; channel: string; command: string; service?: string }): { allowed: boolean; ruleIndex?: number } {
  const matching = ORACLE_RULES.map((rule, index) => ({ rule, index })).filter(({ rule }) => {
    if (!rule.commands.includes('*') && !rule.commands.includes(req.command)) return false;
    const callers = rule.callers.flatMap((c) => (c === '@*' ? ['*'] : c.startsWith('@') ? (ORACLE_GROUPS[c.slice(1)] ?? []) : [c]));
    if (!callers.includes('*') && !callers.includes(req.userId)) return false;
    if (rule.channels && !rule.channels.includes(req.channel)) return false;
    if (rule.services && (req.service === undefined || !rule.services.some((g) => globMatches(g, req.service!)))) return false;
    return true;
  });
  const deny = matching.find(({ rule }) => rule.effect === 'deny');
  if (deny) return { allowed: false, ruleIndex: deny.index };
  const allow = matching.find(({ rule }) => rule.effect === 'allow');
  return allow ? { allowed: true, ruleIndex: allow.index } : { allowed: false };
}

describe('acl decisions', () => {
  it.each(TABLE)('%s', (_what, userId, channel, command, service, allowed, ruleIndex) => {
    const d = acl.decide({ userId, channel, command, service });
    expect(d.allowed).toBe(allowed);
    if (ruleIndex === null) {
      expect(d.ruleIndex).toBeUndefined();
      expect(d.reason).toMatch(/^no rule allows .* \(default deny\)$/);
      expect(d.reason).toContain(command);
    } else {
      expect(d.ruleIndex).toBe(ruleIndex);
      expect(d.reason).toBe(`${allowed ? 'allowed' : 'denied'} by ${LABELS[ruleIndex]}`);
    }
  });

  // The table above is hand-picked; this checks every combination of the values it uses
  // against a reading of the SPEC written apart from src/core/acl.ts: the same rules as plain
  // data, "any matching deny refuses; otherwise any matching allow permits; otherwise refused".
  it('agrees with an independent reading of the rules for every caller, channel, command and service', () => {
    const users = ['UONCALL1', 'UONCALL2', 'USRE1', 'UDEV1', 'UBLOCKED', 'UNOBODY', 'uoncall1', ''];
    const channels = ['COPS', 'CSRE', 'dm', 'DM', 'CRANDOM'];
    const commands = ['status', 'help', 'register', 'deregister', 'scale', 'drain', 'undrain', 'render', 'frobnicate', 'STATUS'];
    const services = ['web', 'api-gw', 'apix', 'payments', 'payments-api', 'payments-eu.db', 'db'];
    let checked = 0;
    const disagreements: string[] = [];
    for (const userId of users) {
      for (const channel of channels) {
        for (const command of commands) {
          for (const service of [NONE, ...services, ANY] as Service[]) {
            const base = { userId, channel, command };
            const got = acl.decide(service === NONE ? base : { ...base, service });
            const what = `${command} ${String(service)} for "${userId}" in ${channel}`;
            checked++;
            if (service === ANY) {
              // "Could the caller run it for some service?": some concrete service is allowed.
              const want = [...services, 'no-glob-matches-this'].some((s) => oracle({ ...base, service: s }).allowed);
              if (got.allowed !== want) disagreements.push(`${what}: allowed ${got.allowed}, expected ${want}`);
              continue;
            }
            const want = oracle(typeof service === 'string' ? { ...base, service } : base);
            if (got.allowed !== want.allowed || got.ruleIndex !== want.ruleIndex) {
              disagreements.push(`${what}: ${got.allowed}/${got.ruleIndex}, expected ${want.allowed}/${want.ruleIndex}`);
            } else if (want.ruleIndex !== undefined && got.reason !== `${want.allowed ? 'allowed' : 'denied'} by ${LABELS[want.ruleIndex]}`) {
              disagreements.push(`${what}: reason ${got.reason}`);
            }
          }
        }
      }
    }
    expect(disagreements).toEqual([]);
    expect(checked).toBe(users.length * channels.length * commands.length * (services.length + 2));
  });

  it('deny wins regardless of rule order', () => {
    const denyFirst = compiled(`rules:\n  - deny: [scale]\n    users: [U1]\n  - allow: ["*"]\n    users: ["*"]\n`);
    const denyLast = compiled(`rules:\n  - allow: ["*"]\n    users: ["*"]\n  - deny: [scale]\n    users: [U1]\n`);
    const req = { userId: 'U1', channel: 'C1', command: 'scale', service: 'web' };
    expect(denyFirst.decide(req)).toMatchObject({ allowed: false, ruleIndex: 0 });
    expect(denyLast.decide(req)).toMatchObject({ allowed: false, ruleIndex: 1 });
  });

  it('an empty rule list denies everything', () => {
    const d = compiled('rules: []\n').decide({ userId: 'U1', channel: 'dm', command: 'help' });
    expect(d.allowed).toBe(false);
    expect(d.reason).toBe('no rule allows help for U1 in a direct message (default deny)');
  });

  it('names the service in a default-deny reason', () => {
    expect(acl.decide({ userId: 'UX', channel: 'COPS', command: 'scale', service: 'web' }).reason).toBe(
      'no rule allows scale on web for UX in COPS (default deny)',
    );
  });

  it('uses the base name of the file in reasons', () => {
    const d = compiled('rules:\n  - allow: [help]\n    users: ["*"]\n', '/etc/switchyard/acl.yaml').decide({ userId: 'U1', channel: 'dm', command: 'help' });
    expect(d.reason).toBe('allowed by rule #1 (allow help) at acl.yaml:2');
  });

  it('compiles without source lines', () => {
    const parsed = aclFileSchema.parse({ rules: [{ deny: ['scale'], users: ['*'], services: ['payments-*'] }] });
    const d = compileAcl(parsed).decide({ userId: 'U1', channel: 'dm', command: 'scale', service: 'payments-x' });
    expect(d.reason).toBe('denied by rule #1 (deny scale; services payments-*)');
  });

  it('finds the line of each rule', () => {
    expect(ruleLines(ACL)).toEqual([5, 7, 10, 13, 17, 20, 22]);
    expect(ruleLines('groups: {}\n')).toEqual([]);
  });
});

describe('acl.yaml shipped in the repo', () => {
  const text = readFileSync(new URL('../acl.yaml', import.meta.url), 'utf8');
  const shipped = compiled(text);
  const oncall = 'U0000000001';

  it('validates against the plugin commands', () => {
    const r = parseAcl(text, 'acl.yaml', { knownCommands: ['help', 'status', 'register', 'deregister', 'scale', 'drain', 'undrain', 'render'] });
    expect(r.ok ? [] : r.errors).toEqual([]);
  });

  it('is safe by default', () => {
    expect(shipped.decide({ userId: 'USTRANGER', channel: 'C0000000000', command: 'scale', service: 'web' }).allowed).toBe(false);
    expect(shipped.decide({ userId: 'USTRANGER', channel: 'CANY', command: 'status' }).allowed).toBe(true);
    expect(shipped.decide({ userId: oncall, channel: 'C0000000000', command: 'scale', service: 'web' }).allowed).toBe(true);
    expect(shipped.decide({ userId: oncall, channel: 'dm', command: 'drain', service: 'web' }).allowed).toBe(true);
    expect(shipped.decide({ userId: oncall, channel: 'CELSEWHERE', command: 'scale', service: 'web' }).allowed).toBe(false);
    expect(shipped.decide({ userId: oncall, channel: 'dm', command: 'scale', service: 'payments-api' }).allowed).toBe(false);
  });
});

describe('acl.yaml validation', () => {
  const errorsOf = (text: string, opts?: Parameters<typeof parseAcl>[2]) => {
    const r = parseAcl(text, 'acl.yaml', opts);
    return r.ok ? [] : r.errors;
  };

  it('refuses a rule naming an unknown group, at the group entry', () => {
    const errors = errorsOf(`groups:\n  oncall: [U1]\nrules:\n  - allow: [scale]\n    groups: [oncall,\n      oncal]\n`);
    expect(errors).toEqual(['acl.yaml:6: rules.0.groups.1: unknown group "oncal" (define it under groups:)']);
  });

  it('refuses a rule with neither users nor groups', () => {
    expect(errorsOf(`rules:\n  - allow: [help]\n    users: ["*"]\n  - allow: [status]\n    channels: [dm]\n`)).toEqual([
      'acl.yaml:4: rules.1: a rule needs users: or groups: ("*" is everyone)',
    ]);
  });

  it('refuses a rule with both allow and deny', () => {
    expect(errorsOf(`rules:\n  - allow: [help]\n    deny: [scale]\n    users: ["*"]\n`)).toEqual(['acl.yaml:2: rules.0: a rule has allow or deny, not both']);
  });

  it('refuses a rule with neither allow nor deny', () => {
    expect(errorsOf(`rules:\n  - users: ["*"]\n`)).toEqual(['acl.yaml:2: rules.0: a rule needs allow: or deny: (command names or "*")']);
  });

  it('refuses display names in users and groups', () => {
    const errors = errorsOf(`groups:\n  oncall: [U1, "@alice"]\nrules:\n  - allow: [help]\n    users: [U2, "@bob"]\n`);
    expect(errors).toEqual([
      'acl.yaml:2: groups.oncall.1: "@alice" looks like a display name; use the Slack user ID (U…/W…)',
      'acl.yaml:5: rules.0.users.1: "@bob" looks like a display name; use the Slack user ID (U…/W…)',
    ]);
  });

  it('refuses channel names and user ids with whitespace', () => {
    const errors = errorsOf(`rules:\n  - allow: [help]\n    users: ["U 1"]\n    channels: ["#ops"]\n`);
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatch(/^acl\.yaml:3: rules\.0\.users\.0: .*whitespace/);
    expect(errors[1]).toMatch(/^acl\.yaml:4: rules\.0\.channels\.0: "#ops" looks like a channel name/);
  });

  it('refuses unknown keys in a rule at the unknown key’s own line, with the fix', () => {
    expect(errorsOf(`rules:\n  - allow: [help]\n    users: ["*"]\n    service: [web]\n`)[0]).toBe(
      'acl.yaml:4: rules.0.service: unknown key; did you mean "services"? (rename it)',
    );
  });

  it('requires rules: so a truncated file is an error, not deny-all', () => {
    expect(errorsOf('')[0]).toMatch(/^acl\.yaml:1: .*rules/);
  });

  it('refuses empty lists and bad command names', () => {
    const errors = errorsOf(`rules:\n  - allow: []\n    users: ["*"]\n  - deny: [Scale]\n    users: [U1]\n`);
    expect(errors).toEqual([
      'acl.yaml:2: rules.0.allow: allow must list at least one entry',
      'acl.yaml:4: rules.1.deny.0: "Scale" is not a command name (lower-case, e.g. scale) or "*"',
    ]);
  });

  it('reports unknown commands when the command list is known', () => {
    const errors = errorsOf(`rules:\n  - allow: ["*"]\n    users: [U1]\n  - deny: [scale, dereg]\n    users: ["*"]\n`, {
      knownCommands: ['scale', 'deregister'],
    });
    expect(errors).toEqual(['acl.yaml:4: rules.1.deny.1: unknown command "dereg" (known: deregister, scale)']);
  });

  it('reports yaml syntax errors with their line', () => {
    const errors = errorsOf(`rules:\n  - allow: [help]\n    users: ["*"\n  - deny: [scale]\n`);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]).toMatch(/^acl\.yaml:[34]: /);
  });

  it('reports duplicate keys with their line', () => {
    const errors = errorsOf(`groups:\n  a: [U1]\n  a: [U2]\nrules: []\n`);
    expect(errors[0]).toMatch(/^acl\.yaml:3: /);
  });
});
