/**
 * Approval requests in etcd, shared by every `serve` replica and kept across restarts:
 * `<switchyard>/approvals/<id>`, one JSON record each, on a lease that outlives the expiry
 * a little (so a late press can be told what happened) and then removes it. Every change
 * is a compare-and-swap on the key's mod revision: two presses, on one replica or two,
 * are applied one after the other, never both to the same state.
 */
import { randomBytes } from 'node:crypto';
import type { IKeyValue } from 'etcd3';
import { z } from 'zod';
import type { ApprovalRecord, ApprovalRequest, ApprovalStore } from '../../core/approval.js';
import { SwitchyardError } from '../../core/errors.js';
import { registryCall } from './errors.js';
import { putOp, unchanged } from './ops.js';
import type { EtcdRegistry } from './registry.js';

const recordSchema = z.object({
  id: z.string(),
  text: z.string(),
  command: z.string(),
  service: z.string().optional(),
  requester: z.string(),
  channel: z.string(),
  rule: z.string(),
  why: z.string(),
  groups: z.array(z.string()),
  count: z.number().int().min(1),
  expiresAt: z.number(),
  status: z.enum(['pending', 'approved', 'rejected', 'expired']),
  approvers: z.array(z.string()),
  rejectedBy: z.string().optional(),
  decidedAt: z.string().optional(),
  message: z.object({ channel: z.string(), ts: z.string() }).optional(),
});

const ID_RE = /^[A-Za-z0-9_-]{8,64}$/;
/** Contention is two or three people pressing at once; more retries than that is a bug. */
const MAX_ATTEMPTS = 8;

export class EtcdApprovalStore implements ApprovalStore {
  constructor(private readonly registry: EtcdRegistry) {}

  async create(request: ApprovalRequest, opts: { keepMs: number }): Promise<ApprovalRecord> {
    const id = randomBytes(9).toString('base64url');
    const record: ApprovalRecord = { ...request, id, status: 'pending', approvers: [] };
    const { client, layout } = this.registry;
    await this.call('recording an approval request', async () => {
      const lease = await client.leaseClient.leaseGrant({ TTL: Math.ceil(opts.keepMs / 1000), ID: 0 });
      // Compare-free txn: the key is new (random id), and the put must carry the raw lease ID.
      await client.kv.txn({ compare: [], success: [putOp(layout.approvalKey(id), JSON.stringify(record), lease.ID)], failure: [] });
    });
    return record;
  }

  async get(id: string): Promise<ApprovalRecord | undefined> {
    if (!ID_RE.test(id)) return undefined;
    const kv = await this.read(this.registry.layout.approvalKey(id));
    return kv && decode(kv.value.toString());
  }

  async update(id: string, change: (current: ApprovalRecord) => ApprovalRecord | undefined): Promise<{ record: ApprovalRecord; changed: boolean } | undefined> {
    if (!ID_RE.test(id)) return undefined;
    const key = this.registry.layout.approvalKey(id);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const kv = await this.read(key);
      const current = kv && decode(kv.value.toString());
      if (!kv || !current) return undefined;
      const next = change(current);
      if (!next) return { record: current, changed: false };
      const res = await this.call('updating an approval request', () =>
        this.registry.client.kv.txn({
          compare: [unchanged(key, kv)],
          // Kept on the same lease: deciding a request does not extend its life.
          success: [putOp(key, JSON.stringify({ ...next, id: current.id }), kv.lease !== '0' ? kv.lease : undefined)],
          failure: [],
        }),
      );
      if (res.succeeded) return { record: next, changed: true };
      // Someone else's press landed between our read and write: decide again on theirs.
    }
    throw new SwitchyardError('E_CONFLICT', `approval request ${id} kept changing under ${MAX_ATTEMPTS} attempts; try again`);
  }

  async list(): Promise<ApprovalRecord[]> {
    const res = await this.call('listing approval requests', () => this.registry.client.getAll().prefix(this.registry.layout.approvalsDir()).exec());
    return res.kvs.map((kv) => decode(kv.value.toString())).filter((r): r is ApprovalRecord => r !== undefined);
  }

  private async read(key: string): Promise<IKeyValue | undefined> {
    const res = await this.call('reading an approval request', () => this.registry.client.get(key).exec());
    return res.kvs[0];
  }

  private call<T>(action: string, fn: () => Promise<T>): Promise<T> {
    return registryCall(this.registry.endpoints, action, fn);
  }
}

/** undefined for anything that is not a record of ours (written by hand, or by a newer version). */
function decode(value: string): ApprovalRecord | undefined {
  try {
    const r = recordSchema.safeParse(JSON.parse(value));
    if (!r.success) return undefined;
    const { service, rejectedBy, decidedAt, message, ...rest } = r.data;
    return {
      ...rest,
      ...(service !== undefined ? { service } : {}),
      ...(rejectedBy !== undefined ? { rejectedBy } : {}),
      ...(decidedAt !== undefined ? { decidedAt } : {}),
      ...(message !== undefined ? { message } : {}),
    };
  } catch {
    return undefined;
  }
}
