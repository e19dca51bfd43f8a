import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { z } from 'zod';
import { SwitchyardError } from './core/errors.js';

/**
 * The process command line: subcommands, their options and the usage text (commander).
 * Parsing is kept apart from running so every refusal is decided before anything starts.
 */

/** Exit statuses; scripts and systemd units rely on them. */
export const EXIT = { ok: 0, failed: 1, usage: 2, internal: 70 } as const;

const EXIT_HELP = `
Exit status: 0 done; 1 failed (configuration, etcd, an invalid HAProxy config, ...);
2 usage error (unknown command, flag or argument); 70 unexpected internal error.`;

export type CommandName = 'serve' | 'shell' | 'check' | 'agent' | 'render' | 'watch';

export interface Invocation {
  command: CommandName;
  values: CliValues;
}

/** What parsing ended with when nothing is to be run: help or version shown, or a usage error. */
export interface Exit {
  exit: number;
}

export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
}

// commander hands option values over untyped; an empty or flag-like value is a slip
// (`--user --agent`), not an ID.
const word = (what: string) =>
  z
    .string()
    .min(1, `${what} must not be empty`)
    .refine((s) => !s.startsWith('-'), `${what} needs a value, not a flag`);

const cliValues = z
  .object({
    config: word('--config').optional(),
    user: word('--user').optional(),
    channel: word('--channel').optional(),
    log: word('--log').optional(),
    agent: z.boolean().optional(),
    once: z.boolean().optional(),
    dryRun: z.boolean().optional(),
  })
  .strict();

export type CliValues = z.output<typeof cliValues>;

const packageJson = z.object({ name: z.literal('switchyard'), version: z.string().min(1) });

/** The package's version; src/ (via tsx) and dist/src/ sit at different depths below package.json. */
export function packageVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const parsed = packageJson.safeParse(JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')));
      if (parsed.success) return parsed.data.version;
    } catch {
      // not at this depth
    }
  }
  return 'unknown';
}

function program(io: CliIo, picked: (inv: Invocation) => void): Command {
  const root = new Command('switchyard')
    .description('Slack ChatOps bot for an etcd + Docker + HAProxy service-discovery stack')
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .option('--config <file>', 'switchyard.yaml to use (default: $SWITCHYARD_CONFIG, else ./switchyard.yaml)')
    .helpOption('-h, --help', 'show this help')
    .helpCommand('help [command]', 'show help for a command')
    // Settings below are copied into every subcommand created after them.
    .exitOverride()
    .configureOutput({
      writeOut: io.out,
      writeErr: io.err,
      outputError: (s, write) => write(s.replace(/^error: /, 'switchyard: ')),
    })
    .showHelpAfterError()
    .showSuggestionAfterError()
    .configureHelp({ showGlobalOptions: true })
    .addHelpText('after', EXIT_HELP);

  const choose = (command: CommandName) => (opts: Record<string, unknown>, cmd: Command) => {
    const parsed = cliValues.safeParse({ ...root.opts(), ...opts });
    if (!parsed.success) cmd.error(`switchyard ${command}: ${parsed.error.issues.map((i) => i.message).join('; ')}`, { exitCode: EXIT.usage });
    else picked({ command, values: parsed.data });
  };

  root
    .command('serve')
    .description('the Slack bot: HTTP receiver on $PORT, or Socket Mode with SLACK_APP_TOKEN; runs the HAProxy agent too when haproxy: is configured')
    .action(choose('serve'));
  root
    .command('shell')
    .description('the same commands and ACLs without Slack: one command per line from stdin, replies on stdout')
    .option('--user <id>', 'act as this Slack user ID (default: $SWITCHYARD_USER, else local-$USER)')
    .option('--channel <id|dm>', 'as if typed in this channel ID, or dm (default: dm)')
    .option('--log <file>', 'append logs and audit records to this file instead of stderr')
    .option('--agent', 'also run the HAProxy agent in-process, as serve does')
    .action(choose('shell'));
  root.command('check').description('validate the config, acl.yaml and the HAProxy template; errors as file:line').action(choose('check'));
  root.command('agent').description('the HAProxy agent alone (no Slack) until SIGINT/SIGTERM; SIGHUP re-reads the template').action(choose('agent'));
  root
    .command('watch')
    .description(
      'register the labelled containers of this Docker host (switchyard.register=<service>) while they run, until SIGINT/SIGTERM; needs watch.advertise',
    )
    .action(choose('watch'));
  root
    .command('render')
    .description('render the HAProxy config from the registry once, validate it (haproxy -c), write it and reload HAProxy')
    .option('--once', 'required: render once and exit (the long-running form is `switchyard agent`)')
    .option('--dry-run', 'print the config and whether haproxy -c accepts it, changing nothing')
    .action((opts: Record<string, unknown>, cmd: Command) => {
      if (opts.once !== true) {
        cmd.error('switchyard render: --once is required (`switchyard render --once`; the long-running form is `switchyard agent`)', {
          exitCode: EXIT.usage,
        });
      }
      choose('render')(opts, cmd);
    });
  return root;
}

/**
 * Parse `argv` (the words after the program name). Help and version go to `io.out` (exit 0);
 * usage errors go to `io.err` with the usage of the command concerned (exit 2).
 */
export function parseCommandLine(argv: readonly string[], io: CliIo): Invocation | Exit {
  let invocation: Invocation | undefined;
  try {
    program(io, (inv) => {
      invocation = inv;
    }).parse([...argv], { from: 'user' });
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    // Help asked for and --version exit 0; everything else commander refuses is a usage error
    // (including `switchyard` alone, which shows the usage on stderr).
    return { exit: e.exitCode === 0 ? EXIT.ok : EXIT.usage };
  }
  if (!invocation) throw new SwitchyardError('E_INTERNAL', 'the command line was parsed without choosing a command');
  return invocation;
}
