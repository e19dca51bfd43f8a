import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeWorkspace, ONCALL, type Workspace } from './helpers/workspace.js';

const BIN = fileURLToPath(new URL('../bin/switchyard.js', import.meta.url));

describe('the #ops feed in switchyard shell (real etcd)', () => {
  let ws: Workspace;
  beforeAll(async () => {
    ws = await makeWorkspace();
  });
  afterAll(async () => {
    await ws?.dispose();
  });

  it('prints each change as an [ops] line before the reply of the command that made it', async () => {
    // Written before the shell starts: not reported (the shell's feed starts with it).
    await ws.etcd.put(`${ws.prefixes.services}/api/old`).value('10.0.0.9:80').exec();
    const script = ['register web web-1 10.0.0.1:8080', 'deregister web web-1', 'deregister web web-1 --yes', 'status'].join('\n');
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [BIN, 'shell', '--config', ws.configPath, '--user', ONCALL, '--log', join(ws.dir, 'shell.log')], {
        env: { ...process.env, LOG_LEVEL: 'warn' },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', reject);
      child.on('close', (c) => resolve({ code: c, stdout: out, stderr: err }));
      child.stdin.end(script);
    });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = stdout.split('\n');
    /** The line's index; a missing line fails here, so the order checks below compare real positions. */
    const at = (s: string) => {
      const i = lines.indexOf(s);
      expect(i, `line not printed: ${s}\n--- stdout:\n${stdout}`).toBeGreaterThanOrEqual(0);
      return i;
    };
    expect(at('[ops] web/web-1 registered at 10.0.0.1:8080 — by U0ONCALL via register')).toBeLessThan(at('registered web/web-1 at 10.0.0.1:8080'));
    expect(at('[ops] web/web-1 removed (was at 10.0.0.1:8080) — by U0ONCALL via deregister')).toBeLessThan(at('deregistered web/web-1'));
    // The refused first deregister changed nothing, so it printed no [ops] line.
    expect(lines.filter((l) => l.startsWith('[ops]'))).toHaveLength(2);
  });
});
