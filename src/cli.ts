import { parseArgs } from 'node:util';
import pino from 'pino';
import { runShell, shellFeed } from './adapters/shell/shell.js';
import { createSlackClient } from './adapters/slack/client.js';
import { createSlackApp } from './adapters/slack/app.js';
import { SlackFeedSink } from './adapters/slack/feed-sink.js';
import { loadConfig, loadSecrets, resolveConfigPath } from './config/load.js';
import { AclStore } from './core/acl-store.js';
import { DM } from './core/caller.js';
import { isSwitchyardError, SwitchyardError } from './core/errors.js';
import { nullFeed } from './core/feed.js';
import { createLogger } from './core/log.js';
import { loadPlugins } from '../plugins/index.js';
import { buildRuntime, knownCommands } from './runtime.js';

const USAGE = `usage: switchyard <command> [options]

  serve                       the Slack bot (HTTP receiver on $PORT, or Socket Mode with SLACK_APP_TOKEN)
  shell [--user ID] [--channel ID|dm] [--log FILE]
                              the same commands and ACLs from stdin, replies on stdout
  check                       validate the config and acl.yaml (file:line errors)
  agent                       the HAProxy agent (not available yet)
  render --once [--dry-run]   render the HAProxy config now (not available yet)

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
      out(`${configPath}: ok\n${acl.path}: ok (${acl.ruleCount} rules)\n`);
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
      const runtime = await buildRuntime({ config, secrets, log, feed: shellFeed(out) });
      try {
        const userId = values.user ?? env.SWITCHYARD_USER ?? `local-${env.USER ?? 'user'}`;
        if (process.stdin.isTTY) process.stderr.write(`switchyard shell as ${userId}; type "help", Ctrl-D to quit\n`);
        await runShell({
          dispatcher: runtime.router,
          caller: { userId, channel: values.channel ?? DM, source: 'shell' },
          input: process.stdin,
          write: out,
        });
      } finally {
        await runtime.close();
      }
      return 0;
    }
    case 'serve':
      return serve(configPath, env);
    case 'agent':
    case 'render':
      throw new SwitchyardError('E_UNAVAILABLE', `"${command}" needs the HAProxy agent, which this build does not include yet`);
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
  const client = createSlackClient(secrets.slackBotToken, apiUrl ? { apiUrl } : {}, log);
  const feedChannel = config.slack?.feedChannel;
  const feed = feedChannel ? new SlackFeedSink({ client, channel: feedChannel, log }) : nullFeed;
  if (!feedChannel) log.warn('slack.feedChannel is not set: #ops feed events are not posted');
  const runtime = await buildRuntime({ config, secrets, log, feed, watchAcl: true });
  const slack = createSlackApp({
    dispatcher: runtime.router,
    log,
    botToken: secrets.slackBotToken,
    signingSecret: secrets.slackSigningSecret,
    ...(secrets.slackAppToken ? { appToken: secrets.slackAppToken } : {}),
    ...(apiUrl ? { apiUrl } : {}),
    port: secrets.port,
    metricsRegistry: runtime.metrics.registry,
    health: async () => {
      const h = await runtime.registry.health();
      return { ok: h.ok, details: { etcd: h.endpoints } };
    },
  });
  const { port } = await slack.start();
  log.info({ port, socketMode: Boolean(secrets.slackAppToken) }, 'switchyard serving');

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'shutting down');
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await slack.stop();
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
