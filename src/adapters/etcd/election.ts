/**
 * One feed poster among `serve` replicas: etcd3's Election (the Go client's recipe: a key
 * per candidate on its own lease; the oldest key leads). A replica that dies stops renewing
 * its lease, etcd deletes its key after the TTL and the next candidate is elected.
 *
 * etcd3 reports a lost lease only after twice the TTL without contact, by which time a
 * successor may long be posting; so a term is checked against etcd (its key still exists)
 * before each post, and the position is written only while the key exists (fencing).
 */
import type { Etcd3 } from 'etcd3';
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
}

type Campaign = ReturnType<ReturnType<Etcd3['election']>['campaign']>;

export class EtcdPosterElection implements PosterElection {
  private campaign: Campaign | undefined;
  private term: EtcdPosterTerm | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;
  private handlers: Parameters<PosterElection['run']>[0] | undefined;
  private readonly log: Logger;

  constructor(private readonly o: EtcdPosterElectionOptions) {
    this.log = o.log.child({ component: 'feed-election', replica: o.replica });
  }

  run(handlers: Parameters<PosterElection['run']>[0]): void {
    this.handlers = handlers;
    this.stopped = false;
    this.campaignNow();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const campaign = this.campaign;
    this.campaign = undefined;
    this.end();
    if (!campaign) return;
    try {
      // Revoking the lease deletes our key: the next candidate is elected at once.
      await campaign.resign();
    } catch (err) {
      this.log.warn({ err }, 'could not resign as feed poster; the role passes on when the lease expires');
    }
  }

  private campaignNow(): void {
    if (this.stopped) return;
    const election = this.o.client.namespace(this.o.layout.feedElectionDir()).election('poster', this.o.ttlSec ?? 10);
    const campaign = election.campaign(this.o.replica);
    this.campaign = campaign;
    let failed = false;
    campaign.on('elected', () => {
      campaign
        .getCampaignKey()
        .then((key) => {
          // The full key: the election's namespace prefix included.
          if (this.campaign !== campaign || this.stopped) return;
          this.failures = 0;
          this.term = new EtcdPosterTerm(this.o.client, key, this.o.replica, this.o.endpoints);
          this.log.info({ key }, 'elected feed poster');
          this.handlers?.elected(this.term);
        })
        .catch((err: unknown) => this.fail(campaign, err));
    });
    campaign.on('error', (err: Error) => {
      if (failed) return;
      failed = true;
      this.fail(campaign, err);
    });
  }

  private fail(campaign: Campaign, err: unknown): void {
    if (this.campaign !== campaign) return;
    this.campaign = undefined;
    const error = toRegistryError(err, this.o.endpoints, 'campaigning for the feed poster role');
    this.end(error);
    campaign.resign().catch((e: unknown) => this.log.debug({ err: e }, 'resigning a failed campaign failed'));
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
