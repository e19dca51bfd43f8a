/**
 * `haproxy -c`: validate a candidate config with the binary that will run it.
 *
 * HAProxy 2.6 prints nothing at all with `-q` when the config is invalid (the alerts are
 * quiet too), so a failed quiet check is re-run without `-q` to capture its own error
 * lines. The temp file's name in those lines is replaced by the live file's, so operators
 * see `haproxy.cfg:12`.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { SwitchyardError } from '../../core/errors.js';

export interface CheckResult {
  ok: boolean;
  /** HAProxy's own ALERT/WARNING lines (without the "(pid)" noise). */
  lines: string[];
}

/** A bare name is looked up on PATH and in the sbin directories Debian installs HAProxy to. */
export function resolveBinary(binary: string): string | undefined {
  if (binary.includes('/')) return existsSync(binary) ? binary : undefined;
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const dir of dirs) {
    if (dir && existsSync(join(dir, binary))) return join(dir, binary);
  }
  return undefined;
}

function run(bin: string, args: string[], timeoutMs: number): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      const output = `${stdout}${stderr}`;
      if (!err) return resolve({ code: 0, output });
      const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean };
      if (typeof e.code === 'number') return resolve({ code: e.code, output });
      if (e.killed) return reject(new SwitchyardError('E_TIMEOUT', `${bin} -c did not finish within ${timeoutMs} ms`));
      reject(new SwitchyardError('E_CONFIG', `cannot run ${bin}: ${e.message}`, { cause: err }));
    });
  });
}

/** Reduce HAProxy's output to the lines an operator needs, naming `shownAs` instead of the temp file. */
export function cleanCheckOutput(output: string, file: string, shownAs: string): string[] {
  return output
    .split('\n')
    .filter((l) => /^\[(ALERT|WARNING)\]/.test(l))
    .map((l) =>
      l
        .replace(/^\[(ALERT|WARNING)\]\s+\(\d+\)\s*:\s*/, '[$1] ')
        .split(file)
        .join(shownAs)
        .trim(),
    );
}

export async function checkConfig(binary: string, file: string, shownAs: string, timeoutMs = 10_000): Promise<CheckResult> {
  const bin = resolveBinary(binary);
  if (!bin)
    throw new SwitchyardError('E_CONFIG', `haproxy not found: "${binary}" is not on PATH (install it with "apt-get install -y haproxy" or set haproxy.binary)`);
  const quiet = await run(bin, ['-c', '-q', '-f', file], timeoutMs);
  if (quiet.code === 0) return { ok: true, lines: [] };
  const loud = await run(bin, ['-c', '-f', file], timeoutMs);
  const lines = cleanCheckOutput(loud.output, file, shownAs);
  return { ok: false, lines: lines.length > 0 ? lines : [`haproxy -c exited with status ${quiet.code}`] };
}

/** `bind` addresses in a config text (for telling new listeners from ones HAProxy already holds). */
export function bindsIn(configText: string | undefined): Set<string> {
  return new Set([...(configText ?? '').matchAll(/^\s*bind\s+(\S+)/gm)].map((m) => m[1]!));
}

/**
 * Try to bind each new listener address. HAProxy's own `-c` does not bind, and a reload
 * that fails to bind only shows up as "[failed: 1]" in `show proc` (2.6 has no startup
 * log on the master CLI), so this is where "address already in use" gets a clear message.
 */
export async function preflightBinds(binds: Iterable<string>): Promise<string[]> {
  const problems: string[] = [];
  for (const bind of binds) {
    const i = bind.lastIndexOf(':');
    const host = bind.slice(0, i).replace(/^\[|\]$/g, '');
    const port = Number(bind.slice(i + 1));
    if (!Number.isInteger(port)) continue;
    const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      const srv = createServer();
      srv.once('error', (e: NodeJS.ErrnoException) => resolve(e));
      srv.listen({ host: host || undefined, port, exclusive: true }, () => srv.close(() => resolve(undefined)));
    });
    // A privileged port tells nothing when the agent runs unprivileged and HAProxy does not.
    if (err && err.code !== 'EACCES' && err.code !== 'EPERM') {
      problems.push(`cannot bind ${bind}: ${err.code ?? err.message}${err.code === 'EADDRINUSE' ? ' (address already in use)' : ''}`);
    }
  }
  return problems;
}
