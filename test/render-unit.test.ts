import { describe, expect, it } from 'vitest';
import type { HaproxyControl } from '../src/agent/control.js';
import { parseAgentReport } from '../src/agent/reports.js';
import { formatApplyResult } from '../src/agent/format.js';
import { agentsTable } from '../plugins/status.js';
import { renderReply } from '../src/adapters/slack/render.js';
import { routerOver, shellCaller } from './helpers/core.js';
import { MemoryRegistry } from './helpers/memory-registry.js';

function fakeControl(candidate: string, live: string | undefined): HaproxyControl {
  return {
    agentId: 'lb-fake',
    configPath: '/etc/haproxy/haproxy.cfg',
    stats: async () => [],
    candidate: async () => ({
      text: candidate,
      skipped: Array.from({ length: 12 }, (_, i) => `/services/web/bad-${i}: value "x" is not host:port`),
      templateChanged: false,
    }),
    live: async () => live,
    check: async () => ({ ok: true, lines: [] }),
    applyNow: async () => {
      throw new Error('not in this test');
    },
  };
}

function router(haproxy: HaproxyControl) {
  return routerOver({ registry: new MemoryRegistry(), local: haproxy });
}

const big = `${Array.from({ length: 10_000 }, (_, i) => `    server web-${i} 10.0.${Math.floor(i / 250)}.${i % 250}:80 check inter 2000 weight 100`).join('\n')}\n`;

describe('render reply bounds', () => {
  it('cuts a 10,000-line config to 150 lines plus a note, and fits Slack', async () => {
    const reply = await router(fakeControl(big, undefined)).dispatch({ text: 'render', caller: shellCaller() });
    expect(reply.summary).toMatch(/there is no live config yet at \/etc\/haproxy\/haproxy\.cfg$/);
    const rows = reply.tables![0]!.table.rows;
    expect(rows).toHaveLength(151);
    expect(rows[150]![0]).toBe('… 9850 more lines (switchyard render --once --dry-run on the HAProxy host prints them all)');
    expect(reply.details).toHaveLength(11);
    expect(reply.details![10]).toBe('… and 2 more skipped keys');
    const msg = renderReply(reply);
    expect(msg.blocks.length).toBeLessThanOrEqual(50);
    expect(JSON.stringify(msg).length).toBeLessThan(40_000);
  });

  it('--diff against no live file counts every line as added, bounded the same way', async () => {
    const reply = await router(fakeControl(big, undefined)).dispatch({ text: 'render --diff', caller: shellCaller() });
    const t = reply.tables![0]!.table;
    expect(t.header[0]).toBe('--- /etc/haproxy/haproxy.cfg (live: none yet)  +10000 −0');
    expect(t.rows.slice(0, 2)).toEqual([['+++ candidate'], ['@@ -1,0 +1,10000 @@']]);
    expect(t.rows).toHaveLength(151);
  });
});

describe('agent reports', () => {
  const good = { agentId: 'lb-1', method: 'runtime', ok: true, durationMs: 3.2, changes: ['+web-4', '-web-2'], at: '2026-01-01T00:00:00.000Z' };

  it('reads a valid result and refuses garbage with a reason', () => {
    expect(parseAgentReport('lb-1', JSON.stringify(good))).toEqual({ agentId: 'lb-1', result: good });
    expect(parseAgentReport('lb-2', 'nope')).toEqual({ agentId: 'lb-2', problem: 'not JSON' });
    expect(parseAgentReport('lb-3', JSON.stringify({ ...good, method: 'teleport' }))).toMatchObject({
      problem: expect.stringMatching(/^not an apply result \(method: /),
    });
  });

  it('status rows: one per agent, unreadable ones flagged', async () => {
    const view = agentsTable(
      [
        { agentId: 'lb-1', result: { ...good, method: 'runtime' as const } },
        { agentId: 'lb-2', problem: 'not JSON' },
      ],
      formatApplyResult,
      Date.parse(good.at) + 90_000,
    );
    expect(view.table?.table.rows).toEqual([
      ['lb-1', 'ok', 'runtime +web-4 −web-2 in 3.2 ms', '1m ago'],
      ['lb-2', '?', 'unreadable result', '-'],
    ]);
    expect(view.problems).toEqual(['unreadable apply result of agent lb-2: not JSON']);
  });
});
