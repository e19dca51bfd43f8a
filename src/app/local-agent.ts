/**
 * The agent of this process (`switchyard agent`, and in-process in `serve` and `shell`
 * when `haproxy:` is configured). A broken template stops start-up, as it would stop
 * confd; etcd being unreachable does not: the agent keeps trying to start in the
 * background, so the bot (or the agent process under systemd) comes up either way.
 */
import type { EtcdRegistry } from '../adapters/etcd/registry.js';
import { loadTemplate } from '../adapters/haproxy/template.js';
import type { Config } from '../config/schema.js';
import { isSwitchyardError, SwitchyardError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { defaultAgentId, type HaproxyAgent } from '../agent/agent.js';
import { agentControl, type HaproxyControl } from '../agent/control.js';
import { createHaproxyAgent, type CreateAgentOptions } from './agent.js';

export interface LocalAgent {
  readonly control: HaproxyControl;
  /** The running agent, once it has started. */
  readonly agent: HaproxyAgent | undefined;
  /** Resolves once the agent has started (never rejects; stop() ends the wait). */
  readonly started: Promise<void>;
  stop(): Promise<void>;
}

export interface LocalAgentOptions extends Omit<CreateAgentOptions, 'log'> {
  /** Backoff between start attempts while etcd is unreachable. Default 500 ms doubling to 10 s. */
  startRetry?: { minMs: number; maxMs: number };
}

export async function startLocalAgent(config: Config, registry: EtcdRegistry, log: Logger, opts: LocalAgentOptions = {}): Promise<LocalAgent> {
  const haproxy = config.haproxy;
  if (!haproxy) throw new SwitchyardError('E_CONFIG', 'no haproxy: section in the config, so there is no agent to run');
  // Fails fast with file:line on a template that does not compile.
  await loadTemplate(haproxy.template);
  const { startRetry, ...agentOpts } = opts;
  const retry = startRetry ?? { minMs: 500, maxMs: 10_000 };
  // Fixed up front so messages can name the agent before it has started.
  const agentId = agentOpts.agentId ?? haproxy.agentId ?? defaultAgentId();
  let running: HaproxyAgent | undefined;
  /** The start attempt in progress: stop() waits for it rather than racing it. */
  let inflight: Promise<void> | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let markStarted!: () => void;
  const started = new Promise<void>((resolve) => (markStarted = resolve));

  const tryStart = async (delay: number): Promise<void> => {
    if (stopped) return;
    const agent = createHaproxyAgent(config, registry, { ...agentOpts, agentId, log });
    try {
      await agent.start();
    } catch (err) {
      await agent.stop();
      if (stopped) return;
      if (!isSwitchyardError(err, 'E_UNAVAILABLE')) throw err;
      log.warn({ err, retryInMs: delay }, 'the HAProxy agent cannot start yet (etcd unreachable); retrying');
      timer = setTimeout(() => {
        inflight = tryStart(Math.min(retry.maxMs, delay * 2)).catch((e: unknown) => log.error({ err: e }, 'the HAProxy agent could not start'));
      }, delay);
      return;
    }
    if (stopped) {
      await agent.stop();
      return;
    }
    running = agent;
    markStarted();
  };
  inflight = tryStart(retry.minMs);
  await inflight;

  const current = (): HaproxyAgent => {
    if (running) return running;
    throw new SwitchyardError('E_UNAVAILABLE', 'the HAProxy agent of this bot has not started yet (etcd unreachable at start-up; it keeps trying)');
  };
  return {
    control: agentControl(current, {
      agentId,
      config: { haproxy, services: config.services, registry: config.registry },
      registry,
      checkInterMs: agentOpts.checkInterMs,
      log,
    }),
    get agent() {
      return running;
    },
    started,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      markStarted();
      await inflight;
      await running?.stop();
    },
  };
}
