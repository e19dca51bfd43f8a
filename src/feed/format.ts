/**
 * Words for feed changes, shared by the shell (plain text) and Slack (mrkdwn). Everything
 * that came from the registry passes through `style.text`, so the Slack style can escape
 * it; only IDs that look like Slack user IDs become mentions.
 */
import type { ChangeCause, FeedChange, FeedItem } from './types.js';

export interface Style {
  /** Any user- or system-supplied text. */
  text(s: string): string;
  /** A user ID. */
  user(id: string): string;
  /** Already-styled text, emphasised. */
  strong(s: string): string;
  /** A command name. */
  code(s: string): string;
  /** Prefix of a problem line. */
  alert: string;
}

export const plainStyle: Style = {
  text: (s) => s,
  user: (id) => id,
  strong: (s) => s,
  code: (s) => s,
  alert: '',
};

export function causeText(cause: ChangeCause, st: Style): string {
  switch (cause.kind) {
    case 'switchyard': {
      // A watcher's changes read "by watch@h1 (container died)": the host is the news.
      if (cause.by.startsWith('watch@') && cause.reason) return `by ${st.text(cause.by)} (${st.text(cause.reason)})`;
      const by = `by ${st.user(cause.by)}`;
      const via = cause.command ? ` via ${st.code(cause.command)}` : '';
      // "— by @U1 via scale, approved by @U2": the second person is part of who did it.
      const approved = cause.approvedBy?.length ? `, approved by ${cause.approvedBy.map((u) => st.user(u)).join(', ')}` : '';
      return cause.reason ? `(${st.text(cause.reason)}) ${by}${via}${approved}` : `${by}${via}${approved}`;
    }
    case 'lease': {
      const w = cause.watcher;
      if (!w) return '(lease expired)';
      return st.text(w.stopped ? `(host ${w.host}'s watcher stopped)` : `(host ${w.host}'s watcher is gone)`);
    }
    case 'outside':
      return '(changed outside switchyard)';
    case 'agent':
    case 'history':
      return '';
  }
}

/** One change on one line: "web/web-1 registered at 10.0.0.1:80 — by U1 via register". */
export function changeLine(c: FeedChange, st: Style): string {
  const cause = causeText(c.cause, st);
  const head = `${c.problem ? st.alert : ''}${st.strong(st.text(c.subject))} ${st.text(c.what)}`;
  return cause ? `${head} — ${cause}` : head;
}

/** The change's line followed by its notes, indented. */
export function changeLines(c: FeedChange, st: Style): string[] {
  return [changeLine(c, st), ...(c.notes ?? []).map((n) => `    ${st.text(n)}`)];
}

export function eventLine(item: FeedItem, st: Style): string[] {
  if (item.change) return changeLines(item.change, st);
  if (item.event) return [`${st.text(`[${item.event.kind}]`)} ${st.text(item.event.text)}`];
  return [];
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/**
 * One line per group for a burst: "web: +200 instances by U1 via register, −3 (container
 * died)". Every change is counted in exactly one part, so the parts add up to the burst.
 */
export function summaryLines(changes: readonly FeedChange[], st: Style): string[] {
  const groups = new Map<string, FeedChange[]>();
  const gaps: string[] = [];
  for (const c of changes) {
    if (c.kind === 'gap' || c.kind === 'mute-ended') {
      gaps.push(changeLine(c, st));
      continue;
    }
    const list = groups.get(c.group);
    if (list) list.push(c);
    else groups.set(c.group, [c]);
  }
  return [...gaps, ...[...groups].map(([group, list]) => `${st.strong(st.text(group))}: ${groupParts(list, st).join(', ')}`)];
}

function groupParts(list: FeedChange[], st: Style): string[] {
  const parts: string[] = [];
  /** Counts per cause, in order of first appearance. */
  const byCause = (kinds: FeedChange['kind'][]) => {
    const m = new Map<string, number>();
    for (const c of list) {
      if (!kinds.includes(c.kind)) continue;
      const cause = causeText(c.cause, st);
      m.set(cause, (m.get(cause) ?? 0) + 1);
    }
    return [...m];
  };
  const counted = (sign: string, noun: (n: number) => string, entries: [string, number][]) =>
    entries.forEach(([cause, n], i) => void parts.push(`${sign}${i === 0 ? noun(n) : n}${cause ? ` ${cause}` : ''}`));

  counted('+', (n) => plural(n, 'instance'), byCause(['added']));
  counted('−', (n) => String(n), byCause(['removed']));
  counted('', (n) => plural(n, 'update'), byCause(['moved', 'state', 'weight', 'invalid']));

  const desired = list.filter((c) => c.kind === 'desired');
  if (desired.length === 1) parts.push(`${st.text(desired[0]!.what)} ${causeText(desired[0]!.cause, st)}`.trim());
  else if (desired.length > 1) parts.push(`desired replicas changed ${desired.length} times, last: ${st.text(desired.at(-1)!.what)}`);

  const applies = list.filter((c) => c.kind === 'apply');
  if (applies.length) {
    const methods = new Map<string, number>();
    for (const a of applies) {
      const method = a.apply?.method ?? 'other';
      methods.set(method, (methods.get(method) ?? 0) + 1);
    }
    const failed = applies.filter((a) => a.problem).length;
    const how = [...methods].map(([m, n]) => `${n} ${st.text(m)}`).join(', ');
    parts.push(`${plural(applies.length, 'apply', 'applies')} (${how})${failed ? `, ${st.alert}${failed} failed` : ''}`);
  }
  for (const gone of list.filter((c) => c.kind === 'agent-gone')) parts.push(`${st.text(gone.what)} ${causeText(gone.cause, st)}`.trim());
  return parts;
}

export function countLabel(n: number): string {
  return plural(n, 'change');
}
