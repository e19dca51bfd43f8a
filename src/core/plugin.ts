import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Caller } from './caller.js';
import type { FeedSink } from './feed.js';
import type { Registry } from './registry.js';
import type { Reply } from './reply.js';
import type { Config } from '../config/schema.js';
import type { ContainerEngine } from '../adapters/docker/types.js';
import type { ServiceLocks, SessionCounter } from '../orchestrator/ports.js';
import type { HaproxyControl } from '../agent/control.js';
import type { AgentReports } from '../agent/reports.js';

/** Everything a handler may touch. Adapters are injected so tests can swap them. */
export interface Services {
  registry: Registry;
  feed: FeedSink;
  config: Config;
  /** The Docker engine, when `docker:` is configured (scale, container columns in status). */
  containers?: ContainerEngine;
  /** Per-service locks (etcd) serialising scale and drain. */
  locks?: ServiceLocks;
  /** Current sessions per instance (HAProxy), for scale-down to wait on; without it a grace is waited. */
  sessions?: SessionCounter;
  // HAProxy (issue 3):
  /** This process's own HAProxy agent, when `haproxy:` is configured (render, drain sessions, status). */
  haproxy?: HaproxyControl;
  /** Every agent's last apply result (`<switchyardPrefix>/agents/*`), for status. */
  agents?: AgentReports;
}

export interface CommandContext {
  caller: Caller;
  requestId: string;
  log: Logger;
  services: Services;
  /** Report progress on a long command (Slack updates its message in place; the shell prints). */
  progress(text: string): void;
  /** The help catalogue filtered for this caller (used by the help command). */
  visibleCommands(): readonly CommandDef[];
}

/**
 * One command. `args` is a zod object: keys listed in `positionals` are taken in order from
 * the command line, every other key is a `--flag`. Usage and help are generated from it.
 */
export interface CommandDef<S extends z.ZodObject = z.ZodObject> {
  name: string;
  summary: string;
  args: S;
  positionals: readonly (keyof z.output<S> & string)[];
  /** Changes state (audited as such, never executed twice for a retried event). */
  mutating: boolean;
  /** Which argument names the service, for ACL `services:` globs. */
  serviceArg?: keyof z.output<S> & string;
  /**
   * Returns why the command needs confirmation (scale to 0, removing the last ready
   * instance…), or undefined. Asked only when the caller did not pass --yes.
   */
  needsConfirmation?(ctx: CommandContext, args: z.output<S>): Promise<string | undefined>;
  handler(ctx: CommandContext, args: z.output<S>): Promise<Reply>;
}

export interface Plugin {
  name: string;
  commands: CommandDef[];
}

/** Plugins are plain functions (probot-style) loaded in order. */
export type PluginFactory = () => Plugin;

/** Keeps the schema's inferred types at the definition site while storing defs uniformly. */
export function defineCommand<S extends z.ZodObject>(def: CommandDef<S>): CommandDef {
  return def as unknown as CommandDef;
}
