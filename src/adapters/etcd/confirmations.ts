/**
 * Pending confirmations of destructive commands, shared by every `serve` replica: a Slack
 * button press may reach any of them. One key per confirmation on a lease that ends with
 * it; answering it is a compare-and-swap of that key to an answered record (kept on the
 * same lease), so two presses — on one replica or two — act once, and a late press can
 * be told who answered.
 */
import { randomBytes } from 'node:crypto';
import type { IKeyValue } from 'etcd3';
import { z } from 'zod';
import { registryCall } from './errors.js';
import { putOp, unchanged } from './ops.js';
import type { EtcdRegistry } from './registry.js';

import type { Answer, ConfirmationStore, PendingRequest, TakeResult } from '../../core/confirmations.js';

export type { Answer, PendingRequest, TakeResult };

const recordSchema = z.object({
  user: z.string(),
  channel: z.string(),
  text: z.string(),
  reason: z.string(),
  expiresAt: z.number(),
  answer: z.enum(['confirmed', 'cancelled']).optional(),
  answeredBy: z.string().optional(),
  answeredAt: z.string().optional(),
});

type StoredRecord = z.output<typeof recordSchema>;

const ID_RE = /^[A-Za-z0-9_-]{8,64}$/;

export class EtcdConfirmationStore implements ConfirmationStore {
  constructor(
    private readonly registry: EtcdRegistry,
    private readonly now: () => number = Date.now,
  ) {}

  /** Store a request for `ttlMs`; the id goes into the buttons. */
  async create(request: PendingRequest, ttlMs: number): Promise<{ id: string; expiresAt: number }> {
    const id = randomBytes(12).toString('base64url');
    const expiresAt = this.now() + ttlMs;
    const record: StoredRecord = { ...request, expiresAt };
    const { client, layout } = this.registry;
    await this.call('storing a confirmation', async () => {
      // One second of slack: the deadline is enforced from expiresAt, the lease only cleans up.
      const lease = await client.leaseClient.leaseGrant({ TTL: Math.ceil(ttlMs / 1000) + 1, ID: 0 });
      await client.kv.txn({ compare: [], success: [putOp(layout.confirmKey(id), JSON.stringify(record), lease.ID)], failure: [] });
    });
    return { id, expiresAt };
  }

  /** Answer a request for `presser`: at most one answer ever succeeds. */
  async take(id: string, presser: string, answer: Answer): Promise<TakeResult> {
    if (!ID_RE.test(id)) return { status: 'missing' };
    const key = this.registry.layout.confirmKey(id);
    for (let attempt = 0; attempt < 3; attempt++) {
      const kv = await this.read(key);
      if (!kv) return { status: 'missing' };
      const rec = decode(kv.value.toString());
      if (!rec) return { status: 'missing' };
      if (rec.user !== presser) return { status: 'foreign', user: rec.user };
      if (rec.answer) return { status: 'answered', answer: rec.answer, by: rec.answeredBy ?? rec.user, at: rec.answeredAt ?? '' };
      if (this.now() >= rec.expiresAt) return { status: 'expired' };
      const answered: StoredRecord = { ...rec, answer, answeredBy: presser, answeredAt: new Date(this.now()).toISOString() };
      const res = await this.call('answering a confirmation', () =>
        this.registry.client.kv.txn({
          compare: [unchanged(key, kv)],
          success: [putOp(key, JSON.stringify(answered), kv.lease !== '0' ? kv.lease : undefined)],
          failure: [],
        }),
      );
      if (res.succeeded) return { status: 'taken', request: { user: rec.user, channel: rec.channel, text: rec.text, reason: rec.reason } };
      // Someone answered between our read and write: read again to say who.
    }
    return { status: 'missing' };
  }

  private async read(key: string): Promise<IKeyValue | undefined> {
    const res = await this.call('reading a confirmation', () => this.registry.client.get(key).exec());
    return res.kvs[0];
  }

  private call<T>(action: string, fn: () => Promise<T>): Promise<T> {
    return registryCall(this.registry.endpoints, action, fn);
  }
}

function decode(value: string): StoredRecord | undefined {
  try {
    const r = recordSchema.safeParse(JSON.parse(value));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}
