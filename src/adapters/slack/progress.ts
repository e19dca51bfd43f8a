import type { Logger } from '../../core/log.js';
import { renderProgress, type SlackMessage } from './render.js';

/** Where a command's answer is shown: posts the first time, replaces it afterwards. */
export type Show = (msg: SlackMessage) => Promise<void>;

/**
 * One command's visible answer: progress lines while it runs, then the result, all in the
 * same message. Progress arrives synchronously and may come faster than Slack accepts
 * updates, so only the newest pending line is sent once the previous update is done; the
 * final result waits for in-flight progress so it can never be overwritten by it.
 */
export class ProgressReply {
  private pending: string | undefined;
  private inFlight: Promise<void> = Promise.resolve();
  private pumping = false;
  private finished = false;
  private sent = 0;

  constructor(
    private readonly show: Show,
    private readonly log: Logger,
    /** response_url accepts 5 posts in total, so slash commands ration their progress. */
    private readonly maxProgress = Number.POSITIVE_INFINITY,
  ) {}

  /** For DispatchRequest.onProgress. */
  readonly progress = (text: string): void => {
    if (this.finished || this.sent >= this.maxProgress) return;
    this.pending = text;
    if (this.pumping) return;
    this.pumping = true;
    this.inFlight = this.pump();
  };

  async finish(msg: SlackMessage): Promise<void> {
    this.finished = true;
    await this.inFlight;
    await this.show(msg);
  }

  /** Never rejects: a lost progress line is logged, the command carries on. */
  private async pump(): Promise<void> {
    while (this.pending !== undefined && !this.finished && this.sent < this.maxProgress) {
      const text = this.pending;
      this.pending = undefined;
      this.sent++;
      try {
        await this.show(renderProgress(text));
      } catch (err) {
        this.log.warn({ err }, 'could not show progress in Slack');
      }
    }
    this.pumping = false;
  }
}
