/**
 * Load generator for the ack benchmark, in its own process so that timing requests is not
 * slowed by the Web API stand-in answering the bot in the parent process.
 *
 *   http   <events url> <secret> <response url base> <command text> <rounds> <concurrency>
 *     POSTs signed slash commands. node:http with keep-alive rather than fetch: fetch's own
 *     per-request cost on this 2-core machine was larger than the bot's (see docs/BENCHMARKS.md).
 *   socket <response url base> <command text> <rounds> <concurrency>
 *     is the Socket Mode server: prints {"url": "ws://…"} on its first line (the parent makes
 *     apps.connections.open answer with it), says hello to the bot's connection, then sends
 *     slash_commands envelopes and times each until its ack (by envelope_id) comes back.
 *
 * Every command carries a fresh trigger_id (and over HTTP a fresh signature), so each one
 * passes through the etcd de-duplication as a new request. Prints a JSON array of ack
 * latencies in ms on its last line.
 */
import { randomUUID } from 'node:crypto';
import { Agent, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { signRequest, slashCommandPayload } from '../test/helpers/slack.js';

const [mode, ...rest] = process.argv.slice(2);

function payload(responseBase: string, text: string, round: number, i: number): Record<string, string> {
  return slashCommandPayload({
    team_id: 'T0BENCH',
    channel_id: 'C0BENCH',
    user_id: 'U0BENCH',
    text: text.replace('{i}', `${round}-${i}`),
    response_url: `${responseBase}ack-${round}-${i}`,
    trigger_id: `${round}.${i}.${randomUUID()}`,
  });
}

/** Round -1 opens connections and warms both processes up; it is not counted. */
async function bursts(rounds: number, concurrency: number, one: (round: number, i: number) => Promise<number>): Promise<number[]> {
  const samples: number[] = [];
  for (let round = -1; round < rounds; round++) {
    const latencies = await Promise.all(Array.from({ length: concurrency }, (_, i) => one(round, i)));
    if (round >= 0) samples.push(...latencies);
    // Between bursts, let the bot finish the work the burst started (as Slack traffic would).
    await new Promise((r) => setTimeout(r, 300));
  }
  return samples;
}

async function overHttp(): Promise<number[]> {
  const [url, secret, responseBase, text, rounds, concurrency] = rest as [string, string, string, string, string, string];
  const agent = new Agent({ keepAlive: true, maxSockets: Number(concurrency) });
  const post = (body: string): Promise<number> => {
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const req = request(url, {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body), ...signRequest(secret, body) },
      });
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - started) : reject(new Error(`ack status ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end(body);
    });
  };
  try {
    return await bursts(Number(rounds), Number(concurrency), (round, i) => post(new URLSearchParams(payload(responseBase, text, round, i)).toString()));
  } finally {
    agent.destroy();
  }
}

async function overSocket(): Promise<number[]> {
  const [responseBase, text, rounds, concurrency] = rest as [string, string, string, string];
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => wss.once('listening', resolve));
  process.stdout.write(`${JSON.stringify({ url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/link` })}\n`);
  const socket = await new Promise<WebSocket>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('serve did not open the Socket Mode connection within 60 s')), 60_000);
    wss.once('connection', (ws) => {
      clearTimeout(timer);
      resolve(ws);
    });
  });
  const waiting = new Map<string, { started: number; resolve: (ms: number) => void }>();
  socket.on('message', (data) => {
    const { envelope_id: id } = JSON.parse(String(data)) as { envelope_id?: string };
    const w = id === undefined ? undefined : waiting.get(id);
    if (!w) return;
    waiting.delete(id!);
    w.resolve(performance.now() - w.started);
  });
  socket.send(JSON.stringify({ type: 'hello', num_connections: 1, connection_info: { app_id: 'A0APP' } }));
  try {
    return await bursts(Number(rounds), Number(concurrency), (round, i) => {
      const id = randomUUID();
      return new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`envelope ${id} not acked within 10 s`)), 10_000);
        waiting.set(id, {
          started: performance.now(),
          resolve: (ms) => {
            clearTimeout(timer);
            resolve(ms);
          },
        });
        socket.send(
          JSON.stringify({ envelope_id: id, type: 'slash_commands', accepts_response_payload: true, payload: payload(responseBase, text, round, i) }),
        );
      });
    });
  } finally {
    // A clean close, as Slack's own: a dropped socket would be logged by the bot as an error.
    for (const c of wss.clients) c.close(1000);
    await new Promise((r) => setTimeout(r, 200));
    wss.close();
  }
}

if (mode !== 'socket' && mode !== 'http') throw new Error('usage: ack-load.ts http|socket …');
const samples = mode === 'socket' ? await overSocket() : await overHttp();
process.stdout.write(`${JSON.stringify(samples)}\n`);
