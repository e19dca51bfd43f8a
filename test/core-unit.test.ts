/**
 * The small pure helpers of src/core that other unit files only reach in passing, found by
 * mutation testing (docs/TESTING.md): replies as text, stored records read back, command
 * deadlines, the ambient cause, exit statuses.
 */
import { describe, expect, it } from 'vitest';
import { parseApplyResult } from '../src/core/apply-result.js';
import { commandTimeoutMs } from '../src/core/command-deadline.js';
import { currentActor, currentCause, withCause } from '../src/core/feed.js';
import { DEFAULT_COMMAND_TIMEOUT_MS } from '../src/core/plugin-api.js';
import { describeProblem, quoteKey } from '../src/core/quote.js';
import { isWeight } from '../src/core/registry.js';
import { formatTable, ok, replyToText } from '../src/core/reply.js';
import { settledWithin, signalExitCode } from '../src/core/shutdown.js';
import { decodeWatcherRecord, watcherActor } from '../src/core/watcher-record.js';

describe('replies as text', () => {
  it('aligns columns to the widest cell, trims trailing blanks, and fills missing cells', () => {
    expect(
      formatTable({
        header: ['name', 'state'],
        rows: [
          ['web-10', 'ready'],
          ['w', ''],
        ],
      }),
    ).toEqual(['name    state', 'web-10  ready', 'w']);
    expect(formatTable({ header: ['a', 'b', 'c'], rows: [['xx']] })).toEqual(['a   b  c', 'xx']);
  });

  it('prefixes an error, then details, then each table under its title', () => {
    const text = replyToText({
      ok: false,
      summary: 'nope',
      details: ['d1', 'd2'],
      tables: [{ title: 'T', table: { header: ['h'], rows: [['v']] } }, { table: { header: ['k'], rows: [] } }],
    });
    expect(text).toBe('error: nope\nd1\nd2\n\nT\nh\nv\nk');
    expect(replyToText(ok('fine'))).toBe('fine');
    expect(ok('s', { details: ['x'] })).toEqual({ ok: true, summary: 's', details: ['x'] });
  });
});

describe('stored records read back', () => {
  const good = { agentId: 'lb-1', method: 'runtime', ok: true, durationMs: 3, changes: ['+web-4'], at: '2026-01-01T00:00:00Z' };

  it('reads an apply result, and says why anything else is not one', () => {
    expect(parseApplyResult(JSON.stringify(good))).toEqual(good);
    expect(parseApplyResult('{')).toBe('not JSON');
    expect(parseApplyResult(JSON.stringify({ ...good, method: 'magic', durationMs: -1 }))).toMatch(/^not an apply result \(method: .*; durationMs: .*\)$/);
    expect(parseApplyResult('42')).toMatch(/^not an apply result \(value: /);
    const many = parseApplyResult('{}');
    expect(typeof many === 'string' && many.split(';').length).toBe(3);
  });

  it('reads a watcher record, and nothing that is not one', () => {
    const rec = { host: 'h1', advertise: '10.0.0.5', lease: '7587', pid: 12, startedAt: 'now' };
    expect(decodeWatcherRecord(JSON.stringify(rec))).toEqual({ ...rec, registered: 0 });
    expect(decodeWatcherRecord(JSON.stringify({ ...rec, lease: 'x' }))).toBeUndefined();
    expect(decodeWatcherRecord('not json')).toBeUndefined();
    expect(watcherActor('h1')).toBe('watch@h1');
  });

  it('quotes keys as JSON strings, cutting long ones', () => {
    expect(quoteKey('/a\nb')).toBe('"/a\\nb"');
    expect(quoteKey('k'.repeat(200))).toBe(`"${'k'.repeat(200)}"`);
    expect(quoteKey('k'.repeat(201))).toBe(`"${'k'.repeat(200)}…"`);
    expect(describeProblem({ key: '/s/x', problem: 'bad' })).toBe('"/s/x": bad');
  });

  it('weights are whole numbers from 0 to 256', () => {
    expect([0, 256, 100].every(isWeight)).toBe(true);
    expect([-1, 257, 1.5, '5', undefined].some(isWeight)).toBe(false);
  });
});

describe('command deadlines', () => {
  it('takes the command’s figure or function, and the default for anything unusable', () => {
    expect(commandTimeoutMs({ name: 'a', timeoutMs: 5 }, {})).toBe(5);
    expect(commandTimeoutMs({ name: 'a', timeoutMs: ((a: { t: number }) => a.t * 2) as never }, { t: 7 })).toBe(14);
    for (const bad of [undefined, 0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(commandTimeoutMs({ name: 'a', timeoutMs: bad }, {})).toBe(DEFAULT_COMMAND_TIMEOUT_MS);
    }
    expect(commandTimeoutMs({ name: 'a', timeoutMs: (() => 'soon') as never }, {})).toBe(DEFAULT_COMMAND_TIMEOUT_MS);
  });
});

describe('the ambient cause', () => {
  it('is set inside withCause only, and names the actor or the fallback', async () => {
    expect(currentCause()).toBeUndefined();
    expect(currentActor()).toBe('switchyard');
    expect(currentActor('docker')).toBe('docker');
    const inside = await withCause({ by: 'U1', command: 'scale' }, async () => {
      await new Promise((r) => setTimeout(r, 1));
      return [currentCause(), currentActor('docker')];
    });
    expect(inside).toEqual([{ by: 'U1', command: 'scale' }, 'U1']);
  });
});

describe('shutdown helpers', () => {
  it('exit statuses follow the 128 + signal convention', () => {
    expect(signalExitCode('SIGINT')).toBe(130);
    expect(signalExitCode('SIGTERM')).toBe(143);
  });

  it('settledWithin gives the value, or undefined once the time is up', async () => {
    expect(await settledWithin(Promise.resolve(7), 1000)).toBe(7);
    expect(await settledWithin(new Promise(() => {}), 5)).toBeUndefined();
  });
});
