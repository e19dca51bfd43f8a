/**
 * The narrow face of an in-process HAProxy agent that commands see (`render`, `drain`,
 * `status`): live server stats, the candidate config, a `haproxy -c` of a text, and "apply
 * now". Plugins never hold the agent itself, so they cannot reach its internals.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SwitchyardError } from '../core/errors.js';
import { describeProblem } from '../core/quote.js';
import type { Logger } from '../core/log.js';
import type { Registry } from '../core/registry.js';
import type { ApplyResult } from '../core/apply-result.js';
import { checkConfig, type CheckResult } from '../adapters/haproxy/check.js';
import { readIfExists, writeFileDurable } from '../adapters/haproxy/files.js';
import type { StatRow } from '../adapters/haproxy/runtime-parse.js';
import { loadTemplate } from '../adapters/haproxy/template.js';
import type { AgentConfig, HaproxyAgent } from './agent.js';
import { renderCandidate } from './candidate.js';

export interface Candidate {
  /** The haproxy.cfg text. */
  text: string;
  /** Registry keys left out of it, as "key: problem". */
  skipped: string[];
  /** Set when the template file on disk differs from the one the agent has loaded. */
  templateChanged: boolean;
}

export interface HaproxyControl {
  readonly agentId: string;
  /** The live haproxy.cfg path (for messages). */
  readonly configPath: string;
  /** Per-server status and current sessions from the local HAProxy (`show stat`). */
  stats(): Promise<StatRow[]>;
  /** What the registry holds now would produce, rendered with the template file as it is on disk. */
  candidate(): Promise<Candidate>;
  /** The live haproxy.cfg, undefined when there is none yet. */
  live(): Promise<string | undefined>;
  /** `haproxy -c` on a config text; HAProxy's lines name the live file. Changes nothing. */
  check(text: string): Promise<CheckResult>;
  /**
   * Load the template file and have the agent apply what the registry wants now (runtime
   * API where that suffices, else a validated reload). Resolves with the agent's result
   * once the live file matches the candidate, or with the failure.
   */
  applyNow(timeoutMs: number): Promise<ApplyResult>;
}

export interface ControlOptions {
  agentId: string;
  config: AgentConfig;
  /** Read for every candidate: render shows what etcd holds now. */
  registry: Pick<Registry, 'list'>;
  checkInterMs?: number | undefined;
  log: Logger;
}

const POLL_MS = 10;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Validate a config text in a private temp directory, so a dry run leaves no trace beside the live file. */
export async function checkText(binary: string, text: string, shownAs: string): Promise<CheckResult> {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-check-'));
  try {
    const file = join(dir, 'haproxy.cfg');
    await writeFileDurable(file, text);
    return await checkConfig(binary, file, shownAs);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function agentControl(agent: () => HaproxyAgent, opts: ControlOptions): HaproxyControl {
  const h = opts.config.haproxy;
  const candidate = async (): Promise<Candidate> => {
    const a = agent(); // E_UNAVAILABLE while the agent has not started
    const [listing, template] = await Promise.all([opts.registry.list(), loadTemplate(h.template)]);
    const next = renderCandidate(opts.config, listing, template, { agentId: opts.agentId, checkInterMs: opts.checkInterMs, log: opts.log });
    const loaded = a.templateHash;
    return {
      text: next.rendered,
      skipped: next.model.problems.map(describeProblem),
      templateChanged: loaded !== undefined && loaded !== next.templateHash,
    };
  };
  return {
    agentId: opts.agentId,
    configPath: h.config,
    stats: () => agent().stats(),
    live: () => readIfExists(h.config),
    check: (text) => checkText(h.binary, text, h.config),
    candidate,
    async applyNow(timeoutMs) {
      const a = agent();
      a.assertSnapshot();
      const before = a.lastResult;
      await a.refreshTemplate(); // pokes the apply loop
      const deadline = Date.now() + timeoutMs;
      let seen = before;
      // The agent's result is in memory. A run already in progress, or a watch a few ms
      // behind etcd, may report an older candidate first: wait until the live file is
      // what the registry wants now.
      while (Date.now() < deadline) {
        const r = a.lastResult;
        if (r && r !== seen) {
          seen = r;
          if (!r.ok) return r;
          if ((await readIfExists(h.config)) === (await candidate()).text) return r;
        }
        await sleep(POLL_MS);
      }
      throw new SwitchyardError('E_TIMEOUT', `agent ${a.agentId} did not finish applying within ${Math.round(timeoutMs / 1000)}s`, {
        details: ['its result will show in status and the #ops feed when it does'],
      });
    },
  };
}
