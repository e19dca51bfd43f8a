/**
 * `switchyard …` run as a user runs it: `node bin/switchyard.js` (tsx over the sources in a
 * clone), its stdout and stderr captured, its pino lines parsed. killAll() SIGKILLs only the
 * processes this module spawned, for an afterEach/afterAll to call after a failed test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/switchyard.js', import.meta.url));

export interface LogLine {
  level: number;
  time: number;
  msg: string;
  [field: string]: unknown;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

export interface SwitchyardProcess {
  child: ChildProcess;
  readonly pid: number;
  out(): string;
  err(): string;
  /** Parsed pino lines (stdout and stderr) whose msg matches, in arrival order. */
  logs(msg?: RegExp): LogLine[];
  /** Resolves with the exit status and when it came. */
  exited: Promise<Exit>;
  running(): boolean;
  /** Send `signal`; resolves with the status and how long the exit took from the signal. */
  stop(signal: NodeJS.Signals): Promise<Exit & { ms: number }>;
}

const running = new Set<ChildProcess>();

/**
 * Spawn `switchyard <args>`. The caller's SLACK_* variables are dropped so a developer's
 * own tokens never reach a test process; `env` adds what the test means to pass.
 */
export function spawnSwitchyard(args: string[], opts: { env?: Record<string, string>; stdin?: 'pipe' | 'ignore' } = {}): SwitchyardProcess {
  const base: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'info' };
  for (const k of Object.keys(base)) if (k.startsWith('SLACK_')) delete base[k];
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...base, ...opts.env }, stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'] });
  running.add(child);
  let stdout = '';
  let stderr = '';
  const lines: LogLine[] = [];
  const partial = { out: '', err: '' };
  const collect = (which: 'out' | 'err', chunk: string) => {
    const text = partial[which] + chunk;
    const parts = text.split('\n');
    partial[which] = parts.pop() ?? '';
    for (const l of parts) {
      if (!l.startsWith('{')) continue;
      try {
        lines.push(JSON.parse(l) as LogLine);
      } catch {
        // not a log line (a reply that happens to start with a brace)
      }
    }
  };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    collect('out', d);
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    collect('err', d);
  });
  const exited = new Promise<Exit>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal, at: Date.now() });
    });
  });
  exited.catch(() => undefined); // a spawn failure is seen by whoever awaits it
  const isRunning = () => child.exitCode === null && child.signalCode === null;
  return {
    child,
    pid: child.pid ?? -1,
    out: () => stdout,
    err: () => stderr,
    logs: (msg) => (msg ? lines.filter((l) => typeof l.msg === 'string' && msg.test(l.msg)) : [...lines]),
    exited,
    running: isRunning,
    async stop(signal) {
      const t0 = Date.now();
      if (isRunning()) child.kill(signal);
      const exit = await exited;
      return { ...exit, ms: exit.at - t0 };
    },
  };
}

/** SIGKILL every process spawnSwitchyard started that is still running (a failed test's leftovers). */
export function killAll(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

export interface ShellRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `node <argv>` to its end: what it printed and its exit status. `stdin` is fed and closed. */
export function runToEnd(argv: string[], opts: { env: NodeJS.ProcessEnv; cwd?: string; stdin?: string }): Promise<ShellRun> {
  return new Promise<ShellRun>((resolve, reject) => {
    const child = spawn(process.execPath, argv, {
      env: opts.env,
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    if (opts.stdin !== undefined) child.stdin!.end(opts.stdin);
  });
}

/** `switchyard shell` as a user runs it: `script` on stdin, replies on stdout, until it exits. */
export function runShell(configPath: string, args: string[], script: string, env: Record<string, string> = {}): Promise<ShellRun> {
  return runToEnd([BIN, 'shell', '--config', configPath, ...args], { env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdin: script });
}
