/** Raw etcd transaction operations (etcd3's builders cannot express a compare-free txn). */
import type { ICompare, IKeyValue, IRequestOp } from 'etcd3';

export function rangeOp(key: string): IRequestOp {
  return { request_range: { key: Buffer.from(key) } };
}

export function putOp(key: string, value: string, lease?: string): IRequestOp {
  return { request_put: { key: Buffer.from(key), value: Buffer.from(value), ...(lease ? { lease } : {}) } };
}

export function deleteOp(key: string): IRequestOp {
  return { request_delete_range: { key: Buffer.from(key) } };
}

/** True while `key` is as we read it; etcd compares a missing key as mod_revision 0. */
export function unchanged(key: string, seen: IKeyValue | undefined): ICompare {
  return { key: Buffer.from(key), target: 'Mod', result: 'Equal', mod_revision: seen ? seen.mod_revision : 0 };
}

/** True while `key` holds `value` (a missing key holds nothing). */
export function holds(key: string, value: string): ICompare {
  return { key: Buffer.from(key), target: 'Value', result: 'Equal', value: Buffer.from(value) };
}
