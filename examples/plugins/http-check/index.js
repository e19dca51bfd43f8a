/**
 * `probe <service>`: GET each instance's health URL (http://<address><path>) with a
 * timeout, and report the status codes in a table. No import from switchyard.
 *
 * switchyard.yaml:
 *   plugins:
 *     - module: ./plugins/http-check/index.js
 *       options: { path: /health, timeout: 2s }
 */

/** @type {import('switchyard/plugin').PluginFactory} */
export default function httpCheckPlugin(api) {
  const { z } = api;
  const options = api.options(
    z
      .object({
        path: z.string().startsWith('/').default('/health'),
        /** Per request: `500ms`, `2s`… (the duration type commands use; a default is in ms). */
        timeout: api.args.duration.default(2000),
        /** Probed at once rather than one after another. */
        concurrency: z.number().int().min(1).max(64).default(8),
      })
      .strict(),
  );

  async function probe(address) {
    const started = Date.now();
    try {
      const res = await fetch(`http://${address}${options.path}`, { signal: AbortSignal.timeout(options.timeout) });
      await res.body?.cancel();
      return { result: String(res.status), ok: res.ok, ms: Date.now() - started };
    } catch (err) {
      const timedOut = err instanceof Error && err.name === 'TimeoutError';
      const why = timedOut ? `no answer within ${options.timeout} ms` : (err?.cause?.code ?? err?.message ?? String(err));
      return { result: why, ok: false, ms: Date.now() - started };
    }
  }

  return {
    name: 'http-check',
    apiVersion: '^1.0.0',
    commands: [
      api.defineCommand({
        name: 'probe',
        summary: `GET ${options.path} on every instance of a service and report the status codes`,
        args: z.object({ service: api.args.service }),
        positionals: ['service'],
        serviceArg: 'service',
        // Every request has its own timeout; the command as a whole gets a little more.
        timeoutMs: () => options.timeout * 2 + 5000,
        async handler(ctx, { service }) {
          const { instances } = await ctx.registry.list(service);
          if (instances.length === 0) api.errors.fail('E_NOT_FOUND', `${service} has no registered instance`);
          const rows = [];
          for (let i = 0; i < instances.length; i += options.concurrency) {
            const batch = instances.slice(i, i + options.concurrency);
            const results = await Promise.all(batch.map((inst) => probe(inst.address)));
            for (const [j, r] of results.entries()) rows.push({ inst: batch[j], ...r });
          }
          const healthy = rows.filter((r) => r.ok).length;
          // Unhealthy instances are the answer, not a failure of the command.
          return api.reply.ok(`${service}: ${healthy} of ${rows.length} instance(s) answered ${options.path} with 2xx`, {
            tables: [
              api.reply.table(
                undefined,
                ['INSTANCE', 'ADDRESS', 'RESULT', 'MS'],
                rows.map((r) => [r.inst.instance, r.inst.address, r.result, String(r.ms)]),
              ),
            ],
          });
        },
      }),
    ],
  };
}
