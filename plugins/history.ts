import type { HistoryEntry, Plugin, PluginApi } from '../src/plugin.js';

/** Rows per page at most: a 50-row table is a few Slack code blocks, far under the 50-block cap. */
export const HISTORY_MAX_LIMIT = 200;

/**
 * `history [service] [--since 2h] [--limit 50]`: what changed in the registry, when, by whom
 * and via what, newest first — the attribution the #ops feed shows, kept in etcd.
 */
export default function history(api: PluginApi): Plugin {
  const { z, args } = api;
  return {
    name: 'history',
    commands: [
      api.defineCommand({
        name: 'history',
        summary: 'recorded registry changes, newest first: when, what, by whom, via what (command, lease expiry, container death, outside edit)',
        args: z.object({
          service: args.service.optional(),
          since: args.duration.optional(),
          limit: args.int(1, HISTORY_MAX_LIMIT).optional().describe('N'),
          before: z
            .string()
            .regex(/^\d{1,19}$/, 'must be a revision number (from a previous page)')
            .optional()
            .describe('REVISION'),
        }),
        positionals: ['service'],
        serviceArg: 'service',
        async handler(ctx, { service, since, limit = 50, before }) {
          const page = await ctx.history.list({
            limit,
            ...(service !== undefined ? { service } : {}),
            ...(since !== undefined ? { sinceMs: Date.now() - since } : {}),
            ...(before !== undefined ? { beforeRevision: before } : {}),
          });
          const scope = `${service ? ` to ${service}` : ''}${since !== undefined ? ` in the last ${sinceWords(since)}` : ''}`;
          if (page.entries.length === 0) return api.reply.ok(`no recorded changes${scope}${before ? ` before revision ${before}` : ''}`);
          const details: string[] = [];
          if (page.next !== undefined) {
            const flags = [service, since !== undefined ? `--since ${sinceWords(since)}` : '', `--limit ${limit}`, `--before ${page.next}`].filter(Boolean);
            details.push(`older changes: \`history ${flags.join(' ')}\``);
          }
          return api.reply.ok(`${page.entries.length} change${page.entries.length === 1 ? '' : 's'}${scope}, newest first`, {
            tables: [historyTable(page.entries)],
            ...(details.length ? { details } : {}),
          });
        },
      }),
    ],
  };
}

export function historyTable(entries: readonly HistoryEntry[], title?: string) {
  return {
    ...(title !== undefined ? { title } : {}),
    table: { header: ['when (UTC)', 'change', 'by', 'via', 'revision'], rows: entries.map(historyRow) },
  };
}

function historyRow(e: HistoryEntry): string[] {
  return [when(e.at), `${e.subject} ${e.what}`, e.by ?? '-', via(e), e.revision];
}

function via(e: HistoryEntry): string {
  if (e.via === 'command' || e.via === 'approval') return `${e.via} ${e.command ?? ''}`.trim();
  if (e.reason && e.via !== 'outside edit') return `${e.via} (${e.reason})`;
  return e.via;
}

function when(iso: string): string {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? new Date(t).toISOString().slice(0, 19).replace('T', ' ') : iso;
}

function sinceWords(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
