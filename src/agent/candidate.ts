/**
 * The config the registry would produce, computed from a listing read now (not from an
 * agent's watch snapshot, which may be a few milliseconds behind a write just made):
 * what `render` shows and `render --once --dry-run` prints. It goes through the agent's
 * own Converger so the text is exactly what an agent would apply.
 */
import { HaproxyApplier } from '../adapters/haproxy/apply.js';
import { HaproxyMaster } from '../adapters/haproxy/master.js';
import type { AppliedConfig } from '../adapters/haproxy/plan.js';
import { HaproxyRuntime } from '../adapters/haproxy/runtime.js';
import type { ConfigTemplate } from '../adapters/haproxy/template.js';
import type { Logger } from '../core/log.js';
import type { Listing } from '../core/registry.js';
import type { AgentConfig } from './agent.js';
import { Converger } from './converge.js';

export interface CandidateOptions {
  agentId: string;
  /** Must match the agent's (AgentOptions.checkInterMs) for the texts to compare equal. */
  checkInterMs?: number | undefined;
  log: Logger;
}

export function renderCandidate(config: AgentConfig, listing: Listing, template: ConfigTemplate, opts: CandidateOptions): AppliedConfig {
  const h = config.haproxy;
  const converger = new Converger({
    agentId: opts.agentId,
    haproxy: h,
    services: config.services,
    servicesPrefix: config.registry.prefix,
    template,
    // Never used by candidate(); the Converger wants one. Nothing connects until used.
    applier: new HaproxyApplier({
      agentId: opts.agentId,
      configPath: h.config,
      binary: h.binary,
      runtime: new HaproxyRuntime(h.adminSocket),
      master: new HaproxyMaster(h.masterSocket),
      log: opts.log,
    }),
    ...(opts.checkInterMs !== undefined ? { checkInterMs: opts.checkInterMs } : {}),
  });
  return converger.candidate(listing);
}
