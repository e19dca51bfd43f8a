/**
 * Registry watch events → feed changes. The two keys of an instance written in one
 * transaction are one change; the cause key put at the same revision says who and why;
 * without one, a deletion of leased keys is a lease expiry and anything else was done
 * outside switchyard. A re-registration that changes nothing but the lease and the time
 * (a TTL refresh) is not a change worth telling.
 */
import { z } from 'zod';
import { NAME_RE } from '../../core/names.js';
import type { RegistryEvent, StateRecord } from '../../core/registry.js';
import { parseApplyResult } from '../../core/apply-result.js';
import { quoteKey } from '../../core/quote.js';
import type { ChangeCause, FeedChange } from '../../feed/types.js';
import { decodeWatcherRecord } from '../../core/watcher-record.js';
import { decodeCause } from './attribution.js';
import { decodeAddress, decodeDesired, decodeState, DEFAULT_WEIGHT, isProblem } from './codec.js';
import type { KeyLayout } from './keys.js';

export interface Interpreted {
  changes: FeedChange[];
  /** False when every event was one of the feed's own keys (position, election). */
  relevant: boolean;
  /** TTL refreshes and other rewrites with nothing new. */
  unchanged: number;
}

interface InstanceEvents {
  service: string;
  instance: string;
  svc?: RegistryEvent;
  st?: RegistryEvent;
}

const MAX_NOTES = 20;
const MAX_CHANGES_SHOWN = 12;
const MAX_TEXT = 300;

export function interpretEvents(layout: KeyLayout, events: readonly RegistryEvent[]): Interpreted {
  const out: Interpreted = { changes: [], relevant: false, unchanged: 0 };
  let i = 0;
  while (i < events.length) {
    const revision = events[i]!.revision;
    let j = i;
    while (j < events.length && events[j]!.revision === revision) j++;
    interpretRevision(layout, events.slice(i, j), out);
    i = j;
  }
  return out;
}

function interpretRevision(layout: KeyLayout, events: RegistryEvent[], out: Interpreted): void {
  const causeKey = layout.causeKey();
  const feedDir = layout.feedDir();
  // The history records changes; its own writes are not changes to record or post.
  const historyDir = layout.historyDir();
  // A mute's end is news (its start is announced by the command that set it).
  const muteDir = `${feedDir}mute/`;
  const mutes: RegistryEvent[] = [];
  let cause: ChangeCause | undefined;
  const instances = new Map<string, InstanceEvents>();
  const desired = new Map<string, RegistryEvent>();
  const agents = new Map<string, RegistryEvent>();
  const unreadable: { ev: RegistryEvent; problem: string }[] = [];
  const watcherLeases = new Map<string, ChangeCause>();
  const instance = (service: string, name: string) => {
    const k = `${service}/${name}`;
    let e = instances.get(k);
    if (!e) instances.set(k, (e = { service, instance: name }));
    return e;
  };

  for (const ev of events) {
    if (ev.key === causeKey) {
      out.relevant = true;
      const rec = ev.type === 'put' ? decodeCause(ev.value) : undefined;
      if (rec) cause = { kind: 'switchyard', ...rec };
      continue;
    }
    if (ev.key.startsWith(muteDir) && ev.type === 'delete') {
      out.relevant = true;
      mutes.push(ev);
      continue;
    }
    if (ev.key.startsWith(feedDir) || ev.key.startsWith(historyDir)) continue;
    out.relevant = true;
    if (ev.key.startsWith(layout.servicesDir())) {
      const ref = layout.parseServiceKey(ev.key);
      if (typeof ref === 'string') unreadable.push({ ev, problem: ref });
      else instance(ref.service, ref.instance).svc = ev;
    } else if (ev.key.startsWith(layout.stateDir())) {
      const ref = layout.parseStateKey(ev.key);
      if (typeof ref === 'string') unreadable.push({ ev, problem: ref });
      else instance(ref.service, ref.instance).st = ev;
    } else if (ev.key.startsWith(layout.desiredDir())) {
      const service = ev.key.slice(layout.desiredDir().length);
      if (NAME_RE.test(service)) desired.set(service, ev);
      else unreadable.push({ ev, problem: `${JSON.stringify(service)} is not a service name` });
    } else if (ev.key.startsWith(layout.watchersDir())) {
      // A watcher's record goes with its lease, in the same revision as its registrations.
      if (ev.type === 'delete' && ev.prevLease) {
        const rec = ev.prevValue !== undefined ? decodeWatcherRecord(ev.prevValue) : undefined;
        const host = rec?.host ?? ev.key.slice(layout.watchersDir().length);
        watcherLeases.set(ev.prevLease, { kind: 'lease', watcher: { host, stopped: rec?.stopping === true } });
      }
    } else if (ev.key.startsWith(layout.agentsDir())) {
      const agent = ev.key.slice(layout.agentsDir().length);
      if (NAME_RE.test(agent)) agents.set(agent, ev);
      else unreadable.push({ ev, problem: `${JSON.stringify(agent)} is not an agent ID` });
    }
    // Locks, confirmations and unknown keys under the switchyard prefix are not news.
  }

  const causeOf = (ev: RegistryEvent): ChangeCause => {
    if (cause) return cause;
    if (ev.type !== 'delete' || !ev.prevLease) return { kind: 'outside' };
    return watcherLeases.get(ev.prevLease) ?? { kind: 'lease' };
  };
  const push = (c: Omit<FeedChange, 'revision' | 'cause'>, ev: RegistryEvent) => out.changes.push({ revision: ev.revision, cause: causeOf(ev), ...c });

  for (const e of instances.values()) {
    const change = instanceChange(e);
    const leased = Boolean(e.svc && (e.svc.type === 'put' ? e.svc.lease : e.svc.prevLease));
    if (change) push(withInstance(leased ? { ...change, leased } : change, e), (e.svc ?? e.st)!);
    else out.unchanged++;
  }
  for (const ev of mutes) {
    const change = muteEnded(layout, ev, cause);
    if (change) out.changes.push(change);
  }
  for (const [service, ev] of desired) push(desiredChange(service, ev), ev);
  for (const [agent, ev] of agents) {
    const change = agentChange(agent, ev);
    if (!change) {
      out.unchanged++;
      continue;
    }
    // An agent reports its own work; its disappearance has the usual causes.
    out.changes.push({ revision: ev.revision, cause: ev.type === 'put' ? { kind: 'agent', agent } : causeOf(ev), ...change });
  }
  for (const { ev, problem } of unreadable) {
    // Quoted: a raw key may hold a newline that would forge a feed line of its own.
    push(
      {
        kind: 'invalid',
        group: 'registry',
        subject: quoteKey(ev.key),
        what: `${ev.type === 'put' ? 'written' : 'deleted'}, but unreadable: ${problem}`,
        problem: true,
      },
      ev,
    );
  }
}

type Draft = Omit<FeedChange, 'revision' | 'cause'>;

/** What feed buttons act on: an instance the change leaves registered, in its state if this revision says. */
function withInstance(d: Draft, e: InstanceEvents): Draft {
  if (d.kind !== 'added' && d.kind !== 'moved' && d.kind !== 'state' && d.kind !== 'weight') return d;
  const st = e.st?.type === 'put' ? decodeState(e.st.value) : undefined;
  const state = st && !isProblem(st) ? st.state : e.st?.type === 'delete' || d.kind === 'added' ? 'ready' : undefined;
  return { ...d, instance: { service: e.service, instance: e.instance, ...(state ? { state } : {}) } };
}

const muteRecord = z.object({ by: z.string(), until: z.string() });

/**
 * A mute key deleted. `feed unmute` attributes its delete and announces it itself, so only a
 * mute that ran out (its lease) or was deleted by hand is told here.
 */
function muteEnded(layout: KeyLayout, ev: RegistryEvent, cause: ChangeCause | undefined): FeedChange | undefined {
  if (cause) return undefined;
  const [scope, service, ...rest] = ev.key.slice(`${layout.feedDir()}mute/`.length).split('/');
  if (!scope || !service || rest.length || !NAME_RE.test(service)) return undefined;
  let rec: z.infer<typeof muteRecord> | undefined;
  try {
    const r = muteRecord.safeParse(JSON.parse(ev.prevValue ?? ''));
    if (r.success) rec = r.data;
  } catch {
    // A hand-written value: the mute still ended.
  }
  const where = scope === 'all' ? 'every feed' : 'this feed';
  const set = rec ? ` (set by ${rec.by} until ${rec.until})` : '';
  return {
    revision: ev.revision,
    kind: 'mute-ended',
    group: service,
    subject: service,
    what: `${ev.prevLease ? 'feed mute ran out' : 'feed mute removed'}${set}: its changes show in ${where} again`,
    cause: ev.prevLease ? { kind: 'lease' } : { kind: 'outside' },
    muteScope: scope,
  };
}

function instanceChange(e: InstanceEvents): Draft | undefined {
  const base = { group: e.service, subject: `${e.service}/${e.instance}` };
  const { svc, st } = e;
  const state = st?.type === 'put' ? decodeState(st.value) : undefined;
  if (isProblem(state)) return { ...base, kind: 'invalid', what: `has an invalid state record: ${state.problem}`, problem: true };
  if (svc?.type === 'delete') return { ...base, kind: 'removed', what: `removed${svc.prevValue ? ` (was at ${clip(svc.prevValue)})` : ''}` };
  if (svc?.type === 'put') {
    const address = decodeAddress(svc.value);
    if (isProblem(address)) return { ...base, kind: 'invalid', what: `has an invalid address: ${address.problem}`, problem: true };
    if (svc.prevValue === undefined) return { ...base, kind: 'added', what: `registered at ${address}${registrationNotes(state, svc.lease)}` };
    if (svc.prevValue !== svc.value) return { ...base, kind: 'moved', what: `moved from ${clip(svc.prevValue)} to ${address}` };
  }
  if (st?.type === 'delete') return svc ? undefined : { ...base, kind: 'state', what: 'lost its state record (treated as ready)' };
  if (!state) return undefined;
  const prev = st?.prevValue !== undefined ? decodeState(st.prevValue) : undefined;
  const before = prev && !isProblem(prev) ? prev : undefined;
  if ((before?.state ?? 'ready') !== state.state) return { ...base, kind: 'state', what: stateWords(before?.state ?? 'ready', state.state) };
  if ((before?.weight ?? DEFAULT_WEIGHT) !== state.weight) {
    return { ...base, kind: 'weight', what: `weight ${before?.weight ?? DEFAULT_WEIGHT} → ${state.weight}` };
  }
  return undefined;
}

function registrationNotes(state: StateRecord | undefined, lease: string | undefined): string {
  const notes = [
    state && state.state !== 'ready' ? state.state : '',
    state && state.weight !== DEFAULT_WEIGHT ? `weight ${state.weight}` : '',
    lease ? 'with a TTL' : '',
  ].filter(Boolean);
  return notes.length ? ` (${notes.join(', ')})` : '';
}

function stateWords(from: string, to: string): string {
  if (to === 'drain') return `draining (was ${from})`;
  if (to === 'maint') return `in maintenance (was ${from})`;
  return `back in rotation (was ${from})`;
}

function desiredChange(service: string, ev: RegistryEvent): Draft {
  const base = { group: service, subject: service, kind: 'desired' as const };
  if (ev.type === 'delete') return { ...base, what: 'desired replicas cleared' };
  const rec = decodeDesired(ev.value);
  if (isProblem(rec)) return { ...base, kind: 'invalid', what: `has an invalid desired record: ${rec.problem}`, problem: true };
  const prev = ev.prevValue !== undefined ? decodeDesired(ev.prevValue) : undefined;
  const from = prev && !isProblem(prev) ? String(prev.replicas) : 'unset';
  return { ...base, what: `desired replicas ${from} → ${rec.replicas}` };
}

function agentChange(agent: string, ev: RegistryEvent): Draft | undefined {
  const base = { group: `agent ${agent}`, subject: `haproxy ${agent}` };
  if (ev.type === 'delete') return { ...base, kind: 'agent-gone', what: 'agent is gone' };
  if (ev.prevValue === ev.value) return undefined;
  const result = parseApplyResult(ev.value);
  if (typeof result === 'string') return { ...base, kind: 'apply', what: `wrote an unreadable apply result: ${result}`, problem: true };
  const errors = result.error ?? [];
  const warnings = result.warnings ?? [];
  // "Nothing to do" is the agent confirming it is in step, not news.
  if (result.ok && result.method === 'none' && warnings.length === 0) return undefined;
  const took = ` in ${formatMs(result.durationMs)}`;
  let what: string;
  let notes: string[];
  if (result.ok) {
    what = `${result.method} apply${result.changes.length ? ` ${listChanges(result.changes)}` : ''}${took}`;
    notes = warnings.map((w) => `warning: ${w}`);
  } else if (result.failure === 'unavailable') {
    // The agent's first line says "waiting for HAProxy: <why>".
    what = `${clip(errors[0] ?? 'HAProxy did not answer')} — will retry`;
    notes = errors.slice(1);
  } else {
    what = `${result.failure ?? result.method} failed${took}: ${clip(errors[0] ?? 'no error given')} — kept the last good config`;
    notes = [...errors.slice(1), ...warnings.map((w) => `warning: ${w}`)];
  }
  notes = notes.slice(0, MAX_NOTES).map(clip);
  return { ...base, kind: 'apply', what, apply: result, ...(result.ok ? {} : { problem: true }), ...(notes.length ? { notes } : {}) };
}

/** "+web-4 −web-2 …": a leading '-' reads better as a minus sign. */
function listChanges(changes: string[]): string {
  const shown = changes.slice(0, MAX_CHANGES_SHOWN).map((c) => (c.startsWith('-') ? `−${c.slice(1)}` : c));
  const more = changes.length - shown.length;
  return clip(`${shown.join(' ')}${more > 0 ? ` (+${more} more)` : ''}`);
}

function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function clip(s: string): string {
  const line = s.replace(/\s+/g, ' ').trim();
  return line.length > MAX_TEXT ? `${line.slice(0, MAX_TEXT - 1)}…` : line;
}
