/**
 * "Did you mean …" distances that the filter alone cannot tell apart: most typos are within
 * two edits either way, so these cases rank candidates or sit just past the cut-off, where a
 * wrong distance changes the answer (mutation testing, docs/TESTING.md).
 */
import { describe, expect, it } from 'vitest';
import { suggest } from '../src/core/suggest.js';

describe('suggest: edit distance', () => {
  it('ranks a swapped pair (one edit) before a dropped letter of a name that sorts first otherwise', () => {
    // "sclae" → "scale" is one adjacent swap; → "sclaer" one insertion. Counted as two
    // substitutions, the swap would rank second.
    expect(suggest('sclae', ['sclaer', 'scale'])).toEqual(['scale', 'sclaer']);
    expect(suggest('satuts', ['statuses', 'status'], 1)).toEqual(['status']);
  });

  it('an exact match ranks before a swap of it', () => {
    expect(suggest('ba', ['ab', 'ba'])).toEqual(['ba', 'ab']);
  });

  it('a swap is only of the same two letters', () => {
    // "abcd" and "wxyz" share no letter: four edits, far past the cut-off of two.
    expect(suggest('abcd', ['wxyz'])).toEqual([]);
    // "ab" → "cd" would be one swap if any two letters could trade places.
    expect(suggest('xabx', ['xcdxyy', 'xabxyy'])).toEqual(['xabxyy']);
    // One crossed letter alone is no swap: "ab" → "ca" and "ab" → "bc" are two edits each,
    // so the one-edit names rank first although they sort after.
    expect(suggest('ab', ['ca', 'cab'])).toEqual(['cab', 'ca']);
    expect(suggest('ab', ['bc', 'xab'])).toEqual(['xab', 'bc']);
  });

  it('inserting every letter of a long name costs one edit per letter', () => {
    expect(suggest('z', ['abcdefgh'])).toEqual([]);
    expect(suggest('zz', ['abcdefgh'])).toEqual([]);
  });

  it('keeps a name within two edits, or a third of its length, and drops the next one out', () => {
    expect(suggest('drian', ['drain'])).toEqual(['drain']);
    expect(suggest('xyain', ['drain'])).toEqual(['drain']);
    expect(suggest('xyzin', ['drain'])).toEqual([]);
    // Nine letters allow three edits.
    expect(suggest('rxgxsxexs', ['registers'])).toEqual([]);
    expect(suggest('rxgxsxers', ['registers'])).toEqual(['registers']);
  });
});
