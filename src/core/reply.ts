/**
 * A front-end-neutral reply. Plugins never write mrkdwn or Block Kit: they return plain
 * strings and the Slack renderer escapes and lays them out, so nothing user- or
 * system-supplied can inject formatting.
 */
export interface Table {
  header: string[];
  rows: string[][];
}

export interface Reply {
  ok: boolean;
  /** One line: what happened. */
  summary: string;
  /** Further plain-text lines (usage, error list, notes). */
  details?: string[];
  /** Tabular data (status listings). */
  tables?: { title?: string; table: Table }[];
  /** Machine-readable error code when ok=false. */
  code?: string;
  /** Set by the router with E_APPROVAL_PENDING: the recorded request front-ends show for approval. */
  approval?: { id: string };
}

export const ok = (summary: string, extra: Omit<Reply, 'ok' | 'summary'> = {}): Reply => ({ ok: true, summary, ...extra });

/** Render a table as aligned monospace text (shell output and Slack code blocks). */
export function formatTable(t: Table): string[] {
  const widths = t.header.map((h, i) => Math.max(h.length, ...t.rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(t.header), ...t.rows.map(line)];
}

/** Plain-text rendering used by the shell and as the Slack `text` fallback. */
export function replyToText(r: Reply): string {
  const out = [r.ok ? r.summary : `error: ${r.summary}`];
  for (const d of r.details ?? []) out.push(d);
  for (const { title, table } of r.tables ?? []) {
    if (title) out.push('', title);
    out.push(...formatTable(table));
  }
  return out.join('\n');
}
