/**
 * Test doubles for Slack: sign and send requests the way Slack does, and a local Web API
 * stand-in that records what the bot calls. Point the bot at it with
 * `apiUrl: standIn.apiUrl` (SLACK_API_URL) and hand out `standIn.responseUrl()` as a
 * slash command's response_url.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

// ---------------------------------------------------------------------------------------
// Requests from "Slack" to the bot
// ---------------------------------------------------------------------------------------

export interface SlackSignatureHeaders {
  'x-slack-signature': string;
  'x-slack-request-timestamp': string;
}

/** Slack's v0 scheme: HMAC-SHA256 over `v0:<timestamp>:<raw body>` with the signing secret. */
export function signRequest(secret: string, body: string, timestamp = Math.floor(Date.now() / 1000)): SlackSignatureHeaders {
  const digest = createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex');
  return { 'x-slack-signature': `v0=${digest}`, 'x-slack-request-timestamp': String(timestamp) };
}

/** A request exactly as it went out, so a test can send the same bytes again (a replay). */
export interface SentRequest {
  url: string;
  body: string;
  headers: Record<string, string>;
}

export interface PostResult {
  status: number;
  text: string;
  /** The body parsed as JSON, when it is JSON. */
  json?: unknown;
  /** Time until the response (the ack) arrived. */
  ms: number;
  request: SentRequest;
}

export interface SignOptions {
  /** Unix seconds; an old one makes a stale (replayed) request. */
  timestamp?: number;
  /** Sign with this instead (a wrong secret makes a forged request). */
  secret?: string;
}

export interface SlashCommandFields {
  text: string;
  user_id: string;
  channel_id: string;
  response_url: string;
  command?: string;
  trigger_id?: string;
  user_name?: string;
  channel_name?: string;
  team_id?: string;
}

/** A slash command's payload as Slack sends it (form fields over HTTP, JSON in Socket Mode). */
export function slashCommandPayload(fields: SlashCommandFields): Record<string, string> {
  return {
    token: 'legacy-verification-token',
    team_id: fields.team_id ?? 'T0TEAM',
    team_domain: 'example',
    channel_id: fields.channel_id,
    channel_name: fields.channel_name ?? 'ops',
    user_id: fields.user_id,
    user_name: fields.user_name ?? 'display-name-not-an-id',
    command: fields.command ?? '/ops',
    text: fields.text,
    api_app_id: 'A0APP',
    response_url: fields.response_url,
    trigger_id: fields.trigger_id ?? `${Date.now()}.${randomUUID()}`,
  };
}

/** POST a slash command to `url` (…/slack/events), form-encoded and signed like Slack. */
export async function postSlashCommand(url: string, secret: string, fields: SlashCommandFields, opts: SignOptions = {}): Promise<PostResult> {
  const form = new URLSearchParams(slashCommandPayload(fields));
  // Bolt compares the content type exactly; fetch would add ";charset=UTF-8" to a
  // URLSearchParams body, so the body is sent as a string with Slack's own header.
  return post(url, form.toString(), 'application/x-www-form-urlencoded', secret, opts);
}

export interface EventOptions extends SignOptions {
  eventId?: string;
  /** Sets X-Slack-Retry-Num (and X-Slack-Retry-Reason) like a redelivery. */
  retryNum?: number;
  retryReason?: string;
  teamId?: string;
  /** The installing bot, echoed in `authorizations` as Slack does. */
  botUserId?: string;
}

/** POST an Events API `event_callback` wrapping `event`; returns the event_id used. */
export async function postEvent(
  url: string,
  secret: string,
  event: Record<string, unknown>,
  opts: EventOptions = {},
): Promise<PostResult & { eventId: string }> {
  const payload = eventPayload(event, opts);
  const eventId = payload.event_id as string;
  const body = JSON.stringify(payload);
  const headers: Record<string, string> = {};
  if (opts.retryNum !== undefined) {
    headers['x-slack-retry-num'] = String(opts.retryNum);
    headers['x-slack-retry-reason'] = opts.retryReason ?? 'http_timeout';
  }
  return { ...(await post(url, body, 'application/json', secret, opts, headers)), eventId };
}

/** An Events API `event_callback` wrapping `event`, as Slack sends it over HTTP or in Socket Mode. */
export function eventPayload(event: Record<string, unknown>, opts: Pick<EventOptions, 'eventId' | 'teamId' | 'botUserId'> = {}): Record<string, unknown> {
  const teamId = opts.teamId ?? 'T0TEAM';
  return {
    token: 'legacy-verification-token',
    team_id: teamId,
    api_app_id: 'A0APP',
    type: 'event_callback',
    event_id: opts.eventId ?? newEventId(),
    event_time: Math.floor(Date.now() / 1000),
    event: { event_ts: event.ts, ...event },
    authorizations: [{ team_id: teamId, user_id: opts.botUserId ?? 'U0BOT', is_bot: true, is_enterprise_install: false }],
    is_ext_shared_channel: false,
  };
}

export function newEventId(): string {
  return `Ev${randomUUID().replace(/-/g, '').slice(0, 10).toUpperCase()}`;
}

let tsCounter = 0;
/** A message timestamp as Slack writes them ("1700000000.000100"), unique per call. */
export function newTs(): string {
  tsCounter++;
  return `${Math.floor(Date.now() / 1000)}.${String(tsCounter).padStart(6, '0')}`;
}

async function post(
  url: string,
  body: string,
  contentType: string,
  secret: string,
  opts: SignOptions,
  extra: Record<string, string> = {},
): Promise<PostResult> {
  return resend({ url, body, headers: { 'content-type': contentType, ...signRequest(opts.secret ?? secret, body, opts.timestamp), ...extra } });
}

/** Send a request again, byte for byte (same body, timestamp and signature), optionally elsewhere. */
export async function resend(req: SentRequest, url: string = req.url): Promise<PostResult> {
  const started = Date.now();
  const res = await fetch(url, { method: 'POST', headers: req.headers, body: req.body });
  const text = await res.text();
  return { status: res.status, text, json: parseJson(text), ms: Date.now() - started, request: { ...req, url } };
}

// ---------------------------------------------------------------------------------------
// The Web API stand-in
// ---------------------------------------------------------------------------------------

/** What the bot sent: arbitrary JSON that tests read field by field. */
// biome-ignore lint/suspicious/noExplicitAny: the bot's payloads are Slack's free-form JSON
export type SlackBody = Record<string, any>;

export interface SlackCall {
  /** 'api': a Web API method; 'response': a POST to a response_url. */
  kind: 'api' | 'response';
  /** API method ("chat.postMessage") or response_url id. */
  method: string;
  /** Form or JSON body, with JSON-valued form fields (blocks, attachments) decoded. */
  body: SlackBody;
  /** Bearer token or `token` field, so tests can check which token was used. */
  token?: string;
  at: number;
}

/** What a handler answers: a body (sent with 200), or a full response. */
export type StandInAnswer = Record<string, unknown> | { status: number; headers?: Record<string, string>; body: unknown };

export interface SlackStandIn {
  /** Base URL of the stand-in, e.g. http://127.0.0.1:PORT */
  url: string;
  /** What to pass as SLACK_API_URL / apiUrl. */
  apiUrl: string;
  botUserId: string;
  botId: string;
  teamId: string;
  /** Every call, in arrival order (the 429s answered by rateLimit() included). */
  calls: SlackCall[];
  /** Calls to one API method. */
  api(method: string): SlackCall[];
  /** Posts to response URLs (all, or one id). */
  responses(id?: string): SlackCall[];
  /** A fresh response_url served by the stand-in. */
  responseUrl(id?: string): string;
  /** Resolves with the first call (past or future) matching; rejects after timeoutMs. */
  waitFor(predicate: (call: SlackCall) => boolean, timeoutMs?: number): Promise<SlackCall>;
  /** Override the answer for one API method (e.g. an error, or conversations.info data); a promise holds the answer back until it settles. */
  on(method: string, answer: (call: SlackCall) => StandInAnswer | Promise<StandInAnswer>): void;
  /** Answer the next `times` calls of `method` with 429 and Retry-After: retryAfterSec. */
  rateLimit(method: string, retryAfterSec: number, times?: number): void;
  close(): Promise<void>;
}

export interface StandInOptions {
  /** Listen on this port (e.g. one a bot was told about while the stand-in was down). Default: any free port. */
  port?: number;
  botUserId?: string;
  botId?: string;
  teamId?: string;
}

export async function startSlackStandIn(opts: StandInOptions = {}): Promise<SlackStandIn> {
  const botUserId = opts.botUserId ?? 'U0BOT';
  const botId = opts.botId ?? 'B0BOT';
  const teamId = opts.teamId ?? 'T0TEAM';
  const calls: SlackCall[] = [];
  const overrides = new Map<string, (call: SlackCall) => StandInAnswer | Promise<StandInAnswer>>();
  const limits = new Map<string, { retryAfterSec: number; left: number }>();
  const waiters = new Set<{ predicate: (c: SlackCall) => boolean; resolve: (c: SlackCall) => void }>();

  const defaults: Record<string, (call: SlackCall) => Record<string, unknown>> = {
    'auth.test': () => ({ url: 'https://example.slack.com/', team: 'Example', user: 'switchyard', team_id: teamId, user_id: botUserId, bot_id: botId }),
    'chat.postMessage': (c) => ({ channel: c.body.channel, ts: newTs(), message: { text: c.body.text, bot_id: botId } }),
    'chat.update': (c) => ({ channel: c.body.channel, ts: c.body.ts, text: c.body.text }),
    'conversations.info': (c) => ({ channel: { id: c.body.channel } }),
  };

  const record = (call: SlackCall): void => {
    calls.push(call);
    for (const w of waiters) {
      if (w.predicate(call)) {
        waiters.delete(w);
        w.resolve(call);
      }
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: false, error: 'stand_in_failure', detail: String(err) }));
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const raw = await readBody(req);
    const body = parseBody(raw, req.headers['content-type'] ?? '');
    const auth = req.headers.authorization;
    const token = auth?.startsWith('Bearer ') ? auth.slice(7) : typeof body.token === 'string' ? body.token : undefined;

    const response = /^\/response\/([^/]+)$/.exec(path);
    if (response && req.method === 'POST') {
      record({ kind: 'response', method: response[1]!, body, at: Date.now() });
      return send(res, 200, { ok: true });
    }
    const api = /^\/api\/([A-Za-z0-9_.]+)$/.exec(path);
    if (!api || req.method !== 'POST') return send(res, 404, { ok: false, error: 'unknown_path' });
    const method = api[1]!;
    const call: SlackCall = { kind: 'api', method, body, ...(token !== undefined ? { token } : {}), at: Date.now() };
    record(call);

    const limit = limits.get(method);
    if (limit && limit.left > 0) {
      limit.left--;
      return send(res, 429, { ok: false, error: 'ratelimited' }, { 'retry-after': String(limit.retryAfterSec) });
    }
    const override = overrides.get(method);
    if (override) {
      const answer = await override(call);
      if (isFullAnswer(answer)) return send(res, answer.status, answer.body, answer.headers);
      return send(res, 200, { ok: true, ...answer });
    }
    return send(res, 200, { ok: true, ...(defaults[method]?.(call) ?? {}) });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', resolve);
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    apiUrl: `${url}/api/`,
    botUserId,
    botId,
    teamId,
    calls,
    api: (method) => calls.filter((c) => c.kind === 'api' && c.method === method),
    responses: (id) => calls.filter((c) => c.kind === 'response' && (id === undefined || c.method === id)),
    responseUrl: (id = randomUUID()) => `${url}/response/${id}`,
    waitFor(predicate, timeoutMs = 2000) {
      const past = calls.find(predicate);
      if (past) return Promise.resolve(past);
      return new Promise((resolve, reject) => {
        const waiter = {
          predicate,
          resolve: (c: SlackCall) => {
            clearTimeout(timer);
            resolve(c);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          const seen = calls.map((c) => `${c.kind}:${c.method}`).join(', ') || 'none';
          reject(new Error(`Slack stand-in: no matching call within ${timeoutMs} ms (calls seen: ${seen})`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    on: (method, answer) => void overrides.set(method, answer),
    rateLimit: (method, retryAfterSec, times = 1) => void limits.set(method, { retryAfterSec, left: times }),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

function isFullAnswer(a: StandInAnswer): a is { status: number; headers?: Record<string, string>; body: unknown } {
  return typeof a.status === 'number' && 'body' in a;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The Web API client sends form bodies with nested values JSON-encoded; undo both. */
function parseBody(raw: string, contentType: string): SlackBody {
  if (!raw) return {};
  if (contentType.includes('application/json')) {
    const v = parseJson(raw);
    return typeof v === 'object' && v !== null ? (v as SlackBody) : {};
  }
  const out: SlackBody = {};
  for (const [k, v] of new URLSearchParams(raw)) {
    out[k] = /^[[{]/.test(v) ? (parseJson(v) ?? v) : v;
  }
  return out;
}

function parseJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

export interface ActionFields {
  userId: string;
  actionId: string;
  value: string;
  responseUrl: string;
  channelId?: string;
  messageTs?: string;
}

/** A Block Kit button press (block_actions), as Slack sends it. */
export function actionPayload(f: ActionFields): Record<string, unknown> {
  const channel = f.channelId ?? 'C0OPS';
  return {
    type: 'block_actions',
    user: { id: f.userId, username: 'display-name-not-an-id', team_id: 'T0TEAM' },
    api_app_id: 'A0APP',
    token: 'legacy-verification-token',
    container: { type: 'message', message_ts: f.messageTs ?? newTs(), channel_id: channel, is_ephemeral: true },
    trigger_id: `${Date.now()}.${randomUUID()}`,
    team: { id: 'T0TEAM', domain: 'example' },
    channel: { id: channel, name: 'ops' },
    response_url: f.responseUrl,
    actions: [
      {
        action_id: f.actionId,
        block_id: 'switchyard_confirmation',
        value: f.value,
        type: 'button',
        text: { type: 'plain_text', text: 'Confirm' },
        action_ts: String(Date.now() / 1000),
      },
    ],
  };
}

/** POST a Block Kit button press (block_actions) to `url`, signed like Slack's interactivity requests. */
export async function postAction(url: string, secret: string, f: ActionFields, opts: SignOptions = {}): Promise<PostResult> {
  const form = new URLSearchParams({ payload: JSON.stringify(actionPayload(f)) });
  return post(url, form.toString(), 'application/x-www-form-urlencoded', secret, opts);
}

export interface ShortcutFields {
  userId: string;
  callbackId: string;
  responseUrl: string;
  /** The message the shortcut was used on. */
  message: Record<string, unknown>;
  channelId?: string;
}

/** A message shortcut (message_action) on `message`, as Slack sends it. */
export function messageShortcutPayload(f: ShortcutFields): Record<string, unknown> {
  const channel = f.channelId ?? 'C0OPS';
  const ts = typeof f.message.ts === 'string' ? f.message.ts : newTs();
  return {
    type: 'message_action',
    token: 'legacy-verification-token',
    action_ts: String(Date.now() / 1000),
    team: { id: 'T0TEAM', domain: 'example' },
    user: { id: f.userId, name: 'display-name-not-an-id', team_id: 'T0TEAM' },
    channel: { id: channel, name: 'ops' },
    callback_id: f.callbackId,
    trigger_id: `${Date.now()}.${randomUUID()}`,
    message_ts: ts,
    message: { type: 'message', ts, ...f.message },
    response_url: f.responseUrl,
  };
}

/** POST a message shortcut to `url`, signed like Slack's interactivity requests. */
export async function postShortcut(url: string, secret: string, f: ShortcutFields, opts: SignOptions = {}): Promise<PostResult> {
  const form = new URLSearchParams({ payload: JSON.stringify(messageShortcutPayload(f)) });
  return post(url, form.toString(), 'application/x-www-form-urlencoded', secret, opts);
}
