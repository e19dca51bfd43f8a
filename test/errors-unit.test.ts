/**
 * The coded error every refusal is built from: its name in logs, the catalogue's message when
 * none is given, the cause kept for the log, the details shown below the message.
 */
import { describe, expect, it } from 'vitest';
import { fail, SwitchyardError } from '../src/core/errors.js';

describe('SwitchyardError', () => {
  it('is named for logs, takes the catalogue message by default, and has no details unless given', () => {
    const e = new SwitchyardError('E_DENIED');
    expect(e.name).toBe('SwitchyardError');
    expect(e.message).toBe('not allowed');
    expect(e.details).toEqual([]);
    expect('cause' in e).toBe(false);
  });

  it('keeps the cause it was given, and fail throws one with the given message and details', () => {
    const root = new Error('socket closed');
    expect(new SwitchyardError('E_INTERNAL', 'broke', { cause: root }).cause).toBe(root);
    try {
      fail('E_BAD_ARGS', 'scale: missing <service>', { details: ['usage: scale <service> <n>'] });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(SwitchyardError);
      expect(e).toMatchObject({ code: 'E_BAD_ARGS', message: 'scale: missing <service>', details: ['usage: scale <service> <n>'] });
    }
  });
});
