import { basename } from 'node:path';
import picomatch from 'picomatch';
import { isNode, isSeq, LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { ANY_SERVICE, describeApprovers, type AclDecision, type AclEvaluator, type AclRequest, type ApprovalRequirement } from './acl-types.js';
import { parseDuration } from './names.js';
import { parseYaml, type YamlResult } from './yaml-file.js';

/**
 * acl.yaml: schema, compilation and evaluation. Evaluation is pure and synchronous so the
 * router and `help` can ask it for every command without touching the disk; reloading
 * lives in acl-store.ts.
 */

const EVERYONE = '*';

/** Adds a custom issue when `problem` returns a message; keeps the offending value in the text. */
const checked = (problem: (s: string) => string | undefined) =>
  z.string().superRefine((s, ctx) => {
    const message = problem(s);
    if (message) ctx.addIssue({ code: 'custom', message });
  });

function tokenProblem(s: string, what: string): string | undefined {
  if (s.length === 0) return `${what} must not be empty`;
  if (/\s/.test(s)) return `"${s}" contains whitespace; a ${what} is a single token`;
  return undefined;
}

// Authorization is decided on IDs only (SPEC): a display name could be renamed into a grant.
// The shell front-end uses arbitrary --user tokens, so anything else without whitespace is accepted.
const userId = checked((s) => {
  if (s.startsWith('@') || s.startsWith('#')) return `"${s}" looks like a display name; use the Slack user ID (U…/W…)`;
  return tokenProblem(s, 'user ID');
});

const channel = checked((s) => {
  if (s.startsWith('#') || s.startsWith('@')) return `"${s}" looks like a channel name; use the channel ID (C…/G…) or dm`;
  if (s === EVERYONE) return '"*" is not a channel; leave channels out to match every channel';
  return tokenProblem(s, 'channel ID');
});

const commandName = checked((s) =>
  s === EVERYONE || /^[a-z][a-z0-9_-]*$/.test(s) ? undefined : `"${s}" is not a command name (lower-case, e.g. scale) or "*"`,
);

const serviceGlob = checked((s) => {
  const bad = tokenProblem(s, 'service glob');
  if (bad) return bad;
  try {
    // Without debug, picomatch swallows a regex it cannot build and returns one that matches
    // nothing: a deny rule on "pay-[z-a]" would load and protect nothing.
    picomatch.makeRe(s, { debug: true });
    return undefined;
  } catch (e) {
    return `"${s}" is not a valid glob: ${(e as Error).message}`;
  }
});

// Checked in the file-level refinement: zod reports a bad record key without the key schema's message.
const GROUP_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

const list = <T extends z.ZodType>(item: T, what: string) => z.array(item).min(1, `${what} must list at least one entry`);

export const DEFAULT_APPROVAL_EXPIRY_MS = 15 * 60_000;
const MIN_APPROVAL_EXPIRY_MS = 1000;
// A pending approval lives on an etcd lease; a day is longer than anyone should wait on one.
const MAX_APPROVAL_EXPIRY_MS = 24 * 3_600_000;

const expiry = checked((s) => {
  const ms = parseDuration(s);
  if (ms === undefined) return `"${s}" is not a duration (write 30s, 15m, 1h)`;
  if (ms < MIN_APPROVAL_EXPIRY_MS || ms > MAX_APPROVAL_EXPIRY_MS) return `"${s}" is out of range (1s to 24h)`;
  return undefined;
});

const approvalSchema = z
  .object({
    groups: list(z.string().min(1), 'approval.groups'),
    count: z.number().int().min(1).max(10).default(1),
    expiry: expiry.optional(),
  })
  .strict();

const ruleSchema = z
  .object({
    name: z.string().min(1).optional(),
    allow: list(commandName, 'allow').optional(),
    deny: list(commandName, 'deny').optional(),
    users: list(userId, 'users').optional(),
    groups: list(z.string().min(1), 'groups').optional(),
    channels: list(channel, 'channels').optional(),
    services: list(serviceGlob, 'services').optional(),
    approval: approvalSchema.optional(),
    shell: z.literal('allow', { error: 'the only value is "allow" (leave shell out to refuse it in the shell)' }).optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.allow && r.deny) ctx.addIssue({ code: 'custom', message: 'a rule has allow or deny, not both' });
    if (r.approval && r.deny) ctx.addIssue({ code: 'custom', path: ['approval'], message: 'approval: goes on allow rules (a deny refuses outright)' });
    if (r.shell && !r.approval) ctx.addIssue({ code: 'custom', path: ['shell'], message: 'shell: allow only applies to a rule with approval:' });
    if (!r.allow && !r.deny) ctx.addIssue({ code: 'custom', message: 'a rule needs allow: or deny: (command names or "*")' });
    if (!r.users && !r.groups) ctx.addIssue({ code: 'custom', message: 'a rule needs users: or groups: ("*" is everyone)' });
  });

export const aclFileSchema = z
  .object({
    groups: z.record(z.string(), z.array(userId)).default({}),
    // Required on purpose: an empty or half-written file must fail (and keep the old rules)
    // rather than silently become "deny everything".
    rules: z.array(ruleSchema, {
      error: (iss) => (iss.input === undefined ? 'is required (an empty list, rules: [], denies everything)' : undefined),
    }),
  })
  .strict()
  .superRefine((file, ctx) => {
    for (const g of Object.keys(file.groups)) {
      if (!GROUP_NAME_RE.test(g)) {
        ctx.addIssue({ code: 'custom', path: ['groups', g], message: `"${g}" is not a group name (letters, digits, _ . -; "*" means everyone)` });
      }
    }
    file.rules.forEach((rule, i) => {
      rule.groups?.forEach((g, j) => {
        if (g !== EVERYONE && !Object.hasOwn(file.groups, g)) {
          ctx.addIssue({ code: 'custom', path: ['rules', i, 'groups', j], message: `unknown group "${g}" (define it under groups:)` });
        }
      });
      const approval = rule.approval;
      if (!approval) return;
      let known = true;
      approval.groups.forEach((g, j) => {
        if (g !== EVERYONE && !Object.hasOwn(file.groups, g)) {
          known = false;
          ctx.addIssue({ code: 'custom', path: ['rules', i, 'approval', 'groups', j], message: `unknown group "${g}" (define it under groups:)` });
        }
      });
      // A count no set of members can reach would leave every request waiting until it expires.
      const members = approvers(approval.groups, file.groups);
      if (known && members !== EVERYONE && members.size < approval.count) {
        ctx.addIssue({
          code: 'custom',
          path: ['rules', i, 'approval', 'count'],
          message: `count ${approval.count} needs that many distinct approvers, but ${approval.groups.join(', ')} ${members.size === 1 ? 'has 1 member' : `have ${members.size} members`}`,
        });
      }
    });
  });

/** Members of `groups` (as defined under `groups:`), or '*' when one of them is "*". */
function approvers(groups: readonly string[], defined: Record<string, string[]>): Set<string> | typeof EVERYONE {
  if (groups.includes(EVERYONE)) return EVERYONE;
  return new Set(groups.flatMap((g) => defined[g] ?? []));
}

export type AclFile = z.output<typeof aclFileSchema>;
export type AclRule = AclFile['rules'][number];

/** A typo in a deny rule would silently deny nothing, so command names can be checked against the plugins. */
function withKnownCommands(known: readonly string[]) {
  const names = new Set(known);
  return aclFileSchema.superRefine((file, ctx) => {
    file.rules.forEach((rule, i) => {
      const key = rule.allow ? 'allow' : 'deny';
      (rule[key] ?? []).forEach((c, j) => {
        if (c !== EVERYONE && !names.has(c)) {
          ctx.addIssue({ code: 'custom', path: ['rules', i, key, j], message: `unknown command "${c}" (known: ${[...names].sort().join(', ')})` });
        }
      });
    });
  });
}

interface CompiledRule {
  index: number;
  effect: 'allow' | 'deny';
  commands: ReadonlySet<string>;
  everyone: boolean;
  callers: ReadonlySet<string>;
  channels?: ReadonlySet<string>;
  services?: (service: string) => boolean;
  label: string;
  approval?: Omit<ApprovalRequirement, 'rule'>;
}

export class CompiledAcl implements AclEvaluator {
  constructor(
    private readonly rules: readonly CompiledRule[],
    readonly groupCount: number,
  ) {}

  get ruleCount(): number {
    return this.rules.length;
  }

  /**
   * Any matching deny refuses; otherwise a matching allow that asks for approval wins over
   * one that does not (adding an approval rule only ever narrows); otherwise any matching
   * allow permits. For `help` (ANY_SERVICE) an approval rule limited to some services does
   * not outweigh a plain allow: the command may still run directly on the others.
   */
  decide(req: AclRequest): AclDecision {
    let allowedBy: CompiledRule | undefined;
    let approvalBy: CompiledRule | undefined;
    let someServicesNeedApproval: CompiledRule | undefined;
    for (const rule of this.rules) {
      if (!matches(rule, req)) continue;
      if (rule.effect === 'deny') return { allowed: false, reason: `denied by ${rule.label}`, ruleIndex: rule.index };
      if (!rule.approval) allowedBy ??= rule;
      else if (req.service === ANY_SERVICE && rule.services) someServicesNeedApproval ??= rule;
      else approvalBy ??= rule;
    }
    const needs = approvalBy ?? (allowedBy ? undefined : someServicesNeedApproval);
    if (needs?.approval) {
      const a = needs.approval;
      return {
        allowed: false,
        reason: `needs approval by ${describeApprovers(a)} (${needs.label})`,
        ruleIndex: needs.index,
        approval: { ...a, rule: needs.label },
      };
    }
    if (allowedBy) return { allowed: true, reason: `allowed by ${allowedBy.label}`, ruleIndex: allowedBy.index };
    return { allowed: false, reason: `no rule allows ${describeRequest(req)} (default deny)` };
  }
}

function matches(rule: CompiledRule, req: AclRequest): boolean {
  if (!rule.commands.has(EVERYONE) && !rule.commands.has(req.command)) return false;
  if (!rule.everyone && !rule.callers.has(req.userId)) return false;
  if (rule.channels && !rule.channels.has(req.channel)) return false;
  if (rule.services) {
    if (req.service === undefined) return false;
    // "Could the caller run this for some service?": a restricted allow may grant it, but a
    // restricted deny only covers some services, so it must not hide the command from help.
    if (req.service === ANY_SERVICE) return rule.effect === 'allow';
    return rule.services(req.service);
  }
  return true;
}

function describeRequest(req: AclRequest): string {
  const service = req.service === ANY_SERVICE ? ' on any service' : req.service === undefined ? '' : ` on ${req.service}`;
  const where = req.channel === 'dm' ? 'a direct message' : req.channel;
  return `${req.command}${service} for ${req.userId} in ${where}`;
}

function describeRule(rule: AclRule, index: number, line: number | undefined, file: string): string {
  const at = line === undefined ? '' : ` at ${file}:${line}`;
  if (rule.name) return `rule "${rule.name}"${at}`;
  const parts = [`${rule.allow ? 'allow' : 'deny'} ${(rule.allow ?? rule.deny ?? []).join(', ')}`];
  if (!isEveryone(rule)) {
    if (rule.users) parts.push(`users ${rule.users.join(', ')}`);
    if (rule.groups) parts.push(`groups ${rule.groups.join(', ')}`);
  }
  if (rule.channels) parts.push(`channels ${rule.channels.join(', ')}`);
  if (rule.services) parts.push(`services ${rule.services.join(', ')}`);
  if (rule.approval) parts.push(`approval ${describeApprovers(rule.approval)}`);
  return `rule #${index + 1} (${parts.join('; ')})${at}`;
}

const isEveryone = (rule: AclRule) => Boolean(rule.users?.includes(EVERYONE) || rule.groups?.includes(EVERYONE));

/**
 * Compile a validated acl file. `sourceLines[i]` is the line rule i starts on, so decisions
 * can point at it; `file` is the name shown with it (its base name: reasons reach chat).
 */
export function compileAcl(parsed: AclFile, sourceLines?: readonly number[], file = 'acl.yaml'): CompiledAcl {
  const label = basename(file);
  const rules = parsed.rules.map((rule, index): CompiledRule => {
    const callers = new Set(rule.users ?? []);
    for (const g of rule.groups ?? []) for (const u of parsed.groups[g] ?? []) callers.add(u);
    const matchers = rule.services?.map((glob) => picomatch(glob));
    const a = rule.approval;
    const approval = a && {
      groups: a.groups,
      count: a.count,
      expiryMs: a.expiry === undefined ? DEFAULT_APPROVAL_EXPIRY_MS : (parseDuration(a.expiry) ?? DEFAULT_APPROVAL_EXPIRY_MS),
      shellAllowed: rule.shell === 'allow',
      approvers: approvers(a.groups, parsed.groups),
    };
    return {
      index,
      effect: rule.allow ? 'allow' : 'deny',
      commands: new Set(rule.allow ?? rule.deny ?? []),
      everyone: isEveryone(rule),
      callers,
      channels: rule.channels && new Set(rule.channels),
      services: matchers && ((s: string) => matchers.some((m) => m(s))),
      label: describeRule(rule, index, sourceLines?.[index], label),
      ...(approval ? { approval } : {}),
    };
  });
  return new CompiledAcl(rules, Object.keys(parsed.groups).length);
}

/** The line each item of `rules:` starts on (1-based); empty when the document has no such list. */
export function ruleLines(text: string): number[] {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter });
  const rules = doc.getIn(['rules'], true);
  if (!isSeq(rules)) return [];
  return rules.items.map((item) => (isNode(item) && item.range ? lineCounter.linePos(item.range[0]).line : 0));
}

export interface ParseAclOptions {
  /** When given, command names outside this list (and "*") are errors. */
  knownCommands?: readonly string[];
}

/** Validate and compile acl.yaml text; errors are `file:line: message`. */
export function parseAcl(text: string, file: string, opts: ParseAclOptions = {}): YamlResult<CompiledAcl> {
  const schema = opts.knownCommands ? withKnownCommands(opts.knownCommands) : aclFileSchema;
  const result = parseYaml(text, file, schema);
  if (!result.ok) return result;
  return { ok: true, value: compileAcl(result.value, ruleLines(text), file) };
}
