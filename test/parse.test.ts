import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { bindArgs } from '../src/core/args.js';
import { isSwitchyardError } from '../src/core/errors.js';
import { address, duration, formatDuration, parseDuration, parseHostPort, serviceName } from '../src/core/names.js';
import { defineCommand } from '../src/core/plugin-api.js';
import { ok } from '../src/core/reply.js';
import { suggest } from '../src/core/suggest.js';
import { tokenize } from '../src/core/tokenize.js';
import { usage } from '../src/core/usage.js';

describe('tokenize', () => {
  it.each([
    ['status', ['status']],
    ['  register   web  web-1 10.0.0.1:80 ', ['register', 'web', 'web-1', '10.0.0.1:80']],
    ['say "hello world" x', ['say', 'hello world', 'x']],
    ["say 'a b' c", ['say', 'a b', 'c']],
    ['say “smart quotes” ‘too’', ['say', 'smart quotes', 'too']],
    ['say "esc \\"q\\"" x', ['say', 'esc "q"', 'x']],
    ['say ""', ['say', '']],
    ['a\tb\nc', ['a', 'b', 'c']],
    ['--ttl=30s', ['--ttl=30s']],
    ['', []],
  ])('%j', (line, words) => {
    expect(tokenize(line)).toEqual(words);
  });

  it('refuses an unclosed quote with E_PARSE', () => {
    try {
      tokenize('register "web');
      expect.unreachable();
    } catch (e) {
      expect(isSwitchyardError(e, 'E_PARSE')).toBe(true);
    }
  });
});

describe('durations', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['0s', 0],
  ])('%s = %d ms', (s, ms) => expect(parseDuration(s)).toBe(ms));

  it.each(['30', 's', '1.5s', '-1s', '10d', '30 s', '1e3ms'])('refuses %j', (s) => expect(parseDuration(s)).toBeUndefined());

  it('formats back to the shortest unit', () => {
    expect([500, 30_000, 120_000, 1500].map(formatDuration)).toEqual(['500ms', '30s', '2m', '1500ms']);
  });

  it('the zod duration transforms to ms and explains failures', () => {
    expect(duration.parse('2m')).toBe(120_000);
    const r = duration.safeParse('soon');
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.message).toContain('500ms, 30s, 2m');
  });
});

describe('names and addresses', () => {
  it.each(['web', 'a', 'web-1', 'web_1.blue', '0web', 'a'.repeat(63)])('accepts name %j', (n) => {
    expect(serviceName.safeParse(n).success).toBe(true);
  });
  it.each(['', 'Web', '-web', '.web', 'web/1', 'web 1', 'a'.repeat(64), 'wéb', 'web;rm', 'web\nbackend x'])('refuses name %j', (n) => {
    expect(serviceName.safeParse(n).success).toBe(false);
  });
  it.each([
    ['10.0.0.1:80', { host: '10.0.0.1', port: 80 }],
    ['[::1]:8080', { host: '::1', port: 8080 }],
    ['[2001:db8::1]:443', { host: '2001:db8::1', port: 443 }],
    ['web-1.internal:65535', { host: 'web-1.internal', port: 65535 }],
    ['localhost:1', { host: 'localhost', port: 1 }],
  ])('parses %s', (s, hp) => expect(parseHostPort(s)).toEqual(hp));
  it.each([
    '10.0.0.1',
    '10.0.0.1:0',
    '10.0.0.1:65536',
    '10.0.0.256:80',
    '::1:80',
    '[::1]80',
    '[zz::1]:80',
    'exa mple:80',
    'host:port',
    '-bad.host:80',
    'a:80\nserver evil 1.2.3.4:80',
    ':80',
  ])('refuses %j', (s) => {
    expect(typeof parseHostPort(s)).toBe('string');
    expect(address.safeParse(s).success).toBe(false);
  });
});

const demo = defineCommand({
  name: 'demo',
  summary: 'a demo',
  args: z.object({
    service: serviceName,
    count: z.string().regex(/^\d+$/).transform(Number).describe('N'),
    ttl: duration.optional().describe('30s'),
    dry: z.boolean().optional(),
  }),
  positionals: ['service', 'count'],
  serviceArg: 'service',
  handler: async () => ok('x'),
});

describe('bindArgs', () => {
  it('binds positionals and flags in any order', () => {
    expect(bindArgs(demo, ['--ttl', '2m', 'web', '3', '--dry']).args).toEqual({ service: 'web', count: 3, ttl: 120_000, dry: true });
    expect(bindArgs(demo, ['web', '--ttl=500ms', '3']).args).toEqual({ service: 'web', count: 3, ttl: 500 });
  });
  it('takes --yes as the core confirmation flag', () => {
    const b = bindArgs(demo, ['web', '3', '--yes']);
    expect(b.yes).toBe(true);
    expect(b.args).not.toHaveProperty('yes');
  });
  it.each([
    [['web'], 'missing <N>'],
    [['web', '3', 'extra'], 'too many arguments: "extra"'],
    [['web', '3', '--nope'], 'unknown flag --nope'],
    [['web', '3', '--ttl'], '--ttl needs a value (30s)'],
    [['web', '3', '--ttl', 'soon'], '--ttl "soon"'],
    [['Web!', '3'], '<service> "Web!"'],
    [['web', '3', '--ttl', '1s', '--ttl', '2s'], '--ttl given twice'],
    [['web', '3', '--dry=yes'], '--dry takes no value'],
    [['web', '3', '--service', 'x'], 'unknown flag --service'],
  ])('%j → %s, with usage', (words, message) => {
    try {
      bindArgs(demo, words);
      expect.unreachable();
    } catch (e) {
      expect(isSwitchyardError(e, 'E_BAD_ARGS')).toBe(true);
      if (!isSwitchyardError(e)) return;
      expect(e.message).toContain(message);
      expect(e.details).toEqual(['usage: demo <service> <N> [--ttl 30s] [--dry]']);
    }
  });
  it('generates usage from the schema', () => {
    expect(usage(demo)).toBe('demo <service> <N> [--ttl 30s] [--dry]');
  });
});

describe('suggest', () => {
  const names = ['help', 'status', 'register', 'deregister', 'scale', 'drain', 'undrain', 'render'];
  it.each([
    ['satuts', 'status'],
    ['stauts', 'status'],
    ['sclae', 'scale'],
    ['regsiter', 'register'],
    ['hlep', 'help'],
    ['dra', 'drain'],
  ])('%s → %s', (typo, want) => expect(suggest(typo, names)[0]).toBe(want));
  it('suggests nothing for unrelated words', () => expect(suggest('kubectl', names)).toEqual([]));
});
