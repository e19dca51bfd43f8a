import { ErrorCode } from '@slack/bolt';
import type { Logger } from '../../core/log.js';

function isCoded(err: unknown): err is { code: unknown } {
  return typeof err === 'object' && err !== null && 'code' in err;
}

/**
 * This request is claimed in the seen-set, so this replica alone will ever run it: a lost
 * ack (the socket died in between) must not lose the command too. Slack redelivers the
 * envelope, and the redelivery is acked as a duplicate; the reply goes to response_url.
 */
export async function ackOrCarryOn(ack: () => Promise<void>, log: Logger): Promise<void> {
  try {
    await ack();
  } catch (err) {
    // The de-duplication middleware acked already while etcd was slow (onceMiddleware's ackAfterMs).
    if (isCoded(err) && err.code === ErrorCode.ReceiverMultipleAckError) {
      log.debug('request acknowledged already, while its duplicate check waited on etcd');
      return;
    }
    log.warn({ err }, 'could not acknowledge a Slack request; running it anyway (a redelivery will be recognised as a duplicate)');
  }
}

/**
 * Requests that have arrived but not been acknowledged yet. An acknowledged command waits
 * for them (briefly) before starting its own work: within a burst, every ack waits on an
 * etcd claim, and the commands acked first would otherwise take the CPU and the etcd
 * connection from the acks still due. The wait is bounded, so a steady stream of requests
 * delays a command by at most `maxMs`, never indefinitely.
 */
export class AckBacklog {
  private pending = 0;
  private waiters: (() => void)[] = [];

  enter(): void {
    this.pending++;
  }

  leave(): void {
    this.pending = Math.max(0, this.pending - 1);
    if (this.pending > 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  cleared(maxMs: number): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve();
      }, maxMs);
      this.waiters.push(done);
    });
  }
}
