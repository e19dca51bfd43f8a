/**
 * External plugins in `switchyard shell` (a process, real etcd): the examples and a faulty
 * test plugin, copied to a temp dir outside the source tree and named in switchyard.yaml,
 * go through the same router as built-ins — ACL, help, confirmation, audit, [ops] lines —
 * and a plugin that throws or hangs costs a coded reply, never the process.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runShell } from './helpers/process.js';
import { afterEach, describe, expect, it } from 'vitest';
import { FAULTY_PLUGIN, pluginSource, pluginWorkspace } from './helpers/plugins.js';
import { ONCALL, VISITOR, type Workspace } from './helpers/workspace.js';

/** /health answers 200 on one server and 503 on the other: what `probe` reports. */
async function healthServer(status: number): Promise<Server> {
  const server = createServer((req, res) => {
    res.writeHead(req.url === '/health' ? status : 404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

/** The line of switchyard.yaml holding `needle`. */
const lineOf = async (ws: Workspace, needle: string) => (await readFile(ws.configPath, 'utf8')).split('\n').findIndex((l) => l.includes(needle)) + 1;

const PLUGINS = `plugins:
  - module: ./plugins/maintenance/index.js
    options:
      reason: database upgrade
  - module: ./plugins/http-check
    options: { timeout: 2s }
  - ./faulty.mjs
`;

describe('external plugins in switchyard shell (process, real etcd)', () => {
  let ws: Workspace | undefined;
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
    await ws?.dispose();
    ws = undefined;
  });

  it('runs plugin commands through the router: confirmation, [ops] lines, audit, string replies, throw and hang', async () => {
    ws = await pluginWorkspace({ plugins: PLUGINS, files: { 'faulty.mjs': FAULTY_PLUGIN } });
    const [up, down] = [await healthServer(200), await healthServer(503)];
    servers.push(up, down);
    const port = (s: Server) => (s.address() as AddressInfo).port;
    const script = [
      `register web web-1 127.0.0.1:${port(up)}`,
      `register web web-2 127.0.0.1:${port(down)}`,
      'maintenance web on',
      'maintenance web on --yes',
      'status web',
      'probe web',
      'explode',
      'hang',
      'hello',
      'maintenance web off --yes',
      'help',
    ].join('\n');
    const logFile = join(ws.dir, 'switchyard.log');
    const { code, stdout, stderr } = await runShell(ws.configPath, ['--user', ONCALL, '--log', logFile], script);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = stdout.split('\n');

    // Confirmation first, nothing changed; then the change, reported in #ops as the caller's.
    expect(stdout).toContain('error: this takes all 2 instance(s) of web out of rotation (database upgrade): nothing was changed');
    expect(stdout).toContain('maintenance web on --yes');
    expect(lines).toContain('web: web-1, web-2 in maintenance (database upgrade)');
    const ops = lines.filter((l) => l.startsWith('[ops]'));
    expect(ops.some((l) => /web\/web-1/.test(l) && /maint/.test(l) && l.includes(`by ${ONCALL} via maintenance`))).toBe(true);
    expect(stdout).toMatch(/web-1\s+127\.0\.0\.1:\d+\s+maint/);
    expect(lines).toContain('web: web-1, web-2 back in rotation');

    // The HTTP plugin: one healthy, one 503.
    expect(lines).toContain('web: 1 of 2 instance(s) answered /health with 2xx');
    expect(stdout).toMatch(/web-2\s+127\.0\.0\.1:\d+\s+503/);

    // Throwing and hanging plugins: coded replies, and the shell went on to the next line.
    const explode = lines.find((l) => l.includes('explode'))!;
    expect(explode).toMatch(/^error: plugin faulty failed running explode \(request [\w-]+\); details are in the bot's log$/);
    expect(stdout).not.toContain('kaboom');
    expect(lines).toContain('error: hang did not finish within 300ms; it may still complete');
    expect(lines).toContain(`hello ${ONCALL}`);
    expect(stdout).toMatch(/maintenance .*take every instance of a service out of rotation/);
    expect(stdout).toMatch(/probe .*GET \/health on every instance/);

    const records = (await readFile(logFile, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const audits = records.filter((r) => r.audit === true).map((a) => [a.command, a.result, a.code ?? null]);
    expect(audits.slice(2)).toEqual([
      ['maintenance', 'confirmation_needed', 'E_CONFIRM_REQUIRED'],
      ['maintenance', 'ok', null],
      ['status', 'ok', null],
      ['probe', 'ok', null],
      ['explode', 'error', 'E_PLUGIN'],
      ['hang', 'error', 'E_TIMEOUT'],
      ['hello', 'ok', null],
      ['maintenance', 'ok', null],
      ['help', 'ok', null],
    ]);
    // What the user was not shown is in the log, with the request.
    expect(records.some((r) => JSON.stringify(r).includes('kaboom: secret internals') && r.plugin === 'faulty')).toBe(true);
    const state = JSON.parse((await ws.etcd.get(`${ws.prefixes.switchyard}/state/web/web-1`).string())!) as { state: string; by: string };
    expect(state).toMatchObject({ state: 'ready', by: ONCALL });
  });

  it('applies acl.yaml to plugin commands: refusal, services globs, and help only for those allowed', async () => {
    ws = await pluginWorkspace({ plugins: PLUGINS, files: { 'faulty.mjs': FAULTY_PLUGIN } });
    await ws.etcd.put(`${ws.prefixes.services}/web/web-1`).value('10.0.0.1:80');
    const visitor = await runShell(ws.configPath, ['--user', VISITOR, '--channel', 'C0OPS'], 'maintenance web on --yes\nmaintenance sandbox-1 on --yes\n');
    expect(visitor.code).toBe(0);
    expect(visitor.stdout).toContain('error: you may not run maintenance on web here');
    // Allowed by the sandbox-* rule: it ran, and found nothing to do.
    expect(visitor.stdout).toContain('error: sandbox-1 has no registered instance');
    expect(await ws.etcd.get(`${ws.prefixes.switchyard}/state/web/web-1`).string()).toBeNull();

    const nobody = await runShell(ws.configPath, ['--user', 'U0NOBODY', '--channel', 'C0OPS'], 'help\nmaintenance web on\n');
    expect(nobody.stdout).toMatch(/probe /);
    expect(nobody.stdout).not.toMatch(/^\s*maintenance /m);
    // Someone who may not run it at all learns nothing about its usage.
    expect(nobody.stdout).toContain('error: you may not run maintenance here');
  });

  it('does not start with a bad options block, a name clash or an incompatible API range (exit 1, file:line)', async () => {
    ws = await pluginWorkspace({
      plugins: 'plugins:\n  - module: ./plugins/maintenance/index.js\n    options:\n      confirmOn: maybe\n',
    });
    const bad = await runShell(ws.configPath, ['--user', ONCALL], 'status\n');
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toContain(`${ws.configPath}:${await lineOf(ws, 'confirmOn: maybe')}: plugins.0 (./plugins/maintenance/index.js): options.confirmOn:`);
    await ws.dispose();

    ws = await pluginWorkspace({
      plugins: 'plugins:\n  - ./mine.mjs\n',
      files: { 'mine.mjs': pluginSource({ name: 'mine', command: 'status' }) },
    });
    const clash = await runShell(ws.configPath, ['--user', ONCALL], 'status\n');
    expect(clash.code).toBe(1);
    expect(clash.stderr).toContain('command "status" from plugin mine (./mine.mjs) clashes with built-in plugin status');
    await ws.dispose();

    ws = await pluginWorkspace({
      plugins: 'plugins:\n  - ./mine.mjs\n',
      files: { 'mine.mjs': pluginSource({ name: 'mine', command: 'mine', apiVersion: '>=2' }) },
    });
    const future = await runShell(ws.configPath, ['--user', ONCALL], 'mine\n');
    expect(future.code).toBe(1);
    expect(future.stderr).toContain(
      `${ws.configPath}:${await lineOf(ws, '- ./mine.mjs')}: plugins.0 (./mine.mjs): plugin mine refused: it was written for plugin API >=2`,
    );
  });
});
