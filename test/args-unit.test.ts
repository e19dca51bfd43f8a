/**
 * Argument binding, host:port, whole numbers, the tokenizer's escapes and the schema reader:
 * edges that test/parse-unit.test.ts leaves open, found by mutation testing (docs/TESTING.md).
 * Each command and schema is built inside its test, so the mutant run credits the test.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { bindArgs } from '../src/core/args.js';
import { thrown } from './helpers/core.js';
import { intArg, parseHostPort, weightArg } from '../src/core/names.js';
import { defineCommand } from '../src/core/plugin-api.js';
import { fieldInfo } from '../src/core/schema-info.js';
import { tokenize } from '../src/core/tokenize.js';

describe('bindArgs: positionals and checks across arguments', () => {
  it('an optional positional not given is absent from the arguments, not present as undefined', () => {
    const cmd = defineCommand({
      name: 'pick',
      summary: 'p',
      args: z.object({ service: z.string(), count: z.string().optional() }),
      positionals: ['service', 'count'],
      handler: async () => 'x',
    });
    // A handler spreading its arguments into a stored record must not write `count: undefined`.
    expect(Object.keys(bindArgs(cmd, ['web']).args)).toEqual(['service']);
    expect(Object.keys(bindArgs(cmd, ['web', '2']).args)).toEqual(['service', 'count']);
  });

  it("a plugin's check of the arguments together is reported in its own words", () => {
    const cmd = defineCommand({
      name: 'route',
      summary: 'r',
      args: z
        .object({ to: z.string().optional(), from: z.string().optional() })
        .refine((a) => a.to !== undefined || a.from !== undefined, 'give --to or --from'),
      positionals: [],
      handler: async () => 'x',
    });
    const e = thrown(() => bindArgs(cmd, []));
    expect(e.code).toBe('E_BAD_ARGS');
    expect(e.message).toBe('route: give --to or --from');
    expect(bindArgs(cmd, ['--to', 'b']).args).toEqual({ to: 'b' });
  });
});

describe('host:port edges', () => {
  it('an empty host before the colon is a bad host, not a missing colon', () => {
    expect(parseHostPort(':80')).toBe('"" is not an IPv4 address or DNS name');
  });

  it('a DNS name may start with digits; only all digits and dots is read as IPv4', () => {
    expect(parseHostPort('1a.example:80')).toEqual({ host: '1a.example', port: 80 });
    expect(parseHostPort('10.0.0.1x:80')).toEqual({ host: '10.0.0.1x', port: 80 });
    // Ends in digits and dots, but does not consist of them.
    expect(parseHostPort('web-1.2:80')).toEqual({ host: 'web-1.2', port: 80 });
  });

  it('a port must be digits to its end', () => {
    expect(parseHostPort('10.0.0.1:80x')).toBe('port must be a number 1-65535');
    expect(parseHostPort('[::1]:80 ')).toBe('port must be a number 1-65535');
  });
});

describe('whole-number arguments', () => {
  it('takes several digits, and refuses signs, letters on either side and blanks with one message', () => {
    expect(intArg(0, 1000).parse('120')).toBe(120);
    expect(weightArg.parse('256')).toBe(256);
    for (const bad of ['-5', 'x5', '5x', '1.5', ' 5', '']) {
      expect(weightArg.safeParse(bad).error?.issues.map((i) => i.message)).toEqual(['must be a whole number']);
    }
  });

  it('checks the bounds after the digits', () => {
    expect(weightArg.safeParse('257').success).toBe(false);
    expect(intArg(1, 10).safeParse('0').success).toBe(false);
    expect(intArg(1, 10).parse('10')).toBe(10);
  });
});

describe('tokenize: an escaped backslash ends the escape', () => {
  it('a doubled backslash before the closing quote is one backslash, and the quote still closes', () => {
    expect(tokenize('say "x\\\\"')).toEqual(['say', 'x\\']);
    expect(tokenize('say "\\\\" next')).toEqual(['say', '\\', 'next']);
  });
});

describe('fieldInfo: how deep it reads', () => {
  it('reads eight levels (seven wrappers over the field) and no further', () => {
    let eight: z.ZodType = z.boolean().describe('flag');
    for (let i = 0; i < 7; i++) eight = eight.optional();
    const nine = eight.optional();
    expect(fieldInfo('f', eight)).toEqual({ optional: true, boolean: true, placeholder: 'flag' });
    // One more wrapper hides the field at the bottom (its type and description): the walk is
    // bounded, so a schema nested without end cannot hang the parser.
    expect(fieldInfo('f', nine)).toEqual({ optional: true, boolean: false, placeholder: 'f' });
  });
});
