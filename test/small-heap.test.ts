import { getHeapStatistics } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { preferSmallHeap } from '../src/small-heap.js';

describe('preferSmallHeap', () => {
  it('leaves V8 alone when the operator passed --no-optimize-for-size', () => {
    expect(preferSmallHeap(['--no-optimize-for-size'])).toBe(false);
  });

  it('sets the flag otherwise, and the process keeps running with a usable heap', () => {
    expect(preferSmallHeap([])).toBe(true);
    // Allocation after the switch still works (the flag changes policy, not the heap's shape).
    const big = Array.from({ length: 100_000 }, (_, i) => ({ i }));
    expect(big.at(-1)).toEqual({ i: 99_999 });
    expect(getHeapStatistics().used_heap_size).toBeGreaterThan(0);
  });
});
