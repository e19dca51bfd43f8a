/**
 * The bot's one HTTP listener, bound at start-up before Slack is reachable: /healthz and
 * /metrics always, and in HTTP mode POST /slack/events — body bounded, signature and
 * timestamp verified both ways, URL verification answered — before a request is handed
 * to Bolt's receiver. Until Slack has answered auth.test there is no Bolt app to hand it
 * to, and Slack is told 503 so it retries.
 */
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CustomRoute } from '@slack/bolt';
import type { Logger } from '../../core/log.js';
import { verifySlackRequest } from './verify.js';

export const EVENTS_PATH = '/slack/events';
/** As Bolt's own limit: Slack's largest payloads (views, long messages) stay far below it. */
export const DEFAULT_BODY_LIMIT = 4 * 1024 * 1024;

export interface EventsEndpoint {
  signingSecret: string;
  /** Bolt's receiver once connected to Slack; undefined until then. */
  listener: () => RequestListener | undefined;
  bodyLimit?: number;
  now?: () => number;
}

export interface FrontOptions {
  routes: CustomRoute[];
  /** Absent in Socket Mode: nothing is received over HTTP then. */
  events?: EventsEndpoint;
  port: number;
  host?: string;
  log: Logger;
}

/** Listens at once; resolves with the bound port (0 picks a free one). */
export async function startFront(o: FrontOptions): Promise<{ server: Server; port: number }> {
  const handleEvents = o.events ? eventsHandler(o.events, o.log) : undefined;
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path === EVENTS_PATH && req.method === 'POST' && handleEvents) {
      handleEvents(req, res).catch((err: unknown) => {
        o.log.error({ err }, 'Slack request handling failed');
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
      return;
    }
    const route = o.routes.find((r) => r.path === path && [r.method].flat().includes(req.method ?? ''));
    if (!route) {
      res.writeHead(404);
      res.end();
      return;
    }
    route.handler(Object.assign(req, { params: {} }), res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return { server, port: (server.address() as AddressInfo).port };
}

function eventsHandler(e: EventsEndpoint, log: Logger) {
  const limit = e.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const now = e.now ?? Date.now;
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req, limit);
    if (body === undefined) {
      log.warn({ limit }, `Slack request refused (413): the body exceeds ${limit} bytes`);
      res.writeHead(413, { connection: 'close' });
      res.end();
      return;
    }
    const contentType = req.headers['content-type'] ?? '';
    // Slack's unsigned certificate check: answered, and nothing in it is looked at further.
    if (contentType === 'application/x-www-form-urlencoded' && new URLSearchParams(body.toString()).get('ssl_check') === '1') {
      res.writeHead(200);
      res.end();
      return;
    }
    const verdict = verifySlackRequest(
      e.signingSecret,
      { body, timestamp: req.headers['x-slack-request-timestamp'], signature: req.headers['x-slack-signature'] },
      now(),
    );
    if (!verdict.ok) {
      log.warn(
        { reason: verdict.reason, ...(verdict.skewSec !== undefined ? { skewSec: verdict.skewSec } : {}) },
        `Slack request refused (401): ${verdict.reason}`,
      );
      res.writeHead(401);
      res.end();
      return;
    }
    // Slack checks the request URL when the app is configured, possibly before the bot token
    // works: the challenge needs only the signing secret.
    if (contentType.startsWith('application/json')) {
      const challenge = urlVerification(body);
      if (challenge !== undefined) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ challenge }));
        return;
      }
    }
    const listener = e.listener();
    if (!listener) {
      log.warn('Slack request refused (503): not connected to the Slack Web API yet');
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '5' });
      res.end(JSON.stringify({ ok: false, error: 'switchyard is not connected to Slack yet; try again shortly' }));
      return;
    }
    // Bolt takes a request whose body was already read in `rawBody`; it checks nothing again.
    listener(Object.assign(req, { rawBody: body }), res);
  };
}

function urlVerification(body: Buffer): string | undefined {
  try {
    const parsed = JSON.parse(body.toString()) as { type?: unknown; challenge?: unknown };
    return parsed.type === 'url_verification' && typeof parsed.challenge === 'string' ? parsed.challenge : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The whole body, or undefined once it exceeds `limit`. The rest is drained, not stored:
 * destroying the request would take the socket, and the 413, with it.
 */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    if (Number(req.headers['content-length'] ?? 0) > limit) {
      req.resume();
      resolve(undefined);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.resume();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
}
