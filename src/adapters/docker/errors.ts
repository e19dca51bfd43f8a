import { SwitchyardError } from '../../core/errors.js';

/**
 * Docker answers with an HTTP status and a free-text message. The status decides the code
 * where it is specific; a few 500s (port clash, a missing executable on older engines) are
 * only distinguishable by Docker's wording, so those are matched here, at the boundary,
 * and nowhere else.
 */

export interface DockerCallContext {
  /** What we were doing, for the message: "create", "start", "inspect", … */
  op: string;
  host: string;
  image?: string;
  id?: string;
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EACCES', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT']);
const PORT_CLASH = /address already in use|port is already allocated/i;
const BAD_EXECUTABLE = /executable file not found|no such file or directory|permission denied|exec format error|not a directory/i;

function prop(err: unknown, key: string): unknown {
  return typeof err === 'object' && err !== null ? (err as Record<string, unknown>)[key] : undefined;
}

/** Docker's own message (its JSON `message`), falling back to the transport error. */
export function dockerMessage(err: unknown): string {
  const json = prop(err, 'json');
  const fromJson = prop(json, 'message');
  if (typeof fromJson === 'string' && fromJson) return fromJson;
  if (typeof json === 'string' && json.trim()) return json.trim();
  if (Buffer.isBuffer(json) && json.length) return json.toString('utf8').trim();
  return err instanceof Error ? err.message : String(err);
}

export function dockerStatus(err: unknown): number | undefined {
  const s = prop(err, 'statusCode');
  return typeof s === 'number' ? s : undefined;
}

export function toEngineError(err: unknown, ctx: DockerCallContext): SwitchyardError {
  if (err instanceof SwitchyardError) return err;
  const status = dockerStatus(err);
  const msg = dockerMessage(err);
  const what = ctx.id ? `${ctx.op} ${ctx.id.slice(0, 12)}` : ctx.op;
  const opts = { cause: err };

  if (status === undefined) {
    const name = prop(err, 'name');
    if (name === 'TimeoutError' || name === 'AbortError') {
      return new SwitchyardError('E_TIMEOUT', `Docker engine at ${ctx.host} did not answer ${what} in time`, opts);
    }
    const code = prop(err, 'code');
    if (typeof code === 'string' && UNREACHABLE.has(code)) {
      return new SwitchyardError('E_UNAVAILABLE', `Docker engine at ${ctx.host} is unreachable (${code})`, opts);
    }
    return new SwitchyardError('E_UNAVAILABLE', `Docker engine at ${ctx.host} failed during ${what}: ${msg}`, opts);
  }
  if (status === 404) {
    if (ctx.op === 'create' && ctx.image !== undefined) {
      return new SwitchyardError('E_NOT_FOUND', `image ${ctx.image} is not present on the Docker host (no registry is reachable: build or load it first)`, {
        details: [msg],
        cause: err,
      });
    }
    return new SwitchyardError('E_NOT_FOUND', ctx.id ? `container ${ctx.id.slice(0, 12)} does not exist` : msg, { details: [msg], cause: err });
  }
  if (PORT_CLASH.test(msg)) {
    return new SwitchyardError('E_CONFLICT', `port clash: ${msg}`, opts);
  }
  if (status === 409) return new SwitchyardError('E_CONFLICT', `Docker refused ${what}: ${msg}`, opts);
  if (status === 400 || (ctx.op === 'start' && /OCI runtime/i.test(msg) && BAD_EXECUTABLE.test(msg))) {
    return new SwitchyardError('E_BAD_ARGS', `Docker refused ${what}: ${msg}`, opts);
  }
  return new SwitchyardError('E_UNAVAILABLE', `Docker engine error during ${what} (HTTP ${status}): ${msg}`, opts);
}
