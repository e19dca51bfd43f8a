/**
 * The public plugin API: everything a command author needs, handed to each plugin factory as
 * `api`, so a plugin needs no import from switchyard (types are published as
 * `switchyard/plugin` for authors who want them). Built-in plugins use only this.
 *
 * Versioned with semver (`PLUGIN_API_VERSION`): a plugin may declare the range it was
 * written for (`apiVersion`) and the loader refuses an incompatible one.
 */
import type { z } from 'zod';
import type { Caller } from './caller.js';
import type { ErrorCode } from './errors.js';
import type { Facades } from './facades.js';
import type { Logger } from './log.js';
import type { Reply, Table } from './reply.js';

export const PLUGIN_API_VERSION = '1.0.0';

export interface CommandContext extends Facades {
  caller: Caller;
  requestId: string;
  /** A child logger carrying request id, user and command. */
  log: Logger;
  /** Report progress on a long command (Slack edits its message in place; the shell prints). */
  progress(text: string): void;
  /** The commands this caller may run here (what `help` lists), including those that need approval. */
  visibleCommands(): readonly CommandDef[];
  /** For `help`: whether `command` needs others' approval before it runs for this caller here. */
  approvalNeeded(command: string): { groups: readonly string[]; count: number } | undefined;
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
  /** Which argument names the service, for ACL `services:` globs. */
  serviceArg?: keyof z.output<S> & string;
  /**
   * The longest the handler may run before it is cut off with a clear reply. Default
   * DEFAULT_COMMAND_TIMEOUT_MS; a function for commands whose own arguments set it (drain --timeout).
   */
  timeoutMs?: number | ((args: z.output<S>) => number);
  /**
   * Why the command needs confirmation (scale to 0, removing the last ready instance…), or
   * undefined. Asked only when the caller did not pass --yes.
   */
  needsConfirmation?(ctx: CommandContext, args: z.output<S>): Promise<string | undefined>;
  /** A plain string is an ok reply with that summary. */
  handler(ctx: CommandContext, args: z.output<S>): Promise<Reply | string>;
}

export const DEFAULT_COMMAND_TIMEOUT_MS = 60_000;

export interface Plugin {
  name: string;
  /** The API range this plugin was written for, e.g. "^1.0.0". Absent: any. */
  apiVersion?: string;
  commands: CommandDef[];
  /** Called once after every plugin is loaded, before commands are served. */
  start?(): Promise<void> | void;
  /** Called once at shutdown; must finish within the shutdown budget (a few seconds). */
  stop?(): Promise<void> | void;
}

/** Argument types: validated the way built-in commands validate them. */
export interface ArgTypes {
  /** `^[a-z0-9][a-z0-9_.-]{0,62}$` */
  service: z.ZodString;
  instance: z.ZodString;
  /** IPv4, [IPv6] or DNS name, then `:port`. */
  address: z.ZodType<string, string>;
  /** `500ms`, `30s`, `2m` → milliseconds. */
  duration: z.ZodType<number, string>;
  /** HAProxy weight 0–256. */
  weight: z.ZodType<number, string>;
  /** An integer in [min, max], written in decimal. */
  int(min: number, max: number): z.ZodType<number, string>;
}

export interface ReplyBuilders {
  text(summary: string, details?: string[]): Reply;
  ok(summary: string, extra?: Omit<Reply, 'ok' | 'summary'>): Reply;
  fail(code: ErrorCode, summary: string, details?: string[]): Reply;
  table(title: string | undefined, header: string[], rows: string[][]): { title?: string; table: Table };
}

export interface ErrorHelpers {
  /** Throw a coded error: the router turns it into a reply with that code. */
  fail(code: ErrorCode, message?: string, opts?: { details?: readonly string[] }): never;
  /** Whether `e` is a switchyard coded error (of `code`, if given). */
  is(e: unknown, code?: ErrorCode): boolean;
  readonly codes: readonly ErrorCode[];
}

/** Keeps the schema's inferred types at the definition site while storing defs uniformly. */
export function defineCommand<S extends z.ZodObject>(def: CommandDef<S>): CommandDef {
  return def as unknown as CommandDef;
}

export interface PluginApi extends Facades {
  /** PLUGIN_API_VERSION. */
  readonly version: string;
  /** The same zod instance switchyard validates with. */
  readonly z: typeof z;
  defineCommand<S extends z.ZodObject>(def: CommandDef<S>): CommandDef;
  readonly args: ArgTypes;
  readonly errors: ErrorHelpers;
  readonly reply: ReplyBuilders;
  /** A command's usage line as help shows it, generated from its schema. */
  usage(cmd: CommandDef): string;
  /**
   * Validate this plugin's `options` (from switchyard.yaml) against `schema`; a mismatch stops
   * start-up (and `check`) with the config file's line.
   */
  options<S extends z.ZodType>(schema: S): z.output<S>;
  /** A logger named after the plugin. */
  readonly log: Logger;
}

/** A plugin module's default export. */
export type PluginFactory = (api: PluginApi, options: unknown) => Plugin | Promise<Plugin>;
