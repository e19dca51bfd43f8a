/**
 * What switchyard replaces, for comparison in bench/haproxy.ts: `confd -watch` with the
 * usual haproxy setup (check_cmd `haproxy -c -f {{.src}}`, reload_cmd = a master-worker
 * reload). Every wake-up of the watch re-reads the whole prefix, renders the whole file,
 * checks it and reloads; changes that arrive during a cycle are picked up by the next one,
 * as confd's watch loop does. It uses switchyard's renderer and template, so the only
 * difference measured is the apply strategy.
 */
import { rename } from 'node:fs/promises';
import type { EtcdRegistry } from '../src/adapters/etcd/registry.js';
import { checkConfig } from '../src/adapters/haproxy/check.js';
import { removeQuietly, tempPathFor, writeFileDurable } from '../src/adapters/haproxy/files.js';
import { HaproxyMaster } from '../src/adapters/haproxy/master.js';
import type { ConfigTemplate } from '../src/adapters/haproxy/template.js';
import type { AgentConfig } from '../src/agent/agent.js';
import { renderCandidate } from '../src/agent/candidate.js';
import type { Logger } from '../src/core/log.js';
import type { WatchHandle } from '../src/core/registry.js';

export class ConfdBaseline {
  reloads = 0;
  failures = 0;
  private watch: WatchHandle | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private readonly master: HaproxyMaster;

  constructor(
    private readonly config: AgentConfig,
    private readonly registry: EtcdRegistry,
    private readonly template: ConfigTemplate,
    private readonly opts: { checkInterMs: number; log: Logger },
  ) {
    this.master = new HaproxyMaster(config.haproxy.masterSocket);
  }

  async start(): Promise<void> {
    this.watch = await this.registry.watch('', {
      onResync: () => this.kick(),
      onEvents: () => this.kick(),
      onError: (err) => this.opts.log.warn({ err }, 'baseline watch problem'),
    });
  }

  async stop(): Promise<void> {
    await this.watch?.close();
    await this.running;
  }

  private kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.cycle()
      .catch((err: unknown) => {
        this.failures++;
        this.opts.log.error({ err }, 'baseline cycle failed');
      })
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** render → check → install → reload, all of it, every time. */
  private async cycle(): Promise<void> {
    const h = this.config.haproxy;
    const listing = await this.registry.list();
    const text = renderCandidate(this.config, listing, this.template, { agentId: 'confd', checkInterMs: this.opts.checkInterMs, log: this.opts.log }).rendered;
    const tmp = tempPathFor(h.config);
    try {
      await writeFileDurable(tmp, text);
      const check = await checkConfig(h.binary, tmp, h.config);
      if (!check.ok) throw new Error(`haproxy -c: ${check.lines.join(' | ')}`);
      await rename(tmp, h.config);
    } finally {
      await removeQuietly(tmp);
    }
    await this.master.reload();
    this.reloads++;
  }
}
