/**
 * One feed poster among `serve` replicas: the etcd Go client's election recipe. Each
 * candidate puts a key on its own lease under one directory; the candidate whose key is
 * oldest leads, every other one watches the key created just before its own. A replica
 * that dies stops renewing its lease, etcd deletes its key after the TTL and the next
 * candidate is elected; one that stops resigns (revokes its lease) and the next one is
 * elected at once.
 *
 * Not etcd3's Election: its Campaign.resign() revokes the lease but leaves the watch on
 * the leader's key open, so a standby that stopped kept its gRPC connection (and the
 * process) alive forever. Here every watch a candidate opens is cancelled when it resigns.
 * The keys are etcd3's (`<dir>election/poster/<lease>`), so replicas of either kind agree
 * during a rolling upgrade.
 *
 * etcd3 reports a lost lease only after twice the TTL without contact, by which time a
 * successor may long be posting; so a term is checked against etcd (its key still exists)
 * before each post, and the position is written only while the key exists (fencing).
 */
import type { Etcd3, Lease, Watcher } from 'etcd3';
import type { Logger } from '../../core/log.js';
import type { PosterElection, PosterTerm } from '../../feed/ports.js';
import { toRegistryError } from './errors.js';
import type { KeyLayout } from './keys.js';

export class EtcdPosterTerm implements PosterTerm {
  constructor(
    private readonly client: Etcd3,
    /** The candidate key (carries the lease): exists exactly while this term lasts. */
    readonly key: string,
    readonly replica: string,
    private readonly endpoints: readonly string[],
  ) {}

  async isCurrent(): Promise<boolean> {
    try {
      return (await this.client.get(this.key).exists()) ?? false;
    } catch (err) {
      throw toRegistryError(err, this.endpoints, 'checking the feed poster role');
    }
  }
}

export interface EtcdPosterElectionOptions {
  client: Etcd3;
  layout: KeyLayout;
  endpoints: readonly string[];
  /** Unique per process; shown as the leader's value. */
  replica: string;
  /** Lease TTL in seconds: how long a dead poster holds the role. Default 10. */
  ttlSec?: number;
  /** Delay before campaigning again after a failed campaign. Default 1 s doubling to 10 s. */
  retry?: { minMs: number; maxMs: number };
  log: Logger;
  /** Which feed's poster role is campaigned for: 'poster' (the single feed, default), 'poster-<channel>'. */
  role?: string;
  /** The candidate directory itself, for elections that are not the feed's (the history recorder). */
  dir?: string;
}

/** How long resigning waits for etcd to confirm a watch cancel (the watch is inert either way). */
const CANCEL_WAIT_MS = 1000;

export class EtcdPosterElection implements PosterElection {
  private candidacy: Candidacy | undefined;
  private term: EtcdPosterTerm | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;
  private handlers: Parameters<PosterElection['run']>[0] | undefined;
  private readonly log: Logger;

  constructor(private readonly o: EtcdPosterElectionOptions) {
    this.log = o.log.child({ component: 'feed-election', replica: o.replica });
  }

  /** The candidate directory: etcd3's Election layout, kept for mixed-version replicas. */
  private get dir(): string {
    return this.o.dir ?? `${this.o.layout.feedElectionDir()}election/${this.o.role ?? 'poster'}/`;
  }

  run(handlers: Parameters<PosterElection['run']>[0]): void {
    this.handlers = handlers;
    this.stopped = false;
    this.campaignNow();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const candidacy = this.candidacy;
    this.candidacy = undefined;
    this.end();
    if (!candidacy) return;
    try {
      // Revoking the lease deletes our key: the next candidate is elected at once.
      await candidacy.resign();
    } catch (err) {
      const error = toRegistryError(err, this.o.endpoints, 'resigning as feed poster');
      this.log.warn({ err: error }, 'could not resign as feed poster; the role passes on when the lease expires');
    }
  }

  private campaignNow(): void {
    if (this.stopped) return;
    const candidacy = new Candidacy(this.o.client, this.dir, this.o.replica, this.o.ttlSec ?? 10, (err) => this.fail(candidacy, err));
    this.candidacy = candidacy;
    candidacy.elected().then(
      (key) => {
        if (this.candidacy !== candidacy || this.stopped) return;
        this.failures = 0;
        this.term = new EtcdPosterTerm(this.o.client, key, this.o.replica, this.o.endpoints);
        this.log.info({ key }, 'elected feed poster');
        this.handlers?.elected(this.term);
      },
      (err: unknown) => this.fail(candidacy, err),
    );
  }

  private fail(candidacy: Candidacy, err: unknown): void {
    if (this.candidacy !== candidacy) return;
    this.candidacy = undefined;
    const error = toRegistryError(err, this.o.endpoints, 'campaigning for the feed poster role');
    this.end(error);
    candidacy.resign().catch((e: unknown) => this.log.debug({ err: e }, 'resigning a failed campaign failed'));
    if (this.stopped) return;
    const retry = this.o.retry ?? { minMs: 1000, maxMs: 10_000 };
    const delay = Math.min(retry.maxMs, retry.minMs * 2 ** Math.min(this.failures++, 16));
    this.log.warn({ err: error, retryInMs: delay }, 'feed poster campaign failed; campaigning again');
    this.timer = setTimeout(() => this.campaignNow(), delay);
  }

  private end(err?: Error): void {
    const term = this.term;
    this.term = undefined;
    if (term) this.handlers?.lost(term, err);
  }
}

class Resigned extends Error {
  constructor() {
    super('resigned from the campaign');
  }
}

/** One campaign: a key on a lease, from put to resignation. */
class Candidacy {
  private readonly lease: Lease;
  private resigned = false;
  /** Ends the current wait for an older candidate's key to go. */
  private wake: (() => void) | undefined;
  private cancelling: Promise<void> = Promise.resolve();

  constructor(
    private readonly client: Etcd3,
    private readonly dir: string,
    private readonly value: string,
    ttlSec: number,
    onLost: (err: Error) => void,
  ) {
    // Kept alive until resign(); registry.close() revokes it too if we never get there.
    this.lease = client.lease(ttlSec);
    this.lease.on('lost', onLost);
  }

  /** Resolves with our key once every older candidate's key is gone. */
  async elected(): Promise<string> {
    const id = await this.lease.grant();
    if (this.resigned) throw new Resigned();
    const key = `${this.dir}${id}`;
    const res = await this.client.if(key, 'Create', '==', 0).then(this.client.put(key).value(this.value).lease(id)).else(this.client.get(key)).commit();
    // Our key exists already when a retried put had landed the first time.
    const created = res.succeeded ? res.header.revision : res.responses[0]?.response_range?.kvs[0]?.create_revision;
    if (created === undefined) throw new Error(`the candidate key ${key} vanished as it was written`);
    for (;;) {
      if (this.resigned) throw new Resigned();
      // The candidate just before us: when its key goes, we may be next (or it was the leader).
      const older = await this.client
        .getAll()
        .prefix(this.dir)
        .maxCreateRevision((BigInt(created) - 1n).toString())
        .sort('Create', 'Descend')
        .limit(1)
        .exec();
      const next = older.kvs[0];
      if (!next) break;
      await this.waitForDelete(next.key, (BigInt(older.header.revision) + 1n).toString());
    }
    if (this.resigned) throw new Resigned();
    // Our lease may have expired while we waited (etcd away for longer than the TTL).
    if (!(await this.client.get(key).exists())) throw new Error(`the candidate key ${key} expired while waiting to be elected`);
    return key;
  }

  /** Stop waiting, cancel the watch and revoke the lease (which deletes our key). */
  async resign(): Promise<void> {
    if (this.resigned) return;
    this.resigned = true;
    this.wake?.();
    await Promise.all([this.lease.revoke(), this.cancelling]);
  }

  private async waitForDelete(key: Buffer, fromRevision: string): Promise<void> {
    const watcher = this.client.watch().key(key).startRevision(fromRevision).only('delete').watcher();
    try {
      await new Promise<void>((resolve, reject) => {
        watcher.on('delete', () => resolve());
        // Canceled by etcd (history compacted): this campaign fails and a new one starts.
        watcher.on('error', reject);
        this.wake = resolve;
        if (this.resigned) resolve();
      });
    } finally {
      this.wake = undefined;
      this.cancelling = cancel(watcher);
    }
  }
}

/** Cancel a watcher, waiting for etcd's confirmation at most CANCEL_WAIT_MS. */
async function cancel(watcher: Watcher): Promise<void> {
  watcher.removeAllListeners();
  // An 'error' without a listener would be thrown.
  watcher.on('error', () => undefined);
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<void>((resolve) => (timer = setTimeout(resolve, CANCEL_WAIT_MS)));
  try {
    await Promise.race([watcher.cancel().catch(() => undefined), gaveUp]);
  } finally {
    clearTimeout(timer);
  }
}
