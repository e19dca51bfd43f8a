import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runShell } from './helpers/process.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeWorkspace, ONCALL, VISITOR, type Workspace } from './helpers/workspace.js';

describe('switchyard shell end to end (real etcd)', () => {
  let ws: Workspace;
  beforeEach(async () => {
    ws = await makeWorkspace();
  });
  afterEach(async () => {
    await ws.dispose();
  });

  it('runs a script of commands in order and leaves the registry as scripted', async () => {
    const script = [
      '# a runbook: comments and blank lines are skipped',
      '',
      'register web web-1 10.0.0.1:8080 --weight 50',
      'register web web-2 10.0.0.2:8080',
      'register api api-1 [::1]:9000 --ttl 60s',
      'deregister web web-2',
      'status web',
      'register web bad 10.0.0.1:99999',
      'deregister api api-1',
      'deregister api api-1 --yes',
    ].join('\n');
    const logFile = join(ws.dir, 'switchyard.log');
    const { code, stdout, stderr } = await runShell(ws.configPath, ['--user', ONCALL, '--log', logFile], script);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = stdout.split('\n');
    expect(lines).toContain('registered web/web-1 at 10.0.0.1:8080 (weight 50)');
    expect(lines).toContain('registered api/api-1 at [::1]:9000 (ttl 1m)');
    expect(lines).toContain('deregistered web/web-2');
    expect(stdout).toMatch(/web-1\s+10\.0\.0\.1:8080\s+ready\s+50\s+-\s+U0ONCALL/);
    expect(stdout).toContain('error: register: <host:port> "10.0.0.1:99999": port must be a number 1-65535');
    expect(stdout).toContain('api/api-1 is the last ready instance of api');
    expect(stdout.indexOf('registered web/web-1')).toBeLessThan(stdout.indexOf('deregistered web/web-2'));

    expect(await ws.instanceValue('web', 'web-1')).toBe('10.0.0.1:8080');
    expect(await ws.instanceValue('web', 'web-2')).toBeNull();
    expect(await ws.instanceValue('web', 'bad')).toBeNull();
    expect(await ws.instanceValue('api', 'api-1')).toBeNull();
    // One audit record per command, even at LOG_LEVEL=warn.
    const audits = (await readFile(logFile, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((r) => r.audit === true);
    expect(audits.map((a) => [a.command, a.result])).toEqual([
      ['register', 'ok'],
      ['register', 'ok'],
      ['register', 'ok'],
      ['deregister', 'ok'],
      ['status', 'ok'],
      ['register', 'invalid'],
      ['deregister', 'confirmation_needed'],
      ['deregister', 'ok'],
    ]);
    expect(audits[0]).toMatchObject({ user: ONCALL, channel: 'dm', source: 'shell', args: { service: 'web', instance: 'web-1', weight: 50 } });
    expect(typeof audits[0]!.durationMs).toBe('number');
    const state = JSON.parse((await ws.etcd.get(`${ws.prefixes.switchyard}/state/web/web-1`).string())!);
    expect(state).toMatchObject({ state: 'ready', weight: 50, by: ONCALL });
  });

  it('applies the same ACLs as Slack: a visitor may read but changes nothing', async () => {
    const { code, stdout } = await runShell(ws.configPath, ['--user', VISITOR, '--channel', 'C0OPS'], 'register web web-1 10.0.0.1:80\nstatus\nhelp\n');
    expect(code).toBe(0);
    expect(stdout).toContain('error: you may not run register here: no rule allows register');
    expect(stdout).toContain('0 service(s), 0 instance(s)');
    expect(stdout).not.toContain('deregister');
    expect(await ws.instanceValue('web', 'web-1')).toBeNull();
  });

  it('refuses a --log it cannot append to with one line naming the path and what is wrong, exit 1, running nothing', async () => {
    const script = 'register web web-1 10.0.0.1:80\n';
    for (const [path, problem] of [
      [ws.dir, 'is a directory; give a file to append the logs to'],
      [join(ws.dir, 'no-such-dir', 'switchyard.log'), 'its directory does not exist'],
    ] as const) {
      const { code, stdout, stderr } = await runShell(ws.configPath, ['--user', ONCALL, '--log', path], script);
      expect(code, stderr).toBe(1);
      expect(stderr).toBe(`switchyard: --log ${path}: ${problem}\n`);
      expect(stdout).toBe('');
    }
    // The process has exited: the command it was given cannot still be on its way.
    expect(await ws.instanceValue('web', 'web-1')).toBeNull();
  });

  it('fails at start with file:line when acl.yaml is invalid', async () => {
    const bad = await makeWorkspace({ acl: 'rules:\n  - allow: [status]\n    groups: [nobody]\n' });
    try {
      const { code, stderr } = await runShell(bad.configPath, ['--user', ONCALL], 'status\n');
      expect(code).toBe(1);
      expect(stderr).toMatch(/acl\.yaml:3:.*nobody/);
    } finally {
      await bad.dispose();
    }
  });
});
