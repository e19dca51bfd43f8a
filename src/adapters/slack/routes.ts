import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CustomRoute } from '@slack/bolt';
import type { Registry } from 'prom-client';
import type { Logger } from '../../core/log.js';

export interface Health {
  ok: boolean;
  details?: unknown;
}

export interface OpsRouteOptions {
  health: () => Promise<Health>;
  metricsRegistry: Registry;
  log: Logger;
}

/** GET /healthz and GET /metrics, served beside /slack/events (see front.ts). */
export function opsRoutes(opts: OpsRouteOptions): CustomRoute[] {
  const handle =
    (name: string, fn: (res: ServerResponse) => Promise<void>) =>
    (_req: IncomingMessage, res: ServerResponse): void => {
      fn(res).catch((err: unknown) => {
        opts.log.error({ err, route: name }, 'route handler failed');
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    };
  return [
    { path: '/healthz', method: ['GET'], handler: handle('/healthz', (res) => healthz(res, opts.health)) },
    {
      path: '/metrics',
      method: ['GET'],
      handler: handle('/metrics', async (res) => {
        const body = await opts.metricsRegistry.metrics();
        res.writeHead(200, { 'content-type': opts.metricsRegistry.contentType });
        res.end(body);
      }),
    },
  ];
}

async function healthz(res: ServerResponse, health: () => Promise<Health>): Promise<void> {
  let result: Health;
  try {
    result = await health();
  } catch (err) {
    // A health check that throws is itself the answer: unhealthy, and say why.
    result = { ok: false, details: { error: err instanceof Error ? err.message : String(err) } };
  }
  res.writeHead(result.ok ? 200 : 503, { 'content-type': 'application/json' });
  res.end(JSON.stringify(result));
}
