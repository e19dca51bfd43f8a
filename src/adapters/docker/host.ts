import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DockerOptions } from 'dockerode';
import { fail } from '../../core/errors.js';

export const DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock';

/**
 * The environment wins over the config file (SPEC: overrides come from the environment),
 * so `DOCKER_HOST=… switchyard serve` points a deployment at another engine without edits.
 */
export function resolveDockerHost(configHost: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.DOCKER_HOST?.trim();
  return fromEnv || configHost?.trim() || DEFAULT_DOCKER_HOST;
}

/**
 * dockerode options for `unix:///path` or `tcp://host:port`. TLS follows the docker CLI
 * convention (DOCKER_TLS_VERIFY + DOCKER_CERT_PATH) so an existing setup works unchanged.
 */
export function dockerodeOptions(host: string, env: NodeJS.ProcessEnv = process.env): DockerOptions {
  if (host.startsWith('unix://')) {
    const socketPath = host.slice('unix://'.length);
    if (!socketPath.startsWith('/')) fail('E_CONFIG', `docker host "${host}": a unix socket path must be absolute (unix:///path/docker.sock)`);
    return { socketPath };
  }
  if (host.startsWith('tcp://')) {
    let url: URL;
    try {
      url = new URL(`http://${host.slice('tcp://'.length)}`);
    } catch {
      fail('E_CONFIG', `docker host "${host}" is not tcp://host:port`);
    }
    const tls = env.DOCKER_TLS_VERIFY !== undefined && env.DOCKER_TLS_VERIFY !== '' && env.DOCKER_TLS_VERIFY !== '0';
    const port = url.port ? Number(url.port) : tls ? 2376 : 2375;
    if (!tls) return { host: url.hostname, port, protocol: 'http' };
    const dir = env.DOCKER_CERT_PATH;
    if (!dir) fail('E_CONFIG', 'DOCKER_TLS_VERIFY is set but DOCKER_CERT_PATH is not');
    const read = (f: string) => {
      try {
        return readFileSync(join(dir, f));
      } catch (err) {
        fail('E_CONFIG', `cannot read ${join(dir, f)} for Docker TLS`, { cause: err });
      }
    };
    return { host: url.hostname, port, protocol: 'https', ca: read('ca.pem'), cert: read('cert.pem'), key: read('key.pem') };
  }
  fail('E_CONFIG', `docker host "${host}" is not supported: use unix:///path/docker.sock or tcp://host:port`);
}
