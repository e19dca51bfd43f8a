import type { Config } from '../../config/schema.js';
import { SwitchyardError } from '../../core/errors.js';
import { NAME_RE } from '../../core/names.js';

/**
 * The SPEC "etcd layout", with configurable prefixes. Every key the adapter reads or writes
 * is built here, so the layout lives in one place. Directory helpers end with "/" so a
 * prefix read of `web` never picks up `web2`.
 */
export class KeyLayout {
  constructor(
    /** e.g. /services — `<prefix>/<service>/<instance>` = host:port (confd/registrator layout). */
    readonly services: string,
    /** e.g. /switchyard — state, desired, agents and locks live below it. */
    readonly switchyard: string,
  ) {}

  static fromConfig(registry: Config['registry']): KeyLayout {
    return new KeyLayout(registry.prefix, registry.switchyardPrefix);
  }

  servicesDir(service?: string): string {
    return service === undefined ? `${this.services}/` : `${this.services}/${service}/`;
  }

  serviceKey(service: string, instance: string): string {
    return `${this.services}/${service}/${instance}`;
  }

  stateDir(service?: string): string {
    return service === undefined ? `${this.switchyard}/state/` : `${this.switchyard}/state/${service}/`;
  }

  stateKey(service: string, instance: string): string {
    return `${this.switchyard}/state/${service}/${instance}`;
  }

  desiredDir(): string {
    return `${this.switchyard}/desired/`;
  }

  desiredKey(service: string): string {
    return `${this.switchyard}/desired/${service}`;
  }

  agentsDir(): string {
    return `${this.switchyard}/agents/`;
  }

  agentKey(agentId: string): string {
    return `${this.switchyard}/agents/${agentId}`;
  }

  locksDir(): string {
    return `${this.switchyard}/locks/`;
  }

  lockKey(service: string): string {
    return `${this.switchyard}/locks/${service}`;
  }

  watchersDir(): string {
    return `${this.switchyard}/watchers/`;
  }

  /** A `switchyard watch` process's record, on the lease its registrations live on. */
  watcherKey(host: string): string {
    return `${this.switchyard}/watchers/${host}`;
  }

  /** The feed's own keys (attribution, position, poster election); the feed reports none of them. */
  feedDir(): string {
    return `${this.switchyard}/feed/`;
  }

  /** Who/what caused a write: put in the same transaction as the write it explains. */
  causeKey(): string {
    return `${this.switchyard}/feed/cause`;
  }

  /** The revision up to which the #ops feed has posted. */
  feedPositionKey(): string {
    return `${this.switchyard}/feed/position`;
  }

  /** Namespace of the feed poster election (etcd3 adds `election/<name>/<lease>`). */
  feedElectionDir(): string {
    return `${this.switchyard}/feed/`;
  }

  /** The change history: one key per revision that changed something (`history`). */
  historyDir(): string {
    return `${this.switchyard}/history/`;
  }

  /** Zero-padded so that key order is revision order (ranges and trimming rely on it). */
  historyKey(revision: string): string {
    return `${this.switchyard}/history/${revision.padStart(20, '0')}`;
  }

  /**
   * Candidates for the history recorder role: outside the feed's election directory, since
   * the recorder campaigns even while Slack (and so the feed) is unreachable.
   */
  historyElectionDir(): string {
    return `${this.switchyard}/history-election/`;
  }

  /** The revision up to which the history is recorded (a feed key: not itself news). */
  historyPositionKey(): string {
    return `${this.switchyard}/feed/history-position`;
  }

  confirmDir(): string {
    return `${this.switchyard}/confirm/`;
  }

  /** A pending Slack confirmation, on a lease that ends with it. */
  confirmKey(id: string): string {
    return `${this.switchyard}/confirm/${id}`;
  }

  approvalsDir(): string {
    return `${this.switchyard}/approvals/`;
  }

  /** A request waiting for (or recently given) two-person approval, on a lease that ends with it. */
  approvalKey(id: string): string {
    return `${this.switchyard}/approvals/${id}`;
  }

  dedupeDir(): string {
    return `${this.switchyard}/dedupe/`;
  }

  /**
   * A Slack request already executed (`event/<event_id>`, `trigger/<trigger_id>`,
   * `sig/<sha256 of the signature>`), on a lease. Only these shapes are accepted: the ids
   * come from requests, and a key must never climb out of the dedupe directory.
   */
  dedupeKey(key: string): string {
    if (!DEDUPE_KEY_RE.test(key)) throw new SwitchyardError('E_BAD_ARGS', `not a de-duplication key: ${JSON.stringify(key)}`);
    return `${this.switchyard}/dedupe/${key}`;
  }

  /** `/services/web/a` → {service, instance}; a string says why the key does not fit. */
  parseServiceKey(key: string): InstanceRef | string {
    return parseInstanceKey(this.servicesDir(), key);
  }

  parseStateKey(key: string): InstanceRef | string {
    return parseInstanceKey(this.stateDir(), key);
  }
}

/** kind/id, the id from Slack's alphabet for ids (or a hex digest): no "/", no "..". */
const DEDUPE_KEY_RE = /^(event|trigger|sig)\/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

export interface InstanceRef {
  service: string;
  instance: string;
}

function parseInstanceKey(dir: string, key: string): InstanceRef | string {
  if (!key.startsWith(dir)) return `key is not under ${dir}`;
  const parts = key.slice(dir.length).split('/');
  if (parts.length !== 2) return `key is not ${dir}<service>/<instance>`;
  const [service = '', instance = ''] = parts;
  // Quoted as JSON: a name from a raw key may hold a newline.
  if (!NAME_RE.test(service)) return `service name ${JSON.stringify(service)} is invalid (must match ${NAME_RE.source})`;
  if (!NAME_RE.test(instance)) return `instance name ${JSON.stringify(instance)} is invalid (must match ${NAME_RE.source})`;
  return { service, instance };
}

/** The first key after every key that starts with `prefix` (etcd's range_end for a prefix). */
export function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // all 0xff: to the end of the keyspace
}
