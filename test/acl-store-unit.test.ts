/**
 * AclStore.reload called directly, without the file watcher: what each reload returns and
 * announces, how a missing file and its return are told apart from an unchanged save, and
 * that a closed store reads nothing. test/acl-store.test.ts covers the watcher; this file
 * pins the decisions behind it (mutation testing, docs/TESTING.md). Each test makes its own
 * directory and removes it in `finally`.
 */
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AclStore, type AclReloadResult } from '../src/core/acl-store.js';
import type { FeedEvent } from '../src/core/feed.js';

const ONE = `rules:\n  - allow: [status]\n    users: ["*"]\n`;
const TWO = `groups:\n  oncall: [U1]\n  leads: [U2]\nrules:\n  - allow: [status]\n    users: ["*"]\n  - allow: [scale]\n    groups: [oncall]\n`;
const SINGLE_GROUP = `groups:\n  oncall: [U1]\nrules:\n  - allow: [scale]\n    groups: [oncall]\n`;
const scale = { userId: 'U1', channel: 'C1', command: 'scale', service: 'web' };

async function withAclFile(text: string, fn: (file: string, store: AclStore, events: FeedEvent[], results: AclReloadResult[]) => Promise<void>) {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-acl-unit-'));
  const file = join(dir, 'acl.yaml');
  const events: FeedEvent[] = [];
  const results: AclReloadResult[] = [];
  let store: AclStore | undefined;
  try {
    await writeFile(file, text);
    store = await AclStore.load(file, { feed: { publish: (e) => void events.push(e) }, onReload: (r) => results.push(r) });
    await fn(file, store, events, results);
  } finally {
    store?.close();
    await rm(dir, { recursive: true, force: true });
  }
}

describe('AclStore.reload', () => {
  it('an unchanged file is no reload: nothing returned, nothing announced', async () => {
    await withAclFile(ONE, async (_file, store, events, results) => {
      expect(await store.reload()).toBeUndefined();
      expect(events).toEqual([]);
      expect(results).toEqual([]);
    });
  });

  it('a valid change takes effect and is announced with counts, singular and plural', async () => {
    await withAclFile(ONE, async (file, store, events, results) => {
      await writeFile(file, TWO);
      expect(await store.reload()).toEqual({ ok: true, rules: 2, groups: 2 });
      expect(store.decide(scale).allowed).toBe(true);
      expect(store.ruleCount).toBe(2);
      await writeFile(file, SINGLE_GROUP);
      expect(await store.reload()).toEqual({ ok: true, rules: 1, groups: 1 });
      expect(events.map((e) => [e.kind, e.text])).toEqual([
        ['acl.reload', 'acl.yaml reloaded: 2 rules, 2 groups'],
        ['acl.reload', 'acl.yaml reloaded: 1 rule, 1 group'],
      ]);
      expect(events[0]?.at).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect(results).toHaveLength(2);
    });
  });

  it('a missing file keeps the rules and says why; the same file back is announced again', async () => {
    await withAclFile(TWO, async (file, store, events) => {
      await unlink(file);
      const gone = await store.reload();
      expect(gone).toEqual({ ok: false, errors: [`${file}:1: cannot read: ENOENT`] });
      expect(events.at(-1)?.text).toBe(`acl.yaml is invalid; keeping the previous rules:\n${file}:1: cannot read: ENOENT`);
      expect(store.decide(scale).allowed).toBe(true);
      await writeFile(file, TWO);
      expect(await store.reload()).toEqual({ ok: true, rules: 2, groups: 2 });
      expect(events).toHaveLength(2);
    });
  });

  it('two reloads at once read one after the other: the second finds nothing new', async () => {
    await withAclFile(ONE, async (file, store) => {
      await writeFile(file, TWO);
      const [first, second] = await Promise.all([store.reload(), store.reload()]);
      expect(first).toEqual({ ok: true, rules: 2, groups: 2 });
      expect(second).toBeUndefined();
      await store.idle();
    });
  });

  it('a closed store reads nothing', async () => {
    await withAclFile(ONE, async (file, store, events) => {
      store.close();
      await writeFile(file, TWO);
      expect(await store.reload()).toBeUndefined();
      expect(store.decide(scale).allowed).toBe(false);
      expect(events).toEqual([]);
      expect(store.watch()).toBe(store);
    });
  });
});
