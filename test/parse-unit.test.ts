/**
 * Edges of the command grammar that test/parse.test.ts leaves open, found by mutation
 * testing (docs/TESTING.md): each case here failed to tell a mutated parser from the real one.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { bindArgs } from '../src/core/args.js';
import { isSwitchyardError, SwitchyardError } from '../src/core/errors.js';
import { thrown } from './helpers/core.js';
import { address, duration, formatDuration, parseDuration, parseHostPort } from '../src/core/names.js';
import { defineCommand } from '../src/core/plugin-api.js';
import { ok } from '../src/core/reply.js';
import { fieldInfo } from '../src/core/schema-info.js';
import { suggest } from '../src/core/suggest.js';
import { tokenize } from '../src/core/tokenize.js';
import { usage } from '../src/core/usage.js';

describe('tokenize: quoting edges', () => {
  it.each([
    // Only a double-quoted string knows escapes, and only of " and \.
    ['say "C:\\temp"', ['say', 'C:\\temp']],
    ['say "a\\\\b"', ['say', 'a\\b']],
    ["say 'a\\\\b'", ['say', 'a\\\\b']],
    ["say 'it\\'", ['say', 'it\\']],
    ['say “a\\\\b”', ['say', 'a\\\\b']],
    // A quote closes only with its own partner; quotes join the word they touch.
    ['say “a"b”', ['say', 'a"b']],
    ['say a"b c"d e', ['say', 'ab cd', 'e']],
    ["say 'x\"y'", ['say', 'x"y']],
  ])('%j', (line, words) => expect(tokenize(line)).toEqual(words));

  it('names the missing closing quote', () => {
    expect(thrown(() => tokenize('say “open')).message).toBe('unclosed quote: add the closing ”');
    expect(thrown(() => tokenize("say 'open")).message).toBe("unclosed quote: add the closing '");
  });
});

const demo = defineCommand({
  name: 'demo',
  summary: 'a demo',
  args: z.object({
    service: z
      .string()
      .regex(/^[a-z][a-z-]*$/, 'lower-case only')
      .describe('service'),
    count: z.string().regex(/^\d+$/).transform(Number).describe('N').optional(),
    ttl: duration.optional(),
    mode: z.enum(['fast', 'slow']).describe('fast|slow'),
    dry: z.boolean().optional(),
  }),
  positionals: ['service', 'count'],
  handler: async () => ok('x'),
});

describe('bindArgs: what reaches the schema', () => {
  it('says no unless --yes is given, and the last --yes decides', () => {
    expect(bindArgs(demo, ['web', '--mode', 'fast']).yes).toBe(false);
    expect(bindArgs(demo, ['web', '--mode', 'fast', '--yes=TRUE']).yes).toBe(true);
    expect(bindArgs(demo, ['web', '--mode', 'fast', '--yes', '--yes=No']).yes).toBe(false);
    expect(bindArgs(demo, ['web', '--mode', 'fast', '--yes=false', '--yes']).yes).toBe(true);
  });

  it('refuses a --yes value it cannot read, quoting it as typed', () => {
    const e = thrown(() => bindArgs(demo, ['web', '--mode', 'fast', '--yes=Maybe']));
    expect(e.code).toBe('E_BAD_ARGS');
    expect(e.message).toBe('demo: --yes="Maybe": write --yes (or --yes=true) to confirm, --yes=false or --yes=no not to');
  });

  it('takes a lone -- as a positional word, not as a flag', () => {
    expect(thrown(() => bindArgs(demo, ['--', '--mode', 'fast'])).message).toBe('demo: <service> "--": lower-case only');
  });

  it('a flag followed by another flag has no value', () => {
    expect(thrown(() => bindArgs(demo, ['web', '--mode', '--dry'])).message).toBe('demo: --mode needs a value (fast|slow)');
  });

  it('takes an optional positional when given, leaves it out when not', () => {
    expect(bindArgs(demo, ['web', '7', '--mode=slow']).args).toEqual({ service: 'web', count: 7, mode: 'slow' });
    expect(bindArgs(demo, ['web', '--mode=slow']).args).toEqual({ service: 'web', mode: 'slow' });
  });

  it('lists every problem, extra words quoted one by one, in one error with the usage', () => {
    const e = thrown(() => bindArgs(demo, ['web', '1', 'a', 'b c', '--nope', '--dry', '--dry']));
    expect(e.message).toBe('demo: unknown flag --nope; --dry given twice; too many arguments: "a" "b c"');
    expect(e.details).toEqual(['usage: demo <service> [N] [--ttl duration] --mode fast|slow [--dry]']);
  });

  it('names a missing flag by its flag, a bad flag value with the value', () => {
    expect(thrown(() => bindArgs(demo, ['web'])).message).toBe('demo: missing --mode');
    expect(thrown(() => bindArgs(demo, ['web', '--mode=quick'])).message).toMatch(/^demo: --mode "quick": /);
  });
});

describe('usage and fieldInfo', () => {
  it('brackets optional positionals and flags, and keeps required flags bare', () => {
    expect(usage(demo)).toBe('demo <service> [N] [--ttl duration] --mode fast|slow [--dry]');
  });

  it('reads through optional, default and pipe wrappers', () => {
    expect(fieldInfo('ttl', duration.optional())).toEqual({ optional: true, boolean: false, placeholder: 'duration' });
    expect(fieldInfo('n', z.string().describe('N').default('1'))).toEqual({ optional: true, boolean: false, placeholder: 'N' });
    expect(fieldInfo('n', z.string().describe('N').transform(Number).pipe(z.number()))).toEqual({ optional: false, boolean: false, placeholder: 'N' });
    expect(fieldInfo('force', z.boolean().default(false))).toEqual({ optional: true, boolean: true, placeholder: 'force' });
    expect(fieldInfo('plain', z.string())).toEqual({ optional: false, boolean: false, placeholder: 'plain' });
  });

  it('prefers the outermost description', () => {
    expect(fieldInfo('w', z.string().describe('inner').optional().describe('outer')).placeholder).toBe('outer');
  });
});

describe('host:port: every refusal says why', () => {
  it.each([
    ['10.0.0.1', 'expected host:port'],
    ['[::1:80', 'IPv6 addresses are written [addr]:port'],
    ['[::1]80', 'IPv6 addresses are written [addr]:port'],
    ['::1:80', 'IPv6 addresses are written [addr]:port'],
    ['[zz::1]:80', '"zz::1" is not an IPv6 address'],
    // Addresses the OS accepts but haproxy.cfg must not carry: a dotted quad in brackets, a zone id.
    ['[1.2.3.4]:80', '"1.2.3.4" is not an IPv6 address'],
    ['[fe80::1%eth0]:80', '"fe80::1%eth0" is not an IPv6 address'],
    // All digits and dots: read as IPv4, never as a DNS name.
    ['1.2.3:80', '"1.2.3" is not an IPv4 address or DNS name'],
    ['999:80', '"999" is not an IPv4 address or DNS name'],
    ['-bad.host:80', '"-bad.host" is not an IPv4 address or DNS name'],
    ['10.0.0.1:+80', 'port must be a number 1-65535'],
    ['10.0.0.1:123456', 'port must be a number 1-65535'],
    ['10.0.0.1:0', 'port must be a number 1-65535'],
    ['10.0.0.1:65536', 'port must be a number 1-65535'],
    ['[::1]:', 'port must be a number 1-65535'],
  ])('%j → %s', (s, why) => {
    expect(parseHostPort(s)).toBe(why);
    expect(address.safeParse(s).error?.issues.map((i) => i.message)).toEqual([why]);
  });

  it('accepts the bounds and leading zeros of a port', () => {
    expect(parseHostPort('10.0.0.1:080')).toEqual({ host: '10.0.0.1', port: 80 });
    expect(parseHostPort('[::ffff:10.0.0.1]:65535')).toEqual({ host: '::ffff:10.0.0.1', port: 65535 });
    expect(parseHostPort('255.255.255.255:1')).toEqual({ host: '255.255.255.255', port: 1 });
  });
});

describe('durations: edges', () => {
  it('ignores surrounding blanks', () => expect(parseDuration(' 30s ')).toBe(30_000));

  it('formats 0 and exact multiples in the largest unit that divides them', () => {
    expect([0, 1000, 60_000, 90_000, 3_600_000, 7_200_000, 5_400_000].map(formatDuration)).toEqual(['0ms', '1s', '1m', '90s', '1h', '2h', '90m']);
  });

  it('quotes the refused value', () => {
    expect(duration.safeParse('soon').error?.issues[0]?.message).toBe('"soon" is not a duration (write 500ms, 30s, 2m)');
  });
});

describe('suggest: ranking', () => {
  const names = ['drain', 'train', 'status', 'stats', 'scale', 'register', 'deregister'];

  it('ranks by distance, then by name, at most three', () => {
    expect(suggest('rain', names)).toEqual(['drain', 'train']);
    expect(suggest('stat', names)).toEqual(['stats', 'status']);
    expect(suggest('stat', ['stat3', 'status', 'stat1', 'stats', 'stat2'])).toEqual(['stat1', 'stat2', 'stat3']);
    expect(suggest('stat', names, 1)).toEqual(['stats']);
  });

  it('ignores case in what was typed, and keeps prefixes of long names', () => {
    expect(suggest('STATUS', names)[0]).toBe('status');
    expect(suggest('dereg', names)).toEqual(['deregister']);
  });

  it('counts an adjacent swap as one edit, not two', () => {
    // "rgeister" is one swap from register (distance 1), two substitutions otherwise.
    expect(suggest('rgeister', ['register'], 1)).toEqual(['register']);
    expect(suggest('ab', ['ba'])).toEqual(['ba']);
  });
});

it('isSwitchyardError checks the code only when asked', () => {
  const e = new SwitchyardError('E_PARSE');
  expect(e.message).toBe('could not parse the command');
  expect(isSwitchyardError(e)).toBe(true);
  expect(isSwitchyardError(e, 'E_PARSE')).toBe(true);
  expect(isSwitchyardError(e, 'E_DENIED')).toBe(false);
  expect(isSwitchyardError(new Error('E_PARSE'))).toBe(false);
});
