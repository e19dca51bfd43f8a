import pino from 'pino';
import { withinDeadline } from './adapters/etcd/deadline.js';
import { runShell, shellFeed } from './adapters/shell/shell.js';
import { loadConfig, loadSecrets } from './config/load.js';
import { DM } from './core/caller.js';
import { SwitchyardError } from './core/errors.js';
import { createLogger } from './core/log.js';
import { settledWithin, SHUTDOWN_IO_MS, shutDown, signalExitCode, stopSignal, type StopSignal } from './core/shutdown.js';
import { startShellFeed } from './app/feed.js';
import { settlingDispatcher } from './feed/tail.js';
import { buildRuntime } from './app/runtime.js';

export interface ShellValues {
  user?: string;
  channel?: string;
  log?: string;
  agent?: boolean;
}

/**
 * On SIGINT/SIGTERM the command in flight gets this long to print its reply before the
 * shell shuts down without it (the rest of the 5 s goes to resigning and revoking).
 */
const IN_FLIGHT_GRACE_MS = 1000;

/** What is wrong with a --log path, by the error opening it gave. */
const LOG_FILE_PROBLEMS: Record<string, string> = {
  EISDIR: 'is a directory; give a file to append the logs to',
  ENOENT: 'its directory does not exist',
  ENOTDIR: 'a part of the path is not a directory',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'the file system is read-only',
};

/** The --log file opened for appending, or E_BAD_ARGS saying what is wrong with the path. */
function openLogFile(path: string): pino.DestinationStream {
  try {
    return pino.destination({ dest: path, append: true, sync: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const problem = (code && LOG_FILE_PROBLEMS[code]) ?? `cannot be opened for appending (${code ?? String(err)})`;
    throw new SwitchyardError('E_BAD_ARGS', `--log ${path}: ${problem}`, { cause: err });
  }
}

/**
 * `switchyard shell`: commands from stdin until EOF (exit 0). Stopped by SIGINT/SIGTERM it
 * reads no further, lets the command in flight finish briefly, releases what it holds (its
 * agent's status key, locks) and exits 130/143, so a script can tell it was cut short.
 */
export async function shellCommand(configPath: string, values: ShellValues, env: NodeJS.ProcessEnv, out: (s: string) => void): Promise<number> {
  // Opened first: a --log the shell cannot write to is the user's to fix, before anything connects.
  const destination = values.log ? openLogFile(values.log) : undefined;
  const config = await loadConfig(configPath, env);
  const secrets = loadSecrets(env);
  // Logs (and the audit trail) go to --log FILE when given, so they do not interleave
  // with replies on a terminal; other logs default to warn.
  const log = createLogger({ level: secrets.logLevel ?? 'warn', ...(destination ? { destination } : {}) });
  const feed = shellFeed(out);
  // Opt-in here: a shell on a laptop with the production config must not start an agent
  // that reports an unreachable HAProxy under its own name.
  const runtime = await buildRuntime({ config, secrets, log, feed, agent: values.agent ?? false });
  // Registry changes (ours and anyone else's) are printed as [ops] lines; without etcd
  // there is nothing to print, and the commands say so themselves.
  const tail = await startShellFeed({ registry: runtime.registry, sink: feed, log }).catch((err: unknown) => {
    log.warn({ err }, 'the registry feed is not shown in this shell');
    return undefined;
  });
  const userId = values.user ?? env.SWITCHYARD_USER ?? `local-${env.USER ?? 'user'}`;
  if (process.stdin.isTTY) process.stderr.write(`switchyard shell as ${userId}; type "help", Ctrl-D to quit\n`);
  const stopping = new AbortController();
  const session = runShell({
    dispatcher: tail ? settlingDispatcher(runtime.router, tail) : runtime.router,
    caller: { userId, channel: values.channel ?? DM, source: 'shell' },
    input: process.stdin,
    write: out,
    signal: stopping.signal,
  });
  // Until EOF; after it, SIGINT/SIGTERM go back to ending the process outright.
  const atEof = new AbortController();
  let signal: StopSignal | undefined;
  try {
    signal = await Promise.race([session.then(() => undefined), stopSignal(log, atEof.signal)]);
  } finally {
    if (signal === undefined) {
      atEof.abort();
      await tail?.close();
      await runtime.close();
    }
  }
  if (signal === undefined) return 0;
  stopping.abort();
  process.stderr.write(`switchyard shell: stopped by ${signal}; no further commands read\n`);
  await shutDown(
    log,
    [
      [
        'command in flight',
        () =>
          settledWithin(
            session.catch(() => undefined),
            IN_FLIGHT_GRACE_MS,
          ),
      ],
      ['feed', tail && (() => tail.close())],
      ['runtime', () => runtime.close()],
    ],
    { scope: (fn) => withinDeadline(SHUTDOWN_IO_MS, fn) },
  );
  return signalExitCode(signal);
}
