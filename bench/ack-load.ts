/**
 * Load generator for the ack benchmark, in its own process so that timing requests is not
 * slowed by the Web API stand-in answering the bot in the parent process. It uses
 * node:http with keep-alive rather than fetch: fetch's own per-request cost on this
 * 2-core machine was larger than the bot's (see docs/BENCHMARKS.md).
 * argv: <events url> <secret> <response url base> <command text> <rounds> <concurrency>
 * prints a JSON array of ack latencies in ms.
 */
import { Agent, request } from 'node:http';
import { signRequest } from '../test/helpers/slack.js';

const [url, secret, responseBase, text, rounds, concurrency] = process.argv.slice(2) as [string, string, string, string, string, string];
const agent = new Agent({ keepAlive: true, maxSockets: Number(concurrency) });

function post(body: string): Promise<number> {
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
}

const samples: number[] = [];
for (let round = -1; round < Number(rounds); round++) {
  const latencies = await Promise.all(
    Array.from({ length: Number(concurrency) }, (_, i) =>
      post(
        new URLSearchParams({
          token: 'legacy',
          team_id: 'T0BENCH',
          channel_id: 'C0BENCH',
          user_id: 'U0BENCH',
          command: '/ops',
          text: text.replace('{i}', `${round}-${i}`),
          response_url: `${responseBase}ack-${round}-${i}`,
          trigger_id: `${round}.${i}`,
        }).toString(),
      ),
    ),
  );
  // Round -1 opens the keep-alive connections and warms both processes up; it is not counted.
  if (round >= 0) samples.push(...latencies);
  // Between bursts, let the bot finish the work the burst started (as Slack traffic would).
  await new Promise((r) => setTimeout(r, 300));
}
agent.destroy();
process.stdout.write(JSON.stringify(samples));
