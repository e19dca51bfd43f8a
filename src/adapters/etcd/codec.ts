/**
 * Values as stored in etcd, validated on every read. Anyone with etcdctl can write these
 * keys by hand, so a bad value is data to report (a RegistryProblem naming the key), not
 * a reason to crash and not something to drop silently.
 */
import { z } from 'zod';
import { parseHostPort } from '../../core/names.js';
import {
  DEFAULT_WEIGHT,
  INSTANCE_STATES,
  MAX_WEIGHT,
  MIN_WEIGHT,
  type DesiredRecord,
  type Instance,
  type Listing,
  type RegistryProblem,
  type StateRecord,
} from '../../core/registry.js';
import type { KeyLayout } from './keys.js';

export { DEFAULT_WEIGHT, MAX_WEIGHT };

// state and weight drive routing and are checked strictly; by/at are informational, so a
// hand-fixed value with another time format is accepted rather than flagged.
export const stateRecordSchema = z.object({
  state: z.enum(INSTANCE_STATES),
  weight: z.number().int().min(MIN_WEIGHT).max(MAX_WEIGHT),
  by: z.string(),
  at: z.string(),
});

export const desiredRecordSchema = z.object({
  replicas: z.number().int().min(0),
  by: z.string(),
  at: z.string(),
});

/** Key/value as read from etcd (etcd3 IKeyValue, reduced to what the codec needs). */
export interface RawKv {
  key: Buffer;
  value: Buffer;
  mod_revision: string;
  lease: string;
}

/** A stored value quoted for a problem message: short, and with control characters escaped. */
export function quoteValue(value: string): string {
  return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
}

function describeIssues(err: z.ZodError): string {
  return err.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
}

function parseJson<T>(value: string, schema: z.ZodType<T>, what: string): T | string {
  let data: unknown;
  try {
    data = JSON.parse(value);
  } catch {
    return `${what} ${quoteValue(value)} is not JSON`;
  }
  const r = schema.safeParse(data);
  return r.success ? r.data : `${what} ${quoteValue(value)} is invalid: ${describeIssues(r.error)}`;
}

/** The plain-text `host:port` of a service key, or why it is not one. */
export function decodeAddress(value: string): string | { problem: string } {
  const r = parseHostPort(value);
  return typeof r === 'string' ? { problem: `value ${quoteValue(value)} is not host:port (${r})` } : value;
}

export function decodeState(value: string): StateRecord | { problem: string } {
  const r = parseJson(value, stateRecordSchema, 'state');
  return typeof r === 'string' ? { problem: r } : r;
}

export function decodeDesired(value: string): DesiredRecord | { problem: string } {
  const r = parseJson(value, desiredRecordSchema, 'desired record');
  return typeof r === 'string' ? { problem: r } : r;
}

export function encodeState(rec: StateRecord): string {
  return JSON.stringify({ state: rec.state, weight: rec.weight, by: rec.by, at: rec.at });
}

export function encodeDesired(rec: DesiredRecord): string {
  return JSON.stringify({ replicas: rec.replicas, by: rec.by, at: rec.at });
}

export function isProblem(v: unknown): v is { problem: string } {
  return typeof v === 'object' && v !== null && 'problem' in v;
}

/** etcd reports "no lease" as lease 0. */
export function leaseOf(kv: { lease: string }): string | undefined {
  return kv.lease && kv.lease !== '0' ? kv.lease : undefined;
}

/**
 * Join the service keys and state keys read at one revision into instances. A service key
 * with a bad name or address is reported and left out (there is nothing to route to); a
 * bad state is reported and the instance listed without one.
 */
export function buildListing(layout: KeyLayout, serviceKvs: RawKv[], stateKvs: RawKv[], revision: string): Listing {
  const problems: RegistryProblem[] = [];
  const states = new Map<string, StateRecord>();
  for (const kv of stateKvs) {
    const key = kv.key.toString();
    const ref = layout.parseStateKey(key);
    if (typeof ref === 'string') {
      problems.push({ key, problem: ref });
      continue;
    }
    const st = decodeState(kv.value.toString());
    if (isProblem(st)) problems.push({ key, problem: st.problem });
    else states.set(`${ref.service}/${ref.instance}`, st);
  }
  const instances: Instance[] = [];
  for (const kv of serviceKvs) {
    const key = kv.key.toString();
    const ref = layout.parseServiceKey(key);
    if (typeof ref === 'string') {
      problems.push({ key, problem: ref });
      continue;
    }
    const address = decodeAddress(kv.value.toString());
    if (isProblem(address)) {
      problems.push({ key, problem: address.problem });
      continue;
    }
    const state = states.get(`${ref.service}/${ref.instance}`);
    const lease = leaseOf(kv);
    instances.push({
      service: ref.service,
      instance: ref.instance,
      address,
      ...(state ? { state } : {}),
      ...(lease ? { lease } : {}),
      modRevision: kv.mod_revision,
    });
  }
  return { instances, problems, revision };
}
