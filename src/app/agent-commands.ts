/**
 * The agent's command-line entry points: `switchyard agent`, `switchyard render --once
 * [--dry-run]` and the template part of `switchyard check`. The CLI only parses and
 * dispatches; what each one does lives here.
 */
import { readFile } from 'node:fs/promises';
import { withinDeadline } from '../adapters/etcd/deadline.js';
import { createEtcdRegistry, type EtcdRegistry } from '../adapters/etcd/registry.js';
import type { ApplyResult } from '../core/apply-result.js';
import { checkTemplate, DEFAULT_TEMPLATE_PATH, loadTemplate } from '../adapters/haproxy/template.js';
import type { Secrets } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { SwitchyardError } from '../core/errors.js';
import { describeProblem } from '../core/quote.js';
import type { Logger } from '../core/log.js';
import { SHUTDOWN_IO_MS, shutDown, stopSignal } from '../core/shutdown.js';
import { defaultAgentId, HaproxyAgent } from '../agent/agent.js';
import { checkText } from '../agent/control.js';
import { renderCandidate } from '../agent/candidate.js';
import { formatApplyResult } from '../agent/format.js';
import { startLocalAgent } from './local-agent.js';
import { MemoryAgentStatusStore } from '../agent/status-store.js';

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

/** How long `render --once` waits for its one apply (a reload takes well under a second). */
const ONCE_TIMEOUT_MS = 60_000;

function haproxyOf(config: Config): NonNullable<Config['haproxy']> {
  if (!config.haproxy) throw new SwitchyardError('E_CONFIG', 'no haproxy: section in the config: there is no HAProxy to render for');
  return config.haproxy;
}

async function withRegistry<T>(config: Config, secrets: Pick<Secrets, 'etcdPassword'>, log: Logger, fn: (r: EtcdRegistry) => Promise<T>): Promise<T> {
  const registry = createEtcdRegistry(config, {
    ...(secrets.etcdPassword !== undefined ? { password: secrets.etcdPassword } : {}),
    log: log.child({ component: 'etcd' }),
  });
  try {
    return await fn(registry);
  } finally {
    await registry.close();
  }
}

/** `switchyard agent`: the agent alone until SIGINT/SIGTERM; SIGHUP re-reads the template. */
export async function agentCommand(config: Config, secrets: Pick<Secrets, 'etcdPassword'>, log: Logger): Promise<number> {
  haproxyOf(config);
  return withRegistry(config, secrets, log, async (registry) => {
    const local = await startLocalAgent(config, registry, log);
    const onHup = () => {
      log.info('SIGHUP: re-reading the HAProxy template');
      local.agent?.refreshTemplate().catch((err: unknown) => log.error({ err }, 'template not reloaded; the agent keeps the one it has'));
    };
    process.on('SIGHUP', onHup);
    await stopSignal(log);
    process.off('SIGHUP', onHup);
    // Closing the registry revokes the status key's lease: the agent leaves `status` at once.
    await shutDown(
      log,
      [
        ['agent', () => local.stop()],
        ['registry', () => registry.close()],
      ],
      { scope: (fn) => withinDeadline(SHUTDOWN_IO_MS, fn) },
    );
    return 0;
  });
}

/**
 * `switchyard render --once [--dry-run]` (confd -onetime). Dry run: print the config the
 * registry would produce and whether `haproxy -c` accepts it, touching nothing. Otherwise
 * one apply by a short-lived agent: validated and written whether or not HAProxy runs,
 * then applied (runtime API, else reload) only if HAProxy answers — so a host can boot by
 * rendering once and starting HAProxy from the file. Exit 1 only when the config is
 * refused or cannot be written.
 */
export async function renderCommand(
  config: Config,
  secrets: Pick<Secrets, 'etcdPassword'>,
  log: Logger,
  opts: { once: boolean; dryRun: boolean },
  io: Io,
): Promise<number> {
  const h = haproxyOf(config);
  if (!opts.once) {
    throw new SwitchyardError('E_BAD_ARGS', 'render needs --once: it renders one time and exits (the watching agent is `switchyard agent`)');
  }
  return withRegistry(config, secrets, log, (registry) => (opts.dryRun ? dryRun(config, h, registry, log, io) : applyOnce(config, h, registry, log, io)));
}

async function dryRun(config: Config, h: NonNullable<Config['haproxy']>, registry: EtcdRegistry, log: Logger, io: Io): Promise<number> {
  const agentConfig = { haproxy: h, services: config.services, registry: config.registry };
  const [listing, template] = await Promise.all([registry.list(), loadTemplate(h.template)]);
  const candidate = renderCandidate(agentConfig, listing, template, { agentId: h.agentId ?? defaultAgentId(), log });
  io.out(candidate.rendered);
  for (const p of candidate.model.problems) io.err(`skipped ${describeProblem(p)}\n`);
  const check = await checkText(h.binary, candidate.rendered, h.config);
  if (check.ok) {
    io.err(`haproxy -c: valid (dry run: ${h.config} was not touched)\n`);
    return 0;
  }
  io.err(`haproxy -c rejected it (dry run: ${h.config} was not touched):\n${check.lines.map((l) => `  ${l}\n`).join('')}`);
  return 1;
}

async function applyOnce(config: Config, h: NonNullable<Config['haproxy']>, registry: EtcdRegistry, log: Logger, io: Io): Promise<number> {
  // Results stay in memory: a one-off run must not replace a running agent's status key.
  const agent = new HaproxyAgent({
    config: { haproxy: h, services: config.services, registry: config.registry },
    registry,
    status: new MemoryAgentStatusStore(),
    log,
  });
  let timer: NodeJS.Timeout | undefined;
  const first = new Promise<ApplyResult>((resolve, reject) => {
    agent.onApply(resolve);
    timer = setTimeout(() => reject(new SwitchyardError('E_TIMEOUT', `no apply result within ${ONCE_TIMEOUT_MS / 1000}s`)), ONCE_TIMEOUT_MS);
  });
  first.catch(() => undefined); // observed below; a start failure must not leave it unhandled
  try {
    await agent.start();
    const r = await first;
    if (r.failure === 'unavailable') {
      // The agent wrote the validated file before reporting this; there is nothing to reload.
      io.out(`haproxy ${r.agentId}: wrote ${h.config} (haproxy -c: valid); HAProxy did not answer, so nothing was reloaded — start HAProxy from this file\n`);
      io.err((r.error ?? []).map((l) => `  ${l}\n`).join(''));
      return 0;
    }
    io.out(`${formatApplyResult(r)}\n`);
    if (!r.ok) io.err((r.error ?? []).map((l) => `  ${l}\n`).join(''));
    return r.ok ? 0 : 1;
  } finally {
    clearTimeout(timer);
    await agent.stop();
  }
}

/** `switchyard check`: the HAProxy template compiles and renders; "" when there is no haproxy: section. */
export async function checkTemplateFile(config: Config): Promise<string> {
  if (!config.haproxy) return '';
  const path = config.haproxy.template ?? DEFAULT_TEMPLATE_PATH;
  let source: string;
  try {
    source = await readFile(path, 'utf8');
  } catch (err) {
    throw new SwitchyardError('E_CONFIG', `cannot read the HAProxy template ${path} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`, { cause: err });
  }
  const problems = checkTemplate(source, path);
  if (problems.length > 0) throw new SwitchyardError('E_CONFIG', `the HAProxy template ${path} is invalid`, { details: problems });
  return `${path}: ok`;
}
