/**
 * Which feed gets what (`slack.feeds`): each feed names its channel, the services it follows
 * (globs), the kinds of news it wants and the noise it does not. Pure: the feed service asks
 * `routeAccepts` per change, the fan-out sink `routeAcceptsEvent` per other event.
 */
import type { FeedEvent } from '../core/feed.js';
import type { FeedChange } from './types.js';

export const FEED_KINDS = ['registry', 'haproxy', 'docker', 'approval', 'acl'] as const;
export type FeedKind = (typeof FEED_KINDS)[number];

/**
 * Noise a feed may leave out: `ttl-refresh` — instances on a TTL lease appearing and
 * expiring (registered with a TTL, lease expired; deliberate removals still show); `applies` — successful HAProxy applies
 * (failures are always shown); `weights` — weight changes.
 */
export const QUIET_KINDS = ['ttl-refresh', 'applies', 'weights'] as const;
export type QuietKind = (typeof QUIET_KINDS)[number];

export interface FeedRoute {
  channel: string;
  services: readonly string[];
  kinds: readonly FeedKind[];
  quiet: readonly QuietKind[];
}

/** Components that write on switchyard's behalf when a container dies or drifts. */
const DOCKER_ACTORS = new Set(['docker', 'restart', 'reconcile']);

export function changeKind(c: FeedChange): FeedKind {
  if (c.kind === 'apply' || c.kind === 'agent-gone') return 'haproxy';
  if (c.cause.kind === 'switchyard' && c.cause.source === 'approval') return 'approval';
  if (c.cause.kind === 'switchyard' && DOCKER_ACTORS.has(c.cause.by)) return 'docker';
  return 'registry';
}

/** Events other than registry changes, by their kind prefix; feed notices go everywhere. */
export function eventKind(e: FeedEvent): FeedKind | 'every feed' {
  const head = e.kind.split('.')[0]!;
  if (head === 'feed') return 'every feed';
  if (head === 'acl') return 'acl';
  if (head === 'haproxy') return 'haproxy';
  if (head === 'approval') return 'approval';
  if (head === 'death' || head === 'reconcile' || head === 'restart' || head === 'docker') return 'docker';
  return 'registry';
}

export function globMatcher(globs: readonly string[]): (name: string) => boolean {
  const res = globs.map(
    (g) =>
      new RegExp(
        `^${g
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '.*')
          .replace(/\?/g, '.')}$`,
      ),
  );
  return (name) => res.some((re) => re.test(name));
}

export function routeFilter(route: FeedRoute): (c: FeedChange) => boolean {
  const service = globMatcher(route.services);
  const quiet = new Set(route.quiet);
  return (c) => {
    // A gap concerns every feed: without it, silence would look like nothing happened.
    if (c.kind === 'gap') return true;
    // A mute's end goes where the mute applied.
    if (c.kind === 'mute-ended') return c.muteScope === undefined || c.muteScope === 'all' || c.muteScope === route.channel;
    if (!route.kinds.includes(changeKind(c))) return false;
    if (quiet.has('ttl-refresh') && c.leased && (c.kind === 'added' || (c.kind === 'removed' && c.cause.kind === 'lease'))) return false;
    if (quiet.has('applies') && c.kind === 'apply' && !c.problem) return false;
    if (quiet.has('weights') && c.kind === 'weight') return false;
    // HAProxy agents and unreadable keys name no service: the kind alone decides.
    if (c.kind === 'apply' || c.kind === 'agent-gone' || c.kind === 'invalid') return true;
    return service(c.group);
  };
}

export function routeAcceptsEvent(route: FeedRoute, e: FeedEvent): boolean {
  const kind = eventKind(e);
  return kind === 'every feed' || route.kinds.includes(kind);
}
