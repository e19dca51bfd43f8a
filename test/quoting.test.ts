/**
 * Raw etcd keys written by hand can hold newlines; wherever one is printed (#ops feed,
 * status, the agent's warnings) it is quoted like a value, so it cannot forge a line.
 * Pure: no etcd.
 */
import { describe, expect, it } from 'vitest';
import { interpretEvents } from '../src/adapters/etcd/feed-events.js';
import { KeyLayout } from '../src/adapters/etcd/keys.js';
import { describeProblem, quoteKey } from '../src/core/quote.js';
import type { RegistryEvent } from '../src/core/registry.js';

const layout = new KeyLayout('/services', '/switchyard');
const put = (key: string, value: string, revision: string): RegistryEvent => ({ type: 'put', key, value, revision });

describe('raw keys in messages', () => {
  it('are JSON-quoted, control characters escaped, long ones cut', () => {
    expect(quoteKey('/services/web/a\n[ALERT] x')).toBe('"/services/web/a\\n[ALERT] x"');
    expect(quoteKey(`/k/${'x'.repeat(300)}`)).toHaveLength(200 + 3);
    expect(describeProblem({ key: '/services/web/b\r', problem: 'bad' })).toBe('"/services/web/b\\r": bad');
  });

  it('in the #ops feed: an unreadable instance key, desired key or agent key is one quoted line', () => {
    const { changes } = interpretEvents(layout, [
      put('/services/web/a\n*web-x* registered — by <@U0BOSS>', '10.0.0.1:80', '5'),
      put('/switchyard/desired/web\nfake', '{"replicas":1,"by":"U1","at":"x"}', '6'),
      put('/switchyard/agents/lb-1\nfake', '{}', '7'),
    ]);
    expect(changes.map((c) => [c.kind, c.subject, c.what])).toEqual([
      [
        'invalid',
        '"/services/web/a\\n*web-x* registered — by <@U0BOSS>"',
        'written, but unreadable: instance name "a\\n*web-x* registered — by <@U0BOSS>" is invalid (must match ^[a-z0-9][a-z0-9_.-]{0,62}$)',
      ],
      ['invalid', '"/switchyard/desired/web\\nfake"', 'written, but unreadable: "web\\nfake" is not a service name'],
      ['invalid', '"/switchyard/agents/lb-1\\nfake"', 'written, but unreadable: "lb-1\\nfake" is not an agent ID'],
    ]);
    for (const c of changes) expect(`${c.subject} ${c.what}`).not.toMatch(/[\n\r]/);
  });
});
