/**
 * Execute reconciliation ops on the admin socket, all in one pipelined session.
 *
 * Removal is the one op that may have to wait: HAProxy deletes a server only in
 * maintenance and with no connection attached. It is put in maintenance at once (no new
 * traffic) and deleted as soon as its sessions end; after `removeGraceMs` the remaining
 * sessions are shut down so a forgotten long-poll cannot keep a dead server forever.
 */
import type { RuntimeOp } from './reconcile.js';
import { commands, type HaproxyRuntime, type RuntimeCommand } from './runtime.js';

export interface OpsOutcome {
  /** Errors as HAProxy worded them (one per failed op). */
  errors: string[];
  /** Servers in maintenance whose deletion waits for their sessions to end. */
  pending: string[];
}

export interface OpsOptions {
  checkInterMs: number;
  removeGraceMs: number;
  /** `${backend}/${server}` → when its removal was first refused. Kept by the caller across applies. */
  pendingSince: Map<string, number>;
  now?: () => number;
}

function commandsFor(op: RuntimeOp, opts: OpsOptions, now: number): RuntimeCommand[] {
  switch (op.kind) {
    case 'add': {
      const s = op.server;
      const cmds = [commands.addServer(op.backend, s.name, s.host, s.port, { weight: s.weight, check: true, interMs: opts.checkInterMs })];
      // New servers start in maintenance; "set state drain" also lifts maintenance.
      if (s.state === 'ready') cmds.push(commands.enableServer(op.backend, s.name));
      if (s.state === 'drain') cmds.push(commands.setState(op.backend, s.name, 'drain'));
      // Health checks of a dynamic server are off until enabled, whatever "check" says.
      cmds.push(commands.enableHealth(op.backend, s.name));
      return cmds;
    }
    case 'remove': {
      const key = `${op.backend}/${op.name}`;
      const since = opts.pendingSince.get(key);
      const cmds = [commands.setState(op.backend, op.name, 'maint')];
      if (since !== undefined && now - since >= opts.removeGraceMs) cmds.push(commands.shutdownSessions(op.backend, op.name));
      cmds.push(commands.delServer(op.backend, op.name));
      return cmds;
    }
    case 'state':
      return [commands.setState(op.backend, op.name, op.state)];
    case 'weight':
      return [commands.setWeight(op.backend, op.name, op.weight)];
    case 'addr':
      return [commands.setAddr(op.backend, op.name, op.host, op.port)];
  }
}

export async function executeOps(runtime: HaproxyRuntime, ops: RuntimeOp[], opts: OpsOptions): Promise<OpsOutcome> {
  const now = (opts.now ?? Date.now)();
  const plan = ops.map((op) => ({ op, cmds: commandsFor(op, opts, now) }));
  const replies = await runtime.batch(plan.flatMap((p) => p.cmds));
  const errors: string[] = [];
  const pending: string[] = [];
  let i = 0;
  const removing = new Set<string>();
  for (const { op, cmds } of plan) {
    const mine = replies.slice(i, i + cmds.length);
    i += cmds.length;
    if (op.kind === 'remove') {
      const key = `${op.backend}/${op.name}`;
      removing.add(key);
      const del = mine[mine.length - 1];
      const delCode = del?.error?.code;
      if (!del?.error || delCode === 'E_NOT_FOUND') {
        opts.pendingSince.delete(key);
      } else if (delCode === 'E_CONFLICT') {
        if (!opts.pendingSince.has(key)) opts.pendingSince.set(key, now);
        pending.push(op.label);
      } else {
        errors.push(del.error.message);
      }
      continue;
    }
    const failed = mine.find((r) => r.error);
    if (failed?.error) errors.push(failed.error.message);
  }
  // A server no longer being removed (re-registered, or gone with a reload) is not pending.
  for (const key of [...opts.pendingSince.keys()]) if (!removing.has(key)) opts.pendingSince.delete(key);
  return { errors, pending };
}
