/**
 * shutDown and stopSignal in-process, with process.exit stubbed: the order of the steps, the
 * safety net, the linger, the scope, and the first and second signal. test/shutdown.test.ts
 * proves the 5 s promise on real processes; these run in the mutation suite (docs/TESTING.md).
 */
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { shutDown, stopSignal } from '../src/core/shutdown.js';

const capture = () => {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  return { log, lines };
};

afterEach(() => {
  vi.restoreAllMocks();
});

describe('shutDown: the order and the safety net (in-process, exit stubbed)', () => {
  it('runs every step in order even when one fails, and ends a process something still holds open', async () => {
    const { log, lines } = capture();
    const exits: number[] = [];
    const order: string[] = [];
    const clean = await shutDown(
      log,
      [
        ['a', () => void order.push('a')],
        ['b', () => Promise.reject(new Error('boom'))],
        ['not running', undefined],
        ['c', async () => void order.push('c')],
      ],
      { exit: (code) => void exits.push(code), lingerMs: 50 },
    );
    expect(clean).toBe(false);
    expect(order).toEqual(['a', 'c']);
    expect(lines.find((l) => l.msg === 'could not stop cleanly')).toMatchObject({ level: 40, step: 'b', err: { message: 'boom' } });
    expect(lines.filter((l) => l.msg === 'stopped').map((l) => l.step)).toEqual(['a', 'c']);
    expect(lines.find((l) => l.msg === 'stopped')?.ms).toBeGreaterThanOrEqual(0);
    // The failed step held up nothing: the closing line comes after every step and names it.
    const closing = lines.findIndex((l) => l.msg === 'shut down; not every part stopped cleanly');
    expect(lines[closing]).toMatchObject({ level: 30, failed: ['b'] });
    expect(closing).toBeGreaterThan(lines.map((l) => l.msg).lastIndexOf('stopped'));
    // This test process is held open by vitest: the linger ends it with the status set so far.
    await vi.waitFor(() => expect(exits.length).toBeGreaterThan(0), { timeout: 10_000 });
    expect(exits).toEqual([typeof process.exitCode === 'number' ? process.exitCode : 0]);
    expect(lines.find((l) => l.msg === 'shut down; ending the process, which something still holds open')).toMatchObject({ level: 20 });
  });

  it('exits 1 at the grace period, naming what did not stop', async () => {
    const { log, lines } = capture();
    const exits: number[] = [];
    void shutDown(
      log,
      [
        ['ok', () => undefined],
        ['stuck', () => new Promise(() => undefined)],
        ['never reached', () => undefined],
      ],
      { graceMs: 100, exit: (code) => void exits.push(code) },
    );
    await vi.waitFor(() => expect(exits.length).toBeGreaterThan(0), { timeout: 10_000 });
    expect(exits).toEqual([1]);
    expect(lines.find((l) => l.level === 50)).toMatchObject({ pending: ['stuck', 'never reached'], msg: 'shutdown did not finish within 100 ms; exiting' });
  });

  it('is clean when every step stops, runs the steps inside the scope, and does not fire the safety net after', async () => {
    const { log, lines } = capture();
    const exits: number[] = [];
    const scoped: string[] = [];
    const clean = await shutDown(log, [['a', async () => void scoped.push('step')]], {
      graceMs: 200,
      lingerMs: 10_000,
      exit: (code) => void exits.push(code),
      scope: async (fn) => {
        scoped.push('enter');
        const r = await fn();
        scoped.push('leave');
        return r;
      },
    });
    expect(clean).toBe(true);
    expect(scoped).toEqual(['enter', 'step', 'leave']);
    expect(lines.filter((l) => (l.msg as string).startsWith('shut down'))[0]).toEqual(expect.objectContaining({ level: 30, msg: 'shut down' }));
    expect(lines.find((l) => l.msg === 'shut down')).not.toHaveProperty('failed');
    // The linger is capped at what is left of the grace period (200 ms, not 10 s), and the
    // safety net was cleared: one exit, with the command's status, never 1.
    await vi.waitFor(() => expect(exits.length).toBeGreaterThan(0), { timeout: 5_000 });
    expect(exits).toEqual([typeof process.exitCode === 'number' ? process.exitCode : 0]);
    await new Promise((r) => setTimeout(r, 300));
    expect(exits).toHaveLength(1);
    expect(lines.some((l) => l.level === 50)).toBe(false);
  });
});

describe('stopSignal', () => {
  it('resolves with the first signal, logs it, and a second one exits at once with its status', async () => {
    const { log, lines } = capture();
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    const before = { int: process.listenerCount('SIGINT'), term: process.listenerCount('SIGTERM') };
    const got = stopSignal(log);
    expect(process.listenerCount('SIGTERM')).toBe(before.term + 1);
    process.emit('SIGTERM');
    expect(await got).toBe('SIGTERM');
    expect(lines.find((l) => l.msg === 'shutting down')).toMatchObject({ level: 30, signal: 'SIGTERM' });
    expect(exit).not.toHaveBeenCalled();
    process.emit('SIGINT');
    expect(exit).toHaveBeenCalledWith(130);
    expect(lines.find((l) => l.msg === 'second signal: exiting without finishing the shutdown')).toMatchObject({ level: 40, signal: 'SIGINT' });
    // What is left is the other one-shot handler for a second signal, nothing from the first.
    process.emit('SIGTERM');
    expect(exit).toHaveBeenLastCalledWith(143);
    expect(process.listenerCount('SIGINT')).toBe(before.int);
    expect(process.listenerCount('SIGTERM')).toBe(before.term);
  });

  it('cancelled, it gives the signals back and never settles', async () => {
    const { log } = capture();
    const before = { int: process.listenerCount('SIGINT'), term: process.listenerCount('SIGTERM') };
    const ac = new AbortController();
    let settled = false;
    void stopSignal(log, ac.signal).then(() => (settled = true));
    expect(process.listenerCount('SIGINT')).toBe(before.int + 1);
    ac.abort();
    expect(process.listenerCount('SIGINT')).toBe(before.int);
    expect(process.listenerCount('SIGTERM')).toBe(before.term);

    const done = new AbortController();
    done.abort();
    void stopSignal(log, done.signal).then(() => (settled = true));
    expect(process.listenerCount('SIGINT')).toBe(before.int);
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(false);
  });
});
