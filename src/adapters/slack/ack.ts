import type { Logger } from '../../core/log.js';

/**
 * This request is claimed in the seen-set, so this replica alone will ever run it: a lost
 * ack (the socket died in between) must not lose the command too. Slack redelivers the
 * envelope, and the redelivery is acked as a duplicate; the reply goes to response_url.
 */
export async function ackOrCarryOn(ack: () => Promise<void>, log: Logger): Promise<void> {
  try {
    await ack();
  } catch (err) {
    log.warn({ err }, 'could not acknowledge a Slack request; running it anyway (a redelivery will be recognised as a duplicate)');
  }
}
