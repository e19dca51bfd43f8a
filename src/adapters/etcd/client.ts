import { readFileSync } from 'node:fs';
import { Etcd3, type ILeaseOptions, type IOptions, type Lease } from 'etcd3';
import { DEFAULT_COMMAND_TIMEOUT_MS, type Config } from '../../config/schema.js';
import { SwitchyardError } from '../../core/errors.js';
import { attemptDeadline, currentCallBudget } from './deadline.js';
import { cappedBackoff, notingHost, withinBudget } from './policies.js';

/** What the adapter reads of `etcd:` (commandTimeout may be left out by callers that build it by hand). */
export type EtcdConfig = Omit<Config['etcd'], 'commandTimeout'> & { commandTimeout?: number };

export interface EtcdClientOptions {
  /** ETCD_PASSWORD, passed in by the caller: this module never reads the environment. */
  password?: string;
}

/** Connection settings resolved once (TLS files read, auth checked) so mistakes surface at start-up. */
export interface EtcdSettings {
  endpoints: string[];
  /** etcd.commandTimeout: one deadline per operation, across its calls, retries and endpoints. */
  commandTimeoutMs: number;
  credentials?: IOptions['credentials'];
  auth?: { username: string; password: string };
}

function readTlsFile(field: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new SwitchyardError('E_CONFIG', `etcd.tls.${field}: cannot read ${path} (${code})`, { cause: err });
  }
}

export function resolveEtcdSettings(cfg: EtcdConfig, opts: EtcdClientOptions = {}): EtcdSettings {
  const settings: EtcdSettings = {
    endpoints: [...cfg.endpoints],
    commandTimeoutMs: cfg.commandTimeout ?? DEFAULT_COMMAND_TIMEOUT_MS,
  };
  const secure = cfg.endpoints.filter((e) => e.startsWith('https://')).length;
  if (secure > 0 && secure < cfg.endpoints.length) {
    throw new SwitchyardError('E_CONFIG', 'etcd.endpoints mixes https:// and http:// endpoints; use one scheme for all');
  }
  const tls = cfg.tls;
  if (tls && (tls.ca || tls.cert || tls.key)) {
    if (secure === 0) throw new SwitchyardError('E_CONFIG', 'etcd.tls is set but etcd.endpoints are http://; use https:// endpoints');
    if (Boolean(tls.cert) !== Boolean(tls.key)) throw new SwitchyardError('E_CONFIG', 'etcd.tls.cert and etcd.tls.key go together');
    if (!tls.ca) throw new SwitchyardError('E_CONFIG', 'etcd.tls.ca is required with a client certificate');
    settings.credentials = {
      rootCertificate: readTlsFile('ca', tls.ca),
      ...(tls.key ? { privateKey: readTlsFile('key', tls.key) } : {}),
      ...(tls.cert ? { certChain: readTlsFile('cert', tls.cert) } : {}),
    };
  }
  if (cfg.auth) {
    if (!opts.password) throw new SwitchyardError('E_CONFIG', `etcd.auth.username is "${cfg.auth.username}" but ETCD_PASSWORD is not set`);
    settings.auth = { username: cfg.auth.username, password: opts.password };
  }
  return settings;
}

/**
 * An etcd3 client for `hosts` (default: every configured endpoint). Every unary call runs
 * within one budget (deadline.ts, policies.ts) so nothing hangs on a black-holed endpoint
 * or a cluster without quorum; streams (watch, lease keepalive) have none and rely on gRPC
 * keepalive to notice a dead peer instead. `retry: false` makes one attempt (health probes
 * report what they see rather than wait for it to change).
 */
export function createEtcdClient(settings: EtcdSettings, hosts: string[] = settings.endpoints, opts: { retry?: boolean } = {}): LeaseKeepingEtcd3 {
  return new LeaseKeepingEtcd3({
    hosts,
    ...(settings.credentials ? { credentials: settings.credentials } : {}),
    ...(settings.auth ? { auth: settings.auth } : {}),
    defaultCallOptions: (ctx) => {
      if (ctx.isStream) return {};
      const call = currentCallBudget();
      return { deadline: call ? attemptDeadline(call) : Date.now() + settings.commandTimeoutMs };
    },
    grpcOptions: {
      // etcd's default --grpc-keepalive-min-time is 5s; pinging faster gets the connection closed.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    },
    faultHandling: {
      host: (host) => notingHost(host),
      global: withinBudget({ timeoutMs: settings.commandTimeoutMs, endpoints: hosts.length, ...(opts.retry === false ? { attempts: 1 } : {}) }),
      watchBackoff: cappedBackoff(100, 2000),
    },
  });
}

/**
 * An etcd3 client that remembers the leases it keeps alive (`lease()` with keepalive: a
 * service lock, an agent's status key), so whoever closes it can revoke them and a
 * successor takes over at once instead of after the TTL. Leases granted without keepalive
 * (registrations with --ttl, de-duplication, confirmations) are meant to outlive the
 * process and are not tracked.
 */
export class LeaseKeepingEtcd3 extends Etcd3 {
  private readonly kept = new Set<Lease>();

  override lease(ttl: number, options?: ILeaseOptions): Lease {
    const lease = super.lease(ttl, options);
    if (options?.autoKeepAlive !== false) {
      this.prune();
      this.kept.add(lease);
    }
    return lease;
  }

  /** Leases this client still keeps alive (not revoked, released or lost). */
  keptLeases(): Lease[] {
    this.prune();
    return [...this.kept];
  }

  private prune(): void {
    for (const l of this.kept) if (l.revoked()) this.kept.delete(l);
  }
}
