import { readFileSync } from 'node:fs';
import { Etcd3, type IOptions } from 'etcd3';
import type { Config } from '../../config/schema.js';
import { SwitchyardError } from '../../core/errors.js';
import { cappedBackoff, passThrough, retryRecoverable } from './policies.js';

export type EtcdConfig = Config['etcd'];

export interface EtcdClientOptions {
  /** ETCD_PASSWORD, passed in by the caller: this module never reads the environment. */
  password?: string;
  /** Budget for one call once connected; the call deadline is dialTimeout + this. Default 3000. */
  requestTimeoutMs?: number;
}

/** Connection settings resolved once (TLS files read, auth checked) so mistakes surface at start-up. */
export interface EtcdSettings {
  endpoints: string[];
  /** Deadline of every unary call. etcd3 declares a dialTimeout option but never uses it. */
  callTimeoutMs: number;
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
    callTimeoutMs: cfg.dialTimeout + (opts.requestTimeoutMs ?? 3000),
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
 * An etcd3 client for `hosts` (default: every configured endpoint). Each unary call has a
 * deadline so nothing hangs on a black-holed endpoint; streams (watch) have none and rely
 * on gRPC keepalive to notice a dead peer instead.
 */
export function createEtcdClient(settings: EtcdSettings, hosts: string[] = settings.endpoints): Etcd3 {
  return new Etcd3({
    hosts,
    ...(settings.credentials ? { credentials: settings.credentials } : {}),
    ...(settings.auth ? { auth: settings.auth } : {}),
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + settings.callTimeoutMs }),
    grpcOptions: {
      // etcd's default --grpc-keepalive-min-time is 5s; pinging faster gets the connection closed.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    },
    faultHandling: {
      host: () => passThrough(),
      global: retryRecoverable(hosts.length),
      watchBackoff: cappedBackoff(100, 2000),
    },
  });
}
