/**
 * HAProxy master CLI (`-S <socket>` in master-worker mode): process table and reload.
 *
 * In 2.6 `reload` answers nothing and the master re-executes itself, refusing connections
 * for a few tens of milliseconds; success is only visible as a new worker PID in
 * `show proc`, failure as the master's "[failed: N]" counter going up while the old
 * worker stays.
 */
import { isSwitchyardError, SwitchyardError } from '../../core/errors.js';
import { parseShowProc, type ProcTable } from './runtime-parse.js';
import { exchange, isUnreachable } from './socket.js';

export interface ReloadOutcome {
  /** Worker PIDs before the reload. */
  previous: number[];
  /** The new worker. */
  worker: number;
  durationMs: number;
}

export interface MasterOptions {
  /** Budget for one reload, from the command to a new worker in `show proc`. Default 10 s. */
  reloadTimeoutMs?: number;
  /** Budget for reaching the master while it re-executes. Default 3 s. */
  connectTimeoutMs?: number;
  pollMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class HaproxyMaster {
  constructor(
    readonly socketPath: string,
    private readonly opts: MasterOptions = {},
  ) {}

  /** One command, retried while the master is re-executing (connection refused). */
  private async command(line: string, deadline: number): Promise<string> {
    for (;;) {
      try {
        return await exchange(this.socketPath, line, { what: 'master socket', timeoutMs: 3000 });
      } catch (err) {
        if (!isUnreachable(err) || Date.now() >= deadline) throw err;
        await sleep(this.opts.pollMs ?? 5);
      }
    }
  }

  async showProc(): Promise<ProcTable> {
    const deadline = Date.now() + (this.opts.connectTimeoutMs ?? 3000);
    return parseShowProc(await this.command('show proc', deadline));
  }

  /** The current worker: the youngest (survived no reload), else the only one. */
  static currentWorker(table: ProcTable): number | undefined {
    const fresh = table.workers.filter((w) => w.reloads === 0);
    return (fresh[0] ?? table.workers[0])?.pid;
  }

  /**
   * Reload and wait for a new worker. Throws E_CONFLICT when the master reports the reload
   * as failed (the old worker keeps serving), E_TIMEOUT when no new worker shows up.
   */
  async reload(): Promise<ReloadOutcome> {
    const started = Date.now();
    const deadline = started + (this.opts.reloadTimeoutMs ?? 10_000);
    const before = await this.showProc();
    const previous = before.workers.map((w) => w.pid);
    const failedBefore = before.master.failed ?? 0;
    let reply = '';
    try {
      reply = await this.command('reload', deadline);
    } catch (err) {
      // Sent, but the master was too busy re-executing to close the connection in time:
      // `show proc` below tells whether the reload happened.
      if (!isSwitchyardError(err, 'E_TIMEOUT')) throw err;
    }
    if (reply.trim() !== '') {
      throw new SwitchyardError('E_INTERNAL', `HAProxy master answered "reload" with: ${reply.trim().split('\n')[0]}`);
    }
    for (;;) {
      await sleep(this.opts.pollMs ?? 5);
      let table: ProcTable | undefined;
      try {
        table = parseShowProc(await this.command('show proc', deadline));
      } catch (err) {
        // A master busy re-executing (slow on a loaded host) may accept and not answer in
        // time: that is the reload still in progress, not a verdict, until the deadline.
        const pending = isUnreachable(err) || isSwitchyardError(err, 'E_TIMEOUT');
        if (!pending || Date.now() >= deadline) throw err;
      }
      if (table) {
        const worker = table.workers.find((w) => !previous.includes(w.pid));
        if (worker) return { previous, worker: worker.pid, durationMs: Date.now() - started };
        if ((table.master.failed ?? 0) > failedBefore) {
          throw new SwitchyardError(
            'E_CONFLICT',
            `HAProxy reload failed: the master reports ${table.master.failed} failed reload(s); worker ${previous.join(', ')} kept serving`,
          );
        }
      }
      if (Date.now() >= deadline) {
        throw new SwitchyardError(
          'E_TIMEOUT',
          `no new HAProxy worker within ${this.opts.reloadTimeoutMs ?? 10_000} ms of "reload" (workers: ${previous.join(', ')})`,
        );
      }
    }
  }
}
