/**
 * A command's deadline timer: it must not outlive the command (one left per command would hold
 * a stopping process open for up to a minute), and work that fails after the cut-off is handed
 * to the late-failure callback instead of being left unhandled.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { asReply, beforeDeadline } from '../src/core/command-deadline.js';
import { isSwitchyardError } from '../src/core/errors.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('beforeDeadline', () => {
  it('clears its timer once the work is done, whether it succeeded or failed', async () => {
    vi.useFakeTimers();
    const deadline = { at: performance.now() + 60_000, ms: 60_000 };
    expect(
      await beforeDeadline(
        { name: 'quick' },
        deadline,
        async () => 'done',
        () => {},
      ),
    ).toBe('done');
    expect(vi.getTimerCount()).toBe(0);
    await expect(
      beforeDeadline(
        { name: 'quick' },
        deadline,
        () => Promise.reject(new Error('no')),
        () => {},
      ),
    ).rejects.toThrow('no');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('cuts off at the deadline with E_TIMEOUT, and passes a later failure to the callback', async () => {
    vi.useFakeTimers();
    let fail: (e: Error) => void = () => {};
    const late: unknown[] = [];
    const deadline = { at: performance.now() + 60_000, ms: 60_000 };
    const p = beforeDeadline(
      { name: 'slow' },
      deadline,
      () => new Promise<string>((_, reject) => (fail = reject)),
      (e) => late.push(e),
    );
    const caught = p.catch((e: unknown) => e);
    // Fake timers, real performance.now: halfway is still running whatever the machine's load.
    await vi.advanceTimersByTimeAsync(30_000);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(30_000);
    const err = await caught;
    expect(isSwitchyardError(err, 'E_TIMEOUT')).toBe(true);
    expect((err as Error).message).toBe('slow did not finish within 1m; it may still complete');
    fail(new Error('too late'));
    await vi.advanceTimersByTimeAsync(0);
    expect(late).toEqual([new Error('too late')]);
  });

  it('a handler’s string is an ok reply; a reply passes through', () => {
    expect(asReply('fine')).toEqual({ ok: true, summary: 'fine' });
    const r = { ok: false, summary: 'no', code: 'E_NOT_FOUND' };
    expect(asReply(r)).toBe(r);
  });
});
