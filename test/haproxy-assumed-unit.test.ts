/**
 * The state a trusted baseline implies (assumedState) is what lets the agent send runtime
 * commands before reading HAProxy: planning against it must give exactly the baseline→next
 * difference, and nothing at all when nothing changed.
 */
import { describe, expect, it } from 'vitest';
import type { HaproxyModel, ModelServer, ModelService } from '../src/adapters/haproxy/model.js';
import { assumedState, reconcile } from '../src/adapters/haproxy/reconcile.js';

function server(name: string, over: Partial<ModelServer> = {}): ModelServer {
  return { service: 'web', name, host: '10.0.0.1', port: 8080, address: '10.0.0.1:8080', state: 'ready', weight: 100, dns: false, ...over } as ModelServer;
}

function model(servers: ModelServer[], extra: Partial<ModelService> = {}): HaproxyModel {
  const web = { name: 'web', backend: 'web', mode: 'http', balance: 'roundrobin', servers, ...extra } as unknown as ModelService;
  return { services: [web], problems: [], global: { adminSocket: '/tmp/a.sock', stateFile: '/tmp/state', checkInterMs: 2000 } } as unknown as HaproxyModel;
}

describe('assumedState: what HAProxy holds if the baseline is true', () => {
  it('plans nothing when the model is the baseline, whatever the states and weights', () => {
    const m = model([server('web-1'), server('web-2', { state: 'drain', weight: 7 }), server('web-3', { state: 'maint', weight: 0 })]);
    const a = assumedState(m);
    expect(reconcile(m, a.rows, a.backends)).toEqual({ ops: [], needsReload: [], changes: [] });
    expect([...a.backends]).toEqual(['web']);
  });

  it('plans exactly the baseline → next difference: add, remove, state, weight, address', () => {
    const before = model([server('web-1'), server('web-2'), server('web-3', { state: 'drain' })]);
    const after = model([
      server('web-1', { weight: 50 }),
      server('web-3', { state: 'ready', host: '10.0.0.9', address: '10.0.0.9:8080' }),
      server('web-4', { state: 'drain' }),
    ]);
    const a = assumedState(before);
    const rec = reconcile(after, a.rows, a.backends);
    expect(rec.needsReload).toEqual([]);
    expect(rec.changes.sort()).toEqual(['+web-4 (drain)', '-web-2', 'web-1 weight 50', 'web-3 ready', 'web-3 → 10.0.0.9:8080'].sort());
    expect(rec.ops.map((o) => `${o.kind} ${'name' in o ? o.name : o.server.name}`).sort()).toEqual(
      ['add web-4', 'addr web-3', 'remove web-2', 'state web-3', 'weight web-1'].sort(),
    );
  });

  it('a backend the baseline does not have is left to a reload', () => {
    const before = model([server('web-1')]);
    const after = { ...before, services: [...before.services, { ...before.services[0]!, name: 'api', backend: 'api', servers: [] }] } as HaproxyModel;
    const a = assumedState(before);
    expect(reconcile(after, a.rows, a.backends).needsReload).toEqual(['backend api is not in the running HAProxy']);
  });

  it('a DNS server is assumed resolved by name, so an unchanged one plans nothing', () => {
    const m = model([server('web-1', { host: 'app.internal', address: 'app.internal:8080', dns: true })]);
    const a = assumedState(m);
    expect(a.rows[0]).toMatchObject({ fqdn: 'app.internal', port: 8080 });
    expect(reconcile(m, a.rows, a.backends).ops).toEqual([]);
  });
});
