/**
 * The public entry for plugin authors (`switchyard/plugin`): types only. A plugin needs no
 * import from switchyard at run time; everything it uses arrives as `api`.
 */
export type * from './core/plugin-api.js';
export type * from './core/facades.js';
export type { Reply, Table } from './core/reply.js';
export type { Caller } from './core/caller.js';
export type { ErrorCode } from './core/errors.js';
export type { FeedEvent } from './core/feed.js';
export type { ApplyResult } from './core/apply-result.js';
export type { WatcherRecord } from './core/watcher-record.js';
export type { DesiredRecord, EtcdHealth, Instance, InstanceState, Listing, RegistryProblem, StateRecord } from './core/registry.js';
