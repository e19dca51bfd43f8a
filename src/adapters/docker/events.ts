import type { IncomingMessage } from 'node:http';
import type Dockerode from 'dockerode';
import type { Logger } from '../../core/log.js';
import { dockerMessage } from './errors.js';
import { parseEvent } from './schemas.js';
import { LABEL_OWNER, LABEL_SERVICE, type EngineEvent, type EventStreamOptions, type EventSubscription } from './types.js';

const ACTIONS = ['start', 'die', 'oom', 'kill', 'destroy'];
/** Replayed events (see `since`) are dropped if seen; this bounds the memory of what was seen. */
const SEEN_LIMIT = 2048;
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * Docker's `/events` as a stream that survives the engine: on end or error it reconnects
 * with exponential backoff, asks Docker to replay from the last event it saw (`since`, so a
 * cut connection loses nothing Docker still buffers), drops duplicates, and tells the
 * caller it reconnected — an engine restart empties Docker's buffer, so only a reconcile
 * can be sure nothing was missed.
 */
export class EventStream implements EventSubscription {
  readonly ready: Promise<void>;
  private markReady!: () => void;
  private closed = false;
  private generation = 0;
  private abort: AbortController | undefined;
  private response: IncomingMessage | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private down: { since: number; cause: string } | undefined;
  private lastEventSec: number | undefined;
  private readonly seen = new Set<string>();
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;

  constructor(
    private readonly docker: Dockerode,
    private readonly opts: EventStreamOptions,
    private readonly log: Logger,
  ) {
    this.initialBackoffMs = opts.initialBackoffMs ?? 100;
    this.maxBackoffMs = opts.maxBackoffMs ?? 5000;
    this.ready = new Promise((resolve) => (this.markReady = resolve));
    this.connect();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.abort?.abort();
    this.response?.destroy();
  }

  private filters(): Record<string, string[]> {
    const label = [this.opts.owner !== undefined ? `${LABEL_OWNER}=${this.opts.owner}` : LABEL_OWNER];
    if (this.opts.service !== undefined) label.push(`${LABEL_SERVICE}=${this.opts.service}`);
    return { type: ['container'], event: ACTIONS, label };
  }

  private connect(): void {
    if (this.closed) return;
    const gen = ++this.generation;
    const abort = new AbortController();
    this.abort = abort;
    const query: Record<string, unknown> = { filters: this.filters(), abortSignal: abort.signal };
    // Ask Docker to replay what happened while we were away (it buffers recent events, until
    // it restarts). `since` has one-second granularity, so start a second early and let
    // `seen` drop what was already delivered. Going back to the last event seen as well
    // covers an engine clock behind ours; the replay is bounded by Docker's buffer (256).
    if (this.down) {
      const fromSec = Math.floor(this.down.since / 1000) - 1;
      query.since = String(this.lastEventSec === undefined ? fromSec : Math.min(fromSec, this.lastEventSec));
    }
    // An engine that accepts the connection but never answers would otherwise park us forever.
    const timer = setTimeout(() => abort.abort(), CONNECT_TIMEOUT_MS);
    this.docker.getEvents(query).then(
      (stream) => {
        clearTimeout(timer);
        this.attach(gen, stream as IncomingMessage);
      },
      (err: unknown) => {
        clearTimeout(timer);
        this.lost(gen, `cannot subscribe to events: ${dockerMessage(err)}`);
      },
    );
  }

  private attach(gen: number, res: IncomingMessage): void {
    if (this.closed || gen !== this.generation) {
      res.destroy();
      return;
    }
    this.response = res;
    const down = this.down;
    const attempts = this.failures;
    this.down = undefined;
    this.failures = 0;
    this.markReady();
    if (down) this.notifyReconnect({ attempts, downMs: Date.now() - down.since, cause: down.cause });

    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) this.handleLine(line);
      }
    });
    // `on`, not `once`: a second 'error' without a listener would crash the process.
    res.on('error', (err) => this.lost(gen, `events stream failed: ${err.message}`));
    res.once('end', () => this.lost(gen, 'events stream ended (engine stopped or connection cut)'));
    res.once('close', () => this.lost(gen, 'events stream closed (engine stopped or connection cut)'));
  }

  private handleLine(line: string): void {
    let event: (EngineEvent & { timeNano: number }) | undefined;
    try {
      event = parseEvent(JSON.parse(line));
    } catch (err) {
      // One malformed line must not kill the stream that death detection depends on.
      this.log.warn({ err, line: line.slice(0, 500) }, 'docker: ignoring an unparseable event');
      return;
    }
    if (!event) return;
    const key = `${event.id}/${event.action}/${event.timeNano}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    if (this.seen.size > SEEN_LIMIT) {
      const oldest = this.seen.values().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
    this.lastEventSec = Math.floor(event.time.getTime() / 1000);
    const { timeNano: _drop, ...pub } = event;
    this.deliver(() => this.opts.onEvent(pub), 'onEvent');
  }

  private notifyReconnect(info: { attempts: number; downMs: number; cause: string }): void {
    this.log.info(info, 'docker: events stream reconnected');
    const cb = this.opts.onReconnect;
    if (cb) this.deliver(() => cb(info), 'onReconnect');
  }

  /** Handlers may be async; their failures are logged, never left unhandled. */
  private deliver(fn: () => unknown, what: string): void {
    try {
      const r = fn();
      if (r instanceof Promise) r.catch((err: unknown) => this.log.error({ err }, `docker: ${what} handler failed`));
    } catch (err) {
      this.log.error({ err }, `docker: ${what} handler failed`);
    }
  }

  private lost(gen: number, cause: string): void {
    // end, close and error all fire for one loss; only the first of the current generation counts.
    if (this.closed || gen !== this.generation || this.retryTimer !== undefined) return;
    this.response?.destroy();
    this.response = undefined;
    this.down ??= { since: Date.now(), cause };
    const base = Math.min(this.maxBackoffMs, this.initialBackoffMs * 2 ** this.failures);
    const retryInMs = Math.round(base * (0.8 + Math.random() * 0.4));
    this.failures++;
    this.log.warn({ cause, retryInMs }, 'docker: events stream lost');
    const cb = this.opts.onDisconnect;
    if (cb) this.deliver(() => cb({ cause, retryInMs }), 'onDisconnect');
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect();
    }, retryInMs);
  }
}
