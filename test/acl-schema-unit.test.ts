/**
 * acl.yaml refusals that test/acl-unit.test.ts and test/acl.test.ts do not reach: a service
 * glob picomatch cannot compile, a file without `rules:` (which must fail rather than deny
 * everything), and the command names the schema takes (mutation testing, docs/TESTING.md).
 */
import { describe, expect, it } from 'vitest';
import { parseAcl } from '../src/core/acl.js';

const errorsOf = (text: string) => {
  const r = parseAcl(text, 'acl.yaml');
  return r.ok ? [] : r.errors;
};

describe('acl.yaml validation edges', () => {
  it('a service glob that does not compile is refused with the reason, not loaded as a rule that matches nothing', () => {
    // picomatch alone turns these into a pattern that matches nothing: this deny would protect nothing.
    const errors = errorsOf('rules:\n  - deny: ["*"]\n    users: ["*"]\n    services: ["pay-[z-a]", "a{b"]\n  - allow: [status]\n    users: ["*"]\n');
    expect(errors).toEqual([
      'acl.yaml:4: rules.0.services.0: "pay-[z-a]" is not a valid glob: Invalid regular expression: /^(?:pay-[z-a]\\/?)$/: Range out of order in character class',
      'acl.yaml:4: rules.0.services.1: "a{b" is not a valid glob: Invalid regular expression: /^(?:a(b)$/: Unterminated group',
    ]);
    expect(parseAcl('rules:\n  - deny: ["*"]\n    users: ["*"]\n    services: ["pay-*", "{a,b}-[0-9]"]\n', 'acl.yaml').ok).toBe(true);
  });

  it('a file without rules: says it is required and how to deny everything; a rules: that is not a list gets zod’s word', () => {
    expect(errorsOf('groups:\n  oncall: [U1]\n')).toEqual(['acl.yaml:1: rules: is required (an empty list, rules: [], denies everything)']);
    const notList = errorsOf('rules: 5\n');
    expect(notList).toHaveLength(1);
    expect(notList[0]).toMatch(/^acl\.yaml:1: rules: /);
    expect(notList[0]).not.toContain('is required');
    expect(parseAcl('rules: []\n', 'acl.yaml').ok).toBe(true);
  });

  it('command names are lower-case words or "*"', () => {
    expect(parseAcl('rules:\n  - allow: ["*", scale, my_cmd-2]\n    users: ["*"]\n', 'acl.yaml').ok).toBe(true);
    expect(errorsOf('rules:\n  - allow: [Scale, 2x]\n    users: ["*"]\n')).toEqual([
      'acl.yaml:2: rules.0.allow.0: "Scale" is not a command name (lower-case, e.g. scale) or "*"',
      'acl.yaml:2: rules.0.allow.1: "2x" is not a command name (lower-case, e.g. scale) or "*"',
    ]);
  });
});
