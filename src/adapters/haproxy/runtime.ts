/**
 * HAProxy runtime API (admin socket) client: typed commands, HAProxy's reply text turned
 * into coded SwitchyardErrors that carry HAProxy's own message.
 *
 * Every name and address sent here must already have passed NAME_RE / parseHostPort
 * (the model builder guarantees it); `assertSafe` re-checks cheaply because a command
 * line is the one place where a stray space or newline would change meaning.
 */
import { SwitchyardError, type ErrorCode } from '../../core/errors.js';
import { NAME_RE } from '../../core/names.js';
import type { InstanceState } from '../../core/registry.js';
import { exchange, exchangeMany, type ExchangeOptions } from './socket.js';
import { parseInfo, parseServersState, parseStatCsv, type ServerStateRow, type StatRow } from './runtime-parse.js';

export type RuntimeState = InstanceState;

export interface AddServerOptions {
  weight: number;
  /** Health-check the server ("check"); enable with enableHealth() after adding. */
  check?: boolean;
  /** Check interval in ms ("inter"). */
  interMs?: number;
}

/** A command and how to judge its reply. */
export interface RuntimeCommand {
  line: string;
  /** Reply text that means success; anything else is an error. */
  expect: RegExp;
}

const EMPTY = /^\s*$/;

// HAProxy's reply texts (2.6) → our codes. Matched only here, at the boundary; callers
// branch on the code.
const REPLY_CODES: [RegExp, ErrorCode][] = [
  [/^No such (backend|server)/i, 'E_NOT_FOUND'],
  [/Already exists a server/i, 'E_CONFLICT'],
  [/still has connections attached/i, 'E_CONFLICT'],
  [/Only servers in maintenance mode can be deleted/i, 'E_CONFLICT'],
  [/dynamic load balancing/i, 'E_CONFLICT'],
  [/Permission denied/i, 'E_DENIED'],
  [/^Unknown command/i, 'E_INTERNAL'],
];

export function replyError(command: string, reply: string): SwitchyardError {
  const lines = reply
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const first = lines[0] ?? '(empty reply)';
  const code = REPLY_CODES.find(([re]) => re.test(first))?.[1] ?? 'E_INTERNAL';
  return new SwitchyardError(code, `HAProxy refused "${command}": ${first}`, { details: lines.slice(1, 6) });
}

function assertSafe(...tokens: string[]): void {
  for (const t of tokens) {
    if (!/^[A-Za-z0-9_.:[\]-]+$/.test(t)) throw new SwitchyardError('E_INTERNAL', `unsafe token for the HAProxy CLI: ${JSON.stringify(t)}`);
  }
}

function target(backend: string, server: string): string {
  if (!NAME_RE.test(server)) throw new SwitchyardError('E_INTERNAL', `unsafe server name for the HAProxy CLI: ${JSON.stringify(server)}`);
  assertSafe(backend);
  return `${backend}/${server}`;
}

function weightArg(weight: number): string {
  if (!Number.isInteger(weight) || weight < 0 || weight > 256) throw new SwitchyardError('E_BAD_ARGS', `HAProxy weights are 0-256, got ${weight}`);
  return String(weight);
}

/** `[v6]` for IPv6 literals, so `host:port` stays unambiguous. */
export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Command builders: pure, shared by the client and by batch execution. */
export const commands = {
  addServer(backend: string, name: string, host: string, port: number, opts: AddServerOptions): RuntimeCommand {
    assertSafe(host);
    const args = [`add server ${target(backend, name)} ${formatAddress(host, port)}`];
    if (opts.check) args.push('check');
    if (opts.check && opts.interMs !== undefined) args.push(`inter ${Math.max(1, Math.round(opts.interMs))}`);
    args.push(`weight ${weightArg(opts.weight)}`);
    return { line: args.join(' '), expect: /^New server registered/ };
  },
  enableServer: (b: string, s: string): RuntimeCommand => ({ line: `enable server ${target(b, s)}`, expect: EMPTY }),
  enableHealth: (b: string, s: string): RuntimeCommand => ({ line: `enable health ${target(b, s)}`, expect: EMPTY }),
  setState: (b: string, s: string, state: RuntimeState): RuntimeCommand => ({ line: `set server ${target(b, s)} state ${state}`, expect: EMPTY }),
  setWeight: (b: string, s: string, weight: number): RuntimeCommand => ({ line: `set server ${target(b, s)} weight ${weightArg(weight)}`, expect: EMPTY }),
  setAddr(b: string, s: string, ip: string, port: number): RuntimeCommand {
    assertSafe(ip);
    return { line: `set server ${target(b, s)} addr ${ip} port ${port}`, expect: /^(\s*$|IP changed|no need to change|port changed)/ };
  },
  shutdownSessions: (b: string, s: string): RuntimeCommand => ({ line: `shutdown sessions server ${target(b, s)}`, expect: EMPTY }),
  delServer: (b: string, s: string): RuntimeCommand => ({ line: `del server ${target(b, s)}`, expect: /^Server deleted/ }),
};

export interface BatchReply {
  command: RuntimeCommand;
  error?: SwitchyardError;
}

export class HaproxyRuntime {
  constructor(
    readonly socketPath: string,
    private readonly opts: { timeoutMs?: number } = {},
  ) {}

  private xopts(): ExchangeOptions {
    return { what: 'admin socket', ...(this.opts.timeoutMs ? { timeoutMs: this.opts.timeoutMs } : {}) };
  }

  /** Raw command; the reply text as HAProxy wrote it. */
  raw(line: string): Promise<string> {
    return exchange(this.socketPath, line, this.xopts());
  }

  async run(cmd: RuntimeCommand): Promise<void> {
    const reply = await this.raw(cmd.line);
    if (!cmd.expect.test(reply)) throw replyError(cmd.line, reply);
  }

  /**
   * Several commands on one connection. Never throws for a refused command — each reply
   * carries its own error — only when the socket itself fails.
   */
  async batch(cmds: RuntimeCommand[]): Promise<BatchReply[]> {
    const replies = await exchangeMany(
      this.socketPath,
      cmds.map((c) => c.line),
      this.xopts(),
    );
    return cmds.map((command, i) => {
      const reply = replies[i] ?? '';
      return command.expect.test(reply) ? { command } : { command, error: replyError(command.line, reply) };
    });
  }

  async showServersState(backend?: string): Promise<ServerStateRow[]> {
    if (backend !== undefined) assertSafe(backend);
    const reply = await this.raw(backend === undefined ? 'show servers state' : `show servers state ${backend}`);
    if (!reply.startsWith('1\n')) throw replyError('show servers state', reply);
    return parseServersState(reply);
  }

  /** The raw text of `show servers state`, which is exactly the server-state-file format. */
  async dumpServersState(): Promise<string> {
    const reply = await this.raw('show servers state');
    if (!reply.startsWith('1\n')) throw replyError('show servers state', reply);
    return reply;
  }

  /** Names of the backends of the running process (`show backend`). */
  async showBackends(): Promise<Set<string>> {
    const reply = await this.raw('show backend');
    if (!reply.startsWith('#')) throw replyError('show backend', reply);
    return new Set(
      reply
        .split('\n')
        .slice(1)
        .map((l) => l.trim())
        .filter((l) => l !== ''),
    );
  }

  async showStat(): Promise<StatRow[]> {
    const reply = await this.raw('show stat');
    if (!reply.startsWith('# ')) throw replyError('show stat', reply);
    return parseStatCsv(reply);
  }

  async showInfo(): Promise<Record<string, string>> {
    return parseInfo(await this.raw('show info'));
  }

  /** PID of the worker answering on this socket. */
  async workerPid(): Promise<number> {
    const pid = Number((await this.showInfo()).Pid);
    if (!Number.isInteger(pid) || pid <= 0) throw new SwitchyardError('E_INTERNAL', '"show info" did not report a Pid');
    return pid;
  }

  addServer(backend: string, name: string, host: string, port: number, opts: AddServerOptions): Promise<void> {
    return this.run(commands.addServer(backend, name, host, port, opts));
  }
  enableServer(backend: string, name: string): Promise<void> {
    return this.run(commands.enableServer(backend, name));
  }
  enableHealth(backend: string, name: string): Promise<void> {
    return this.run(commands.enableHealth(backend, name));
  }
  setServerState(backend: string, name: string, state: RuntimeState): Promise<void> {
    return this.run(commands.setState(backend, name, state));
  }
  setServerWeight(backend: string, name: string, weight: number): Promise<void> {
    return this.run(commands.setWeight(backend, name, weight));
  }
  setServerAddr(backend: string, name: string, ip: string, port: number): Promise<void> {
    return this.run(commands.setAddr(backend, name, ip, port));
  }
  shutdownSessions(backend: string, name: string): Promise<void> {
    return this.run(commands.shutdownSessions(backend, name));
  }
  /** HAProxy deletes only servers in maintenance with no connections: see removeServer. */
  delServer(backend: string, name: string): Promise<void> {
    return this.run(commands.delServer(backend, name));
  }
}
