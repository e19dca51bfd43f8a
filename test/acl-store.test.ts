import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AclStore, type AclReloadResult } from '../src/core/acl-store.js';
import { isSwitchyardError } from '../src/core/errors.js';
import type { FeedEvent } from '../src/core/feed.js';

const V1 = `rules:\n  - allow: [status]\n    users: ["*"]\n`;
const V2 = `groups:\n  oncall: [U1]\nrules:\n  - allow: [status]\n    users: ["*"]\n  - allow: [scale]\n    groups: [oncall]\n`;
const INVALID = `rules:\n  - allow: [status]\n    users: ["*"]\n  - allow: [scale]\n    groups: [nope]\n`;

const scale = { userId: 'U1', channel: 'dm', command: 'scale', service: 'web' };
const status = { userId: 'U9', channel: 'C1', command: 'status' };

async function waitFor(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('AclStore', () => {
  let dir: string;
  let file: string;
  let events: FeedEvent[];
  let results: AclReloadResult[];
  let store: AclStore | undefined;
  const feed = { publish: (e: FeedEvent) => void events.push(e) };
  const open = async () => {
    store = await AclStore.load(file, { feed, onReload: (r) => results.push(r), debounceMs: 30 });
    return store;
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchyard-acl-'));
    file = join(dir, 'acl.yaml');
    events = [];
    results = [];
    await writeFile(file, V1);
  });

  afterEach(async () => {
    store?.close();
    store = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('loads a valid file and decides with it', async () => {
    const s = await open();
    expect(s.decide(status)).toMatchObject({ allowed: true, ruleIndex: 0 });
    expect(s.decide(scale).allowed).toBe(false);
    expect(s.ruleCount).toBe(1);
  });

  it('refuses an invalid file at start-up with E_ACL and file:line details', async () => {
    await writeFile(file, INVALID);
    const err = await AclStore.load(file).catch((e: unknown) => e);
    expect(isSwitchyardError(err, 'E_ACL')).toBe(true);
    if (!isSwitchyardError(err)) return;
    expect(err.details).toEqual([`${file}:5: rules.1.groups.0: unknown group "nope" (define it under groups:)`]);
  });

  it('refuses a missing file at start-up', async () => {
    const err = await AclStore.load(join(dir, 'missing.yaml')).catch((e: unknown) => e);
    expect(isSwitchyardError(err, 'E_ACL')).toBe(true);
    if (isSwitchyardError(err)) expect(err.details[0]).toMatch(/missing\.yaml:1: cannot read: ENOENT/);
  });

  it('checks command names when the plugin commands are given', async () => {
    await writeFile(file, `rules:\n  - deny: [scael]\n    users: ["*"]\n`);
    const err = await AclStore.load(file, { knownCommands: ['scale'] }).catch((e: unknown) => e);
    expect(isSwitchyardError(err, 'E_ACL')).toBe(true);
  });

  it('hot-reloads a valid change and announces it', async () => {
    const s = (await open()).watch();
    await writeFile(file, V2);
    await waitFor(() => s.decide(scale).allowed, 'the new rules');
    expect(results).toEqual([{ ok: true, rules: 2, groups: 1 }]);
    await waitFor(() => events.length === 1, 'the feed event');
    expect(events[0]).toMatchObject({ kind: 'acl.reload', text: 'acl.yaml reloaded: 2 rules, 1 group' });
  });

  it('follows an editor that saves by renaming a temp file over the original', async () => {
    const s = (await open()).watch();
    const tmp = join(dir, '.acl.yaml.swp');
    await writeFile(tmp, V2);
    await rename(tmp, file);
    await waitFor(() => s.decide(scale).allowed, 'the renamed-in rules');
    // The watch survives the rename: a second save is picked up too.
    await writeFile(file, V1);
    await waitFor(() => !s.decide(scale).allowed, 'the second save');
  });

  it('keeps the old rules on an invalid change and reports the errors to the feed', async () => {
    const s = (await open()).watch();
    await writeFile(file, INVALID);
    await waitFor(() => results.length === 1, 'the failed reload');
    expect(results[0]).toEqual({ ok: false, errors: [`${file}:5: rules.1.groups.0: unknown group "nope" (define it under groups:)`] });
    expect(events).toHaveLength(1);
    expect(events[0]?.kind).toBe('acl.reload');
    expect(events[0]?.text).toContain('acl.yaml is invalid; keeping the previous rules');
    expect(events[0]?.text).toContain(':5: rules.1.groups.0: unknown group "nope"');
    expect(s.decide(status).allowed).toBe(true);
    expect(s.decide(scale).allowed).toBe(false);
    // Fixing the file brings the new rules in.
    await writeFile(file, V2);
    await waitFor(() => s.decide(scale).allowed, 'the fixed rules');
    expect(results.map((r) => r.ok)).toEqual([false, true]);
  });

  it('treats a deleted file as invalid and keeps the rules', async () => {
    const s = await open();
    await rm(file);
    const r = await s.reload();
    expect(r?.ok).toBe(false);
    expect(s.decide(status).allowed).toBe(true);
    await writeFile(file, V1);
    expect(await s.reload()).toEqual({ ok: true, rules: 1, groups: 0 });
  });

  it('skips a save that does not change the content', async () => {
    const s = await open();
    await writeFile(file, V1);
    expect(await s.reload()).toBeUndefined();
    expect(events).toEqual([]);
  });

  it('stops watching on close', async () => {
    const s = (await open()).watch();
    // A witness watching the same file: once it has the new rules, the change was seen and
    // debounced, so the closed store has had every chance to react.
    const witness = (await AclStore.load(file, { debounceMs: 30 })).watch();
    try {
      s.close();
      await writeFile(file, V2);
      await waitFor(() => witness.decide(scale).allowed, 'the witness to reload');
    } finally {
      witness.close();
    }
    await s.idle();
    expect(s.decide(scale).allowed).toBe(false);
    expect(events).toEqual([]);
    expect(results).toEqual([]);
  });
});
