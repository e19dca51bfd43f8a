import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
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

/** GET /healthz and GET /metrics, served beside /slack/events. */
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

/**
 * In Socket Mode there is no HTTP receiver, but /healthz and /metrics must still be served on
 * $PORT; Bolt's Socket Mode route server cannot report the port it bound, so this one does.
 */
export async function listenRoutes(routes: CustomRoute[], port: number, host?: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const route = routes.find((r) => r.path === path && [r.method].flat().includes(req.method ?? ''));
    if (!route) {
      res.writeHead(404);
      res.end();
      return;
    }
    route.handler(Object.assign(req, { params: {} }), res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return { server, port: (server.address() as AddressInfo).port };
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
}
