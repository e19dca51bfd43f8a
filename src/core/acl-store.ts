import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { AclDecision, AclEvaluator, AclRequest } from './acl-types.js';
import { parseAcl, type CompiledAcl, type ParseAclOptions } from './acl.js';
import { SwitchyardError } from './errors.js';
import type { FeedSink } from './feed.js';

export type AclReloadResult = { ok: true; rules: number; groups: number } | { ok: false; errors: string[] };

export interface AclStoreOptions extends ParseAclOptions {
  /** #ops: every reload, good or bad, is announced as `acl.reload`. */
  feed?: FeedSink;
  onReload?: (result: AclReloadResult) => void;
  /** Editors write in several steps (truncate, write, rename); wait for quiet before reading. */
  debounceMs?: number;
  /** Failures outside a reload (the watcher itself erroring). Defaults to a process warning. */
  onError?: (err: unknown) => void;
}

/**
 * The live ACL: delegates every decision to the last valid compiled file. An invalid new
 * file never replaces good rules; it is reported and the old rules stay in force.
 */
export class AclStore implements AclEvaluator {
  private current: CompiledAcl;
  /** The text last evaluated (valid or not), so unchanged saves and repeated events are no-ops. */
  private lastText: string | undefined;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private queue: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly opts: AclStoreOptions,
    initial: CompiledAcl,
    text: string,
  ) {
    this.current = initial;
    this.lastText = text;
  }

  /** Read and validate the file; throws E_ACL with `file:line` details so start-up fails loudly. */
  static async load(path: string, opts: AclStoreOptions = {}): Promise<AclStore> {
    const text = await readText(path);
    const result = text.ok ? parseAcl(text.text, path, opts) : text;
    if (!result.ok) throw new SwitchyardError('E_ACL', `invalid acl file ${path}`, { details: result.errors });
    return new AclStore(resolve(path), opts, result.value, text.ok ? text.text : '');
  }

  decide(req: AclRequest): AclDecision {
    return this.current.decide(req);
  }

  get ruleCount(): number {
    return this.current.ruleCount;
  }

  /**
   * Start watching. The directory is watched, not the file: editors that save by writing a
   * temp file and renaming it over the original would leave a file watch on a dead inode.
   */
  watch(): this {
    if (this.watcher || this.closed) return this;
    const name = basename(this.path);
    this.watcher = watch(dirname(this.path), { persistent: false }, (_event, filename) => {
      // Some platforms omit the name; the content comparison makes a spurious reload harmless.
      if (filename === null || filename.toString() === name) this.schedule();
    });
    this.watcher.on('error', (err) => this.reportError(err));
    return this;
  }

  /** Re-read the file now (also what the watcher triggers). Serialised: never two reads at once. */
  reload(): Promise<AclReloadResult | undefined> {
    const run = this.queue.then(() => this.reloadOnce());
    this.queue = run.then(
      () => undefined,
      () => undefined, // the rejection is delivered to reload()'s caller below
    );
    return run;
  }

  /** Resolves once any scheduled or running reload has finished. */
  async idle(): Promise<void> {
    while (this.timer) await new Promise((r) => setTimeout(r, 10));
    await this.queue;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.watcher?.close();
    this.watcher = undefined;
  }

  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.reload().catch((err: unknown) => this.reportError(err));
    }, this.opts.debounceMs ?? 100);
  }

  /** Returns undefined when nothing changed. */
  private async reloadOnce(): Promise<AclReloadResult | undefined> {
    if (this.closed) return undefined;
    const text = await readText(this.path);
    if (text.ok && text.text === this.lastText) return undefined;
    // After a failed read the file reappearing with the old content must be re-announced.
    this.lastText = text.ok ? text.text : undefined;
    const parsed = text.ok ? parseAcl(text.text, this.path, this.opts) : text;
    let result: AclReloadResult;
    if (parsed.ok) {
      this.current = parsed.value;
      result = { ok: true, rules: parsed.value.ruleCount, groups: parsed.value.groupCount };
    } else {
      result = { ok: false, errors: parsed.errors };
    }
    this.announce(result);
    return result;
  }

  private announce(result: AclReloadResult): void {
    const name = basename(this.path);
    const text = result.ok
      ? `${name} reloaded: ${plural(result.rules, 'rule')}, ${plural(result.groups, 'group')}`
      : `${name} is invalid; keeping the previous rules:\n${result.errors.join('\n')}`;
    this.opts.feed?.publish({ kind: 'acl.reload', text, at: new Date().toISOString() });
    this.opts.onReload?.(result);
  }

  private reportError(err: unknown): void {
    if (this.opts.onError) this.opts.onError(err);
    else process.emitWarning(`acl watcher: ${err instanceof Error ? err.message : String(err)}`);
  }
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

async function readText(path: string): Promise<{ ok: true; text: string } | { ok: false; errors: string[] }> {
  try {
    return { ok: true, text: await readFile(path, 'utf8') };
  } catch (e) {
    return { ok: false, errors: [`${path}:1: cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`] };
  }
}
