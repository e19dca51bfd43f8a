import { loadConfig, loadSecrets, resolveConfigPath } from './config/load.js';
import { isSwitchyardError, SwitchyardError } from './core/errors.js';
import { EXIT, parseCommandLine } from './command-line.js';
import { exitOnCrash, internalErrorText } from './internal-error.js';
import { preferSmallHeap } from './small-heap.js';

const out = (s: string) => process.stdout.write(s);
const err = (s: string) => process.stderr.write(s);

/**
 * An error thrown from a timer or a stream, or a rejection nobody awaits, never reaches
 * main's promise; in a running serve or agent it is still an internal error (exit 70),
 * logged at fatal first. Installed once a command is chosen: --help loads no logger.
 */
async function exitOnCrashes(env: NodeJS.ProcessEnv): Promise<void> {
  const [{ default: pino }, { createLogger }] = await Promise.all([import('pino'), import('./core/log.js')]);
  // Synchronous, unlike the commands' own loggers: the record must be out before exit.
  const log = createLogger({ destination: pino.destination({ dest: 2, sync: true }) });
  exitOnCrash({ log, env, write: err, exit: (code) => process.exit(code) });
}

async function main(argv: string[]): Promise<number> {
  const parsed = parseCommandLine(argv, { out, err });
  if ('exit' in parsed) return parsed.exit;
  const { command, values } = parsed;
  const env = process.env;
  await exitOnCrashes(env);
  const configPath = resolveConfigPath(values.config, env);

  // Each command imports what it runs only once chosen: --help, --version and usage errors
  // answer without loading (or, via tsx, compiling) the Slack, etcd and HAProxy code.
  switch (command) {
    case 'check': {
      const [{ AclStore }, { checkPlugins }, { knownCommands }, { checkTemplateFile }, { createLogger }] = await Promise.all([
        import('./core/acl-store.js'),
        import('./app/plugin-check.js'),
        import('./app/runtime.js'),
        import('./app/agent-commands.js'),
        import('./core/log.js'),
      ]);
      const config = await loadConfig(configPath, env);
      // Plugins before acl.yaml: the ACL may name their commands.
      const loaded = await checkPlugins(config, configPath, createLogger({ level: 'warn' }));
      const acl = await AclStore.load(config.acl.path, { knownCommands: knownCommands(loaded.plugins) });
      const template = await checkTemplateFile(config);
      const external = config.plugins.length
        ? `plugins: ok (${loaded.plugins
            .slice(-config.plugins.length)
            .map((p) => p.name)
            .join(', ')})\n`
        : '';
      out(`${configPath}: ok\n${external}${acl.path}: ok (${acl.ruleCount} rules)\n${template ? `${template}\n` : ''}`);
      return 0;
    }
    case 'shell':
      return (await import('./shell-command.js')).shellCommand(configPath, values, env, out);
    case 'serve':
      preferSmallHeap();
      return (await import('./serve.js')).serve(configPath, env);
    case 'agent': {
      preferSmallHeap();
      const [{ agentCommand }, { createLogger }] = await Promise.all([import('./app/agent-commands.js'), import('./core/log.js')]);
      const secrets = loadSecrets(env);
      return agentCommand(await loadConfig(configPath, env), secrets, createLogger({ ...(secrets.logLevel ? { level: secrets.logLevel } : {}) }));
    }
    case 'render': {
      const [{ renderCommand }, { createLogger }] = await Promise.all([import('./app/agent-commands.js'), import('./core/log.js')]);
      const secrets = loadSecrets(env);
      const log = createLogger({ level: secrets.logLevel ?? 'warn' });
      const io = { out, err: (s: string) => process.stderr.write(s) };
      return renderCommand(await loadConfig(configPath, env), secrets, log, { once: values.once ?? false, dryRun: values.dryRun ?? false }, io);
    }
    case 'watch': {
      preferSmallHeap();
      const [{ watchCommand }, { createLogger }] = await Promise.all([import('./app/watch.js'), import('./core/log.js')]);
      const secrets = loadSecrets(env);
      return watchCommand(await loadConfig(configPath, env), secrets, createLogger({ ...(secrets.logLevel ? { level: secrets.logLevel } : {}) }));
    }
    default: {
      // A subcommand added to command-line.ts without a case here fails the type-check.
      const unhandled: never = command;
      throw new SwitchyardError('E_INTERNAL', `no handler for the command "${String(unhandled)}"`);
    }
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (isSwitchyardError(err)) {
      process.stderr.write(`switchyard: ${err.message}\n${err.details.map((d) => `  ${d}\n`).join('')}`);
      process.exitCode = EXIT.failed;
    } else {
      process.stderr.write(internalErrorText(err, process.env));
      process.exitCode = EXIT.internal;
    }
  },
);
