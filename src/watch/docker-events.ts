/**
 * Docker's `/events` for containers labelled switchyard.register. The engine adapter's
 * stream is built around the orchestrator's owner label and its five actions; the watcher
 * needs another filter and pause/unpause/health_status too, and only the container ID of
 * each event (it inspects the container for the rest). On loss it reconnects with backoff,
 * asks Docker to replay since the last event seen, and says so, so the caller reconciles.
 */
import type { IncomingMessage } from 'node:http';
import type Dockerode from 'dockerode';
import { z } from 'zod';
import type { Logger } from '../core/log.js';
import { LABEL_REGISTER } from './container.js';

export const WATCHED_ACTIONS = ['start', 'kill', 'die', 'stop', 'pause', 'unpause', 'health_status', 'destroy'] as const;

const eventSchema = z.object({
  Type: z.string(),
  Action: z.string(),
  Actor: z.object({ ID: z.string().min(1), Attributes: z.record(z.string(), z.string()).nullish() }),
  time: z.number().optional(),
});

export interface ContainerEvent {
  id: string;
  /** e.g. `die`, `health_status: unhealthy`. */
  action: string;
  /** `kill` only: the signal, `9` or `SIGKILL` depending on the engine. */
  signal?: string;
}

export interface LabelledEventsOptions {
  onEvent(e: ContainerEvent): void;
  /** Connected again after a loss: events may be missing (an engine restart forgets them). */
  onReconnect(): void;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

export class LabelledEvents {
  /** Resolves once subscribed, so nothing after it is missed. */
  readonly ready: Promise<void>;
  private markReady!: () => void;
  private closed = false;
  private generation = 0;
  private abort: AbortController | undefined;
  private response: IncomingMessage | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private down = false;
  private lastEventSec: number | undefined;

  constructor(
    private readonly docker: Dockerode,
    private readonly opts: LabelledEventsOptions,
    private readonly log: Logger,
  ) {
    this.ready = new Promise((resolve) => (this.markReady = resolve));
    this.connect();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.abort?.abort();
    this.response?.destroy();
  }

  private connect(): void {
    if (this.closed) return;
    const gen = ++this.generation;
    const abort = new AbortController();
    this.abort = abort;
    const query: Record<string, unknown> = {
      filters: { type: ['container'], event: [...WATCHED_ACTIONS], label: [LABEL_REGISTER] },
      abortSignal: abort.signal,
    };
    // One-second granularity: start a second early; replays are harmless (the watcher inspects).
    if (this.down && this.lastEventSec !== undefined) query.since = String(this.lastEventSec - 1);
    const timer = setTimeout(() => abort.abort(), 10_000);
    this.docker.getEvents(query).then(
      (stream) => {
        clearTimeout(timer);
        this.attach(gen, stream as IncomingMessage);
      },
      (err: unknown) => {
        clearTimeout(timer);
        this.lost(gen, `cannot subscribe to events: ${err instanceof Error ? err.message : String(err)}`);
      },
    );
  }

  private attach(gen: number, res: IncomingMessage): void {
    if (this.closed || gen !== this.generation) {
      res.destroy();
      return;
    }
    this.response = res;
    const wasDown = this.down;
    this.down = false;
    this.failures = 0;
    this.markReady();
    if (wasDown) this.safely(() => this.opts.onReconnect());
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) this.handleLine(line);
      }
    });
    res.on('error', (err) => this.lost(gen, `events stream failed: ${err.message}`));
    res.once('end', () => this.lost(gen, 'events stream ended'));
    res.once('close', () => this.lost(gen, 'events stream closed'));
  }

  private handleLine(line: string): void {
    let parsed: z.output<typeof eventSchema> | undefined;
    try {
      const r = eventSchema.safeParse(JSON.parse(line));
      parsed = r.success ? r.data : undefined;
    } catch {
      parsed = undefined;
    }
    if (parsed?.Type !== 'container') {
      this.log.warn({ line: line.slice(0, 300) }, 'watch: ignoring an unreadable docker event');
      return;
    }
    if (parsed.time !== undefined) this.lastEventSec = parsed.time;
    const signal = parsed.Actor.Attributes?.signal;
    const e = { id: parsed.Actor.ID, action: parsed.Action, ...(signal !== undefined ? { signal } : {}) };
    this.safely(() => this.opts.onEvent(e));
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error({ err }, 'watch: event handler failed');
    }
  }

  private lost(gen: number, cause: string): void {
    if (this.closed || gen !== this.generation || this.retryTimer !== undefined) return;
    this.response?.destroy();
    this.response = undefined;
    this.down = true;
    const max = this.opts.maxBackoffMs ?? 5000;
    const retryInMs = Math.round(Math.min(max, (this.opts.initialBackoffMs ?? 100) * 2 ** this.failures) * (0.8 + Math.random() * 0.4));
    this.failures++;
    this.log.warn({ cause, retryInMs }, 'watch: docker events stream lost');
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect();
    }, retryInMs);
  }
}
