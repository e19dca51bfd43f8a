import { SwitchyardError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Services } from '../core/plugin.js';
import type { OrchestratorDeps } from './deps.js';
import { orchestratorSettings } from './settings.js';

/** The orchestrator's view of a command's Services; E_UNAVAILABLE when Docker is not configured. */
export function depsFromServices(services: Services, log: Logger): OrchestratorDeps {
  const { containers, locks } = services;
  if (!containers || !locks) {
    throw new SwitchyardError('E_UNAVAILABLE', 'no Docker engine is configured: add a docker: section to switchyard.yaml (or set DOCKER_HOST)');
  }
  return {
    registry: services.registry,
    engine: containers,
    locks,
    feed: services.feed,
    notices: { publish: (e) => log.info({ kind: e.kind }, e.text) },
    config: services.config,
    settings: orchestratorSettings(services.config),
    ...(services.sessions ? { sessions: services.sessions } : {}),
    log,
  };
}
