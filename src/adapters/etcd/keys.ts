import type { Config } from '../../config/schema.js';
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

  confirmDir(): string {
    return `${this.switchyard}/confirm/`;
  }

  /** A pending Slack confirmation, on a lease that ends with it. */
  confirmKey(id: string): string {
    return `${this.switchyard}/confirm/${id}`;
  }

  /** `/services/web/a` → {service, instance}; a string says why the key does not fit. */
  parseServiceKey(key: string): InstanceRef | string {
    return parseInstanceKey(this.servicesDir(), key);
  }

  parseStateKey(key: string): InstanceRef | string {
    return parseInstanceKey(this.stateDir(), key);
  }
}

export interface InstanceRef {
  service: string;
  instance: string;
}

function parseInstanceKey(dir: string, key: string): InstanceRef | string {
  if (!key.startsWith(dir)) return `key is not under ${dir}`;
  const parts = key.slice(dir.length).split('/');
  if (parts.length !== 2) return `key is not ${dir}<service>/<instance>`;
  const [service = '', instance = ''] = parts;
  if (!NAME_RE.test(service)) return `service name "${service}" is invalid (must match ${NAME_RE.source})`;
  if (!NAME_RE.test(instance)) return `instance name "${instance}" is invalid (must match ${NAME_RE.source})`;
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
