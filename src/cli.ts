import { parseArgs } from 'node:util';
import pino from 'pino';
import { runShell, shellFeed } from './adapters/shell/shell.js';
import { EtcdConfirmationStore } from './adapters/etcd/confirmations.js';
import { createSlackClient, feedClientSettings } from './adapters/slack/client.js';
import { createSlackApp } from './adapters/slack/app.js';
import { SlackFeedSink } from './adapters/slack/feed-sink.js';
import { loadConfig, loadSecrets, resolveConfigPath } from './config/load.js';
import { AclStore } from './core/acl-store.js';
import { DM } from './core/caller.js';
import { isSwitchyardError, SwitchyardError } from './core/errors.js';
import { nullFeed } from './core/feed.js';
import { createLogger } from './core/log.js';
import { startFeedPoster, startShellFeed } from './feed/start.js';
import { settlingDispatcher } from './feed/tail.js';
import { loadPlugins } from '../plugins/index.js';
import { startOrchestrator } from './orchestrator/orchestrator.js';
import { buildRuntime, knownCommands } from './runtime.js';
import { agentCommand, checkTemplateFile, renderCommand } from './agent/commands.js';

const USAGE = `usage: switchyard <command> [options]

  serve                       the Slack bot (HTTP receiver on $PORT, or Socket Mode with SLACK_APP_TOKEN)
  shell [--user ID] [--channel ID|dm] [--log FILE] [--agent]
                              the same commands and ACLs from stdin, replies on stdout
                              (--agent: also run the HAProxy agent in-process, as serve does)
  check                       validate the config, acl.yaml and the HAProxy template (file:line errors)
  agent                       the HAProxy agent alone (no Slack) until SIGINT/SIGTERM; SIGHUP re-reads the template
  render --once [--dry-run]   render the HAProxy config from the registry now and apply it once;
                              --dry-run prints it and whether haproxy -c accepts it, changing nothing

options: --config FILE (default $SWITCHYARD_CONFIG or ./switchyard.yaml)`;

const out = (s: string) => process.stdout.write(s);

function parseCli(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      user: { type: 'string' },
      channel: { type: 'string' },
      log: { type: 'string' },
      once: { type: 'boolean' },
      'dry-run': { type: 'boolean' },
      agent: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseCli(argv);
  } catch (e) {
    process.stderr.write(`switchyard: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command] = positionals;
  if (values.help || !command) {
    out(`${USAGE}\n`);
    return command || values.help ? 0 : 2;
  }
  const env = process.env;
  const configPath = resolveConfigPath(values.config, env);

  switch (command) {
    case 'check': {
      const config = await loadConfig(configPath, env);
      const acl = await AclStore.load(config.acl.path, { knownCommands: knownCommands(loadPlugins()) });
      const template = await checkTemplateFile(config);
      out(`${configPath}: ok\n${acl.path}: ok (${acl.ruleCount} rules)\n${template ? `${template}\n` : ''}`);
      return 0;
    }
    case 'shell': {
      const config = await loadConfig(configPath, env);
      const secrets = loadSecrets(env);
      // Logs (and the audit trail) go to --log FILE when given, so they do not interleave
      // with replies on a terminal; other logs default to warn.
      const log = createLogger({
        level: secrets.logLevel ?? 'warn',
        ...(values.log ? { destination: pino.destination({ dest: values.log, append: true, sync: true }) } : {}),
      });
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
      try {
        const userId = values.user ?? env.SWITCHYARD_USER ?? `local-${env.USER ?? 'user'}`;
        if (process.stdin.isTTY) process.stderr.write(`switchyard shell as ${userId}; type "help", Ctrl-D to quit\n`);
        await runShell({
          dispatcher: tail ? settlingDispatcher(runtime.router, tail) : runtime.router,
          caller: { userId, channel: values.channel ?? DM, source: 'shell' },
          input: process.stdin,
          write: out,
        });
      } finally {
        await tail?.close();
        await runtime.close();
      }
      return 0;
    }
    case 'serve':
      return serve(configPath, env);
    case 'agent': {
      const secrets = loadSecrets(env);
      return agentCommand(await loadConfig(configPath, env), secrets, createLogger({ ...(secrets.logLevel ? { level: secrets.logLevel } : {}) }));
    }
    case 'render': {
      const secrets = loadSecrets(env);
      const log = createLogger({ level: secrets.logLevel ?? 'warn' });
      const io = { out, err: (s: string) => process.stderr.write(s) };
      return renderCommand(await loadConfig(configPath, env), secrets, log, { once: values.once ?? false, dryRun: values['dry-run'] ?? false }, io);
    }
    default:
      process.stderr.write(`switchyard: unknown command "${command}"\n${USAGE}\n`);
      return 2;
  }
}

async function serve(configPath: string, env: NodeJS.ProcessEnv): Promise<number> {
  const config = await loadConfig(configPath, env);
  const secrets = loadSecrets(env);
  const log = createLogger({ ...(secrets.logLevel ? { level: secrets.logLevel } : {}) });
  if (!secrets.slackBotToken || !secrets.slackSigningSecret) {
    throw new SwitchyardError('E_CONFIG', 'serve needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET in the environment');
  }
  const apiUrl = secrets.slackApiUrl;
  const feedChannel = config.slack?.feedChannel;
  const feed = feedChannel
    ? new SlackFeedSink({ client: createSlackClient(secrets.slackBotToken, feedClientSettings(apiUrl), log), channel: feedChannel, log })
    : undefined;
  if (!feedChannel) log.warn('slack.feedChannel is not set: #ops feed events are not posted');
  const runtime = await buildRuntime({ config, secrets, log, feed: feed ?? nullFeed, watchAcl: true, agent: true });
  feed?.instrument(runtime.metrics);
  // One replica at a time posts registry changes (an etcd election); all of them serve commands.
  const poster = feed ? startFeedPoster({ registry: runtime.registry, pacer: feed.pacer, log, metrics: runtime.metrics }) : undefined;
  const slack = createSlackApp({
    dispatcher: runtime.router,
    log,
    botToken: secrets.slackBotToken,
    signingSecret: secrets.slackSigningSecret,
    ...(secrets.slackAppToken ? { appToken: secrets.slackAppToken } : {}),
    ...(apiUrl ? { apiUrl } : {}),
    port: secrets.port,
    metricsRegistry: runtime.metrics.registry,
    confirmations: new EtcdConfirmationStore(runtime.registry),
    health: async () => {
      const h = await runtime.registry.health();
      return { ok: h.ok, details: { etcd: h.endpoints } };
    },
  });
  const { port } = await slack.start();
  log.info({ port, socketMode: Boolean(secrets.slackAppToken) }, 'switchyard serving');
  // Death detection and reconcile run beside the bot whenever docker: is configured.
  const orchestrator = runtime.orchestration ? startOrchestrator(runtime.orchestration) : undefined;

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'shutting down');
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await orchestrator?.close();
  await slack.stop();
  await poster?.stop();
  await feed?.stop();
  await runtime.close();
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (isSwitchyardError(err)) {
      process.stderr.write(`switchyard: ${err.message}\n${err.details.map((d) => `  ${d}\n`).join('')}`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`switchyard: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 70;
    }
  },
);
