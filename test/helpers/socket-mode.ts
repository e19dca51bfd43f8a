/**
 * A local Socket Mode stand-in: the Web API stand-in (test/helpers/slack.ts) answers
 * `apps.connections.open` with a ws:// URL of this WebSocket server, which greets each
 * connection with `hello` and then sends the envelopes a test asks for — `slash_commands`,
 * `events_api`, `interactive` — recording each acknowledgement by envelope_id. Like Slack,
 * it delivers to the newest open connection, queues while none is open, and redelivers
 * envelopes left unacknowledged when a connection ends (with `retry_attempt` raised).
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import type { SlackStandIn } from './slack.js';

export type EnvelopeType = 'slash_commands' | 'events_api' | 'interactive';

export interface Ack {
  envelopeId: string;
  /** What the bot sent back with the ack (a slash command's immediate answer), or {}. */
  payload: Record<string, unknown>;
  /** Time from the (last) delivery to the ack. */
  ms: number;
  /** Which connection (1-based) carried the ack. */
  connection: number;
}

export interface Envelope {
  id: string;
  type: EnvelopeType;
  payload: Record<string, unknown>;
  /** Resolves with the ack; rejects after `ackTimeoutMs` of startSocketModeStandIn. */
  acked: Promise<Ack>;
}

export interface SocketModeStandIn {
  appToken: string;
  /** Connections opened so far (each one got its own apps.connections.open ticket). */
  readonly connections: number;
  /** Every ack, in arrival order. */
  acks: Ack[];
  /** Envelopes delivered more than once (after a connection ended before their ack). */
  redelivered: string[];
  /** Resolves once `n` connections have said hello (default: the next new one). */
  waitForConnection(n?: number, timeoutMs?: number): Promise<void>;
  /**
   * Send an envelope (now, or on the next connection). `loseAck`: the first ack for it is
   * lost on the way back — discarded, and the connection dropped — so it is redelivered.
   */
  send(type: EnvelopeType, payload: Record<string, unknown>, opts?: { loseAck?: boolean }): Envelope;
  /** Kill the current connection without a close frame, like a network failure. */
  drop(): void;
  /** Ask the bot to reconnect, as Slack does before it recycles a connection. */
  requestRefresh(): void;
  close(): Promise<void>;
}

export interface SocketModeStandInOptions {
  appToken?: string;
  /** How long send()'s `acked` waits. Default 10 s (Slack itself expects 3 s). */
  ackTimeoutMs?: number;
}

interface Pending {
  envelope: Envelope;
  loseAck: boolean;
  deliveries: number;
  sentAt: number;
  resolve: (ack: Ack) => void;
}

export async function startSocketModeStandIn(web: SlackStandIn, opts: SocketModeStandInOptions = {}): Promise<SocketModeStandIn> {
  const appToken = opts.appToken ?? 'xapp-1-A0APP-test';
  const ackTimeoutMs = opts.ackTimeoutMs ?? 10_000;
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  const base = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
  let tickets = 0;
  let hellos = 0;
  let current: { socket: WebSocket; n: number } | undefined;
  const pending = new Map<string, Pending>();
  const acks: Ack[] = [];
  const redelivered: string[] = [];
  const helloWaiters = new Set<{ n: number; resolve: () => void }>();

  web.on('apps.connections.open', (call) => {
    // Socket Mode authenticates with the app-level token, never the bot token.
    if (call.token !== appToken) return { status: 200, body: { ok: false, error: 'invalid_auth' } };
    tickets++;
    return { url: `${base}/link/?ticket=${tickets}` };
  });

  const deliver = (p: Pending): void => {
    if (!current || current.socket.readyState !== WebSocket.OPEN) return;
    p.deliveries++;
    if (p.deliveries > 1) redelivered.push(p.envelope.id);
    p.sentAt = Date.now();
    const { envelope } = p;
    current.socket.send(
      JSON.stringify({
        envelope_id: envelope.id,
        type: envelope.type,
        payload: envelope.payload,
        accepts_response_payload: envelope.type !== 'events_api',
        ...(envelope.type === 'events_api' ? { retry_attempt: p.deliveries - 1, retry_reason: p.deliveries > 1 ? 'timeout' : '' } : {}),
      }),
    );
  };

  wss.on('connection', (socket) => {
    const n = hellos + 1;
    current = { socket, n };
    socket.on('close', () => {
      if (current?.socket === socket) current = undefined;
    });
    socket.on('message', (data) => {
      let msg: { envelope_id?: unknown; payload?: unknown };
      try {
        msg = JSON.parse(String(data)) as typeof msg;
      } catch {
        return;
      }
      if (typeof msg.envelope_id !== 'string') return;
      const p = pending.get(msg.envelope_id);
      if (p?.loseAck) {
        p.loseAck = false;
        socket.terminate();
        return;
      }
      const ack: Ack = {
        envelopeId: msg.envelope_id,
        payload: typeof msg.payload === 'object' && msg.payload !== null ? (msg.payload as Record<string, unknown>) : {},
        ms: p ? Date.now() - p.sentAt : Number.NaN,
        connection: n,
      };
      acks.push(ack);
      if (p) {
        pending.delete(msg.envelope_id);
        p.resolve(ack);
      }
    });
    socket.send(
      JSON.stringify({
        type: 'hello',
        num_connections: 1,
        debug_info: { host: 'stand-in', approximate_connection_time: 3600 },
        connection_info: { app_id: 'A0APP' },
      }),
    );
    hellos = n;
    for (const w of helloWaiters) {
      if (hellos >= w.n) {
        helloWaiters.delete(w);
        w.resolve();
      }
    }
    // What the last connection left unacknowledged goes out again on this one.
    for (const p of pending.values()) deliver(p);
  });

  return {
    appToken,
    get connections() {
      return hellos;
    },
    acks,
    redelivered,
    waitForConnection(n = hellos + 1, timeoutMs = 15_000) {
      if (hellos >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const waiter = {
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
        const timer = setTimeout(() => {
          helloWaiters.delete(waiter);
          reject(new Error(`Socket Mode stand-in: connection ${n} did not open within ${timeoutMs} ms (${hellos} so far)`));
        }, timeoutMs);
        helloWaiters.add(waiter);
      });
    },
    send(type, payload, sendOpts = {}) {
      const id = randomUUID();
      let resolveAck!: (ack: Ack) => void;
      const acked = new Promise<Ack>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`Socket Mode stand-in: envelope ${id} (${type}) not acknowledged within ${ackTimeoutMs} ms`)),
          ackTimeoutMs,
        );
        resolveAck = (ack) => {
          clearTimeout(timer);
          resolve(ack);
        };
      });
      // A test that never awaits it must not see an unhandled rejection.
      acked.catch(() => {});
      const envelope: Envelope = { id, type, payload, acked };
      const p: Pending = { envelope, loseAck: sendOpts.loseAck ?? false, deliveries: 0, sentAt: Date.now(), resolve: resolveAck };
      pending.set(id, p);
      deliver(p);
      return envelope;
    },
    drop() {
      current?.socket.terminate();
      current = undefined;
    },
    requestRefresh() {
      current?.socket.send(JSON.stringify({ type: 'disconnect', reason: 'refresh_requested', debug_info: { host: 'stand-in' } }));
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        for (const client of wss.clients) client.terminate();
        wss.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
