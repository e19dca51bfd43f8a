/**
 * GET /metrics as a Prometheus scraper sees it from the bot (runtime metrics behind the real
 * HTTP receiver): process and Node.js metrics under their standard names, ours under
 * switchyard_, and a confirmation prompt counted as such rather than as an error.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSlackApp, type SlackApp } from '../src/adapters/slack/app.js';
import { loadConfig } from '../src/config/load.js';
import { buildRuntime, type Runtime } from '../src/app/runtime.js';
import { postSlashCommand, startSlackStandIn, type SlackStandIn } from './helpers/slack.js';
import { makeWorkspace, ONCALL, OPS_CHANNEL, type Workspace } from './helpers/workspace.js';

const SECRET = 'metrics-signing-secret';

describe('GET /metrics (real etcd, signed slash commands)', () => {
  let ws: Workspace;
  let standIn: SlackStandIn;
  let runtime: Runtime;
  let slack: SlackApp;
  let base: string;

  beforeAll(async () => {
    ws = await makeWorkspace();
    standIn = await startSlackStandIn();
    const log = pino({ level: 'silent' }, { write: () => {} });
    runtime = await buildRuntime({ config: await loadConfig(ws.configPath, {}), secrets: {}, log, feed: { publish: () => {} } });
    slack = createSlackApp({
      dispatcher: runtime.router,
      log,
      botToken: 'xoxb-metrics',
      signingSecret: SECRET,
      apiUrl: standIn.apiUrl,
      port: 0,
      host: '127.0.0.1',
      metricsRegistry: runtime.metrics.registry,
      health: async () => ({ ok: true }),
    });
    const { port } = await slack.start();
    base = `http://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    await slack?.stop();
    await runtime?.close();
    await standIn?.close();
    await ws?.dispose();
  });

  async function slash(text: string, id: string): Promise<string> {
    const res = await postSlashCommand(`${base}/slack/events`, SECRET, {
      text,
      user_id: ONCALL,
      channel_id: OPS_CHANNEL,
      response_url: standIn.responseUrl(id),
    });
    expect(res.status).toBe(200);
    const reply = await standIn.waitFor((c) => c.kind === 'response' && c.method === id, 10_000);
    return String(reply.body.text);
  }

  async function scrape(): Promise<string> {
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    return res.text();
  }

  it('serves process and Node.js metrics under their standard names, ours under switchyard_', async () => {
    const text = await scrape();
    for (const family of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
      expect(text).toMatch(new RegExp(`^# TYPE ${family} `, 'm'));
    }
    const families = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] ?? '');
    expect(families).toContain('switchyard_commands_total');
    expect(families.filter((f) => /^switchyard_(process|nodejs)_/.test(f))).toEqual([]);
    expect(families.filter((f) => !/^(switchyard|process|nodejs)_/.test(f))).toEqual([]);
  });

  it('counts a confirmation prompt as result="confirmation_needed", not as an error', async () => {
    expect(await slash('register web web-1 10.1.0.1:80', 'm-register')).toContain('registered web/web-1');
    expect(await slash('deregister web web-1', 'm-deregister')).toContain('--yes');
    expect(await ws.instanceValue('web', 'web-1')).toBe('10.1.0.1:80');
    const text = await scrape();
    expect(text).toContain('switchyard_commands_total{command="register",result="ok"} 1');
    expect(text).toContain('switchyard_commands_total{command="deregister",result="confirmation_needed"} 1');
    expect(text).not.toMatch(/switchyard_commands_total\{command="deregister",result="error"\}/);
  });
});
