/**
 * The HAProxy model and apply plan, cases test/haproxy-unit.test.ts does not pin down, found
 * by mutation testing (docs/TESTING.md): every reason for a reload, the exact change lines
 * the #ops feed shows, and each registry value the model refuses.
 */
import { describe, expect, it } from 'vitest';
import { buildModel, findServer, type HaproxyModel } from '../src/adapters/haproxy/model.js';
import { planApply, type AppliedConfig } from '../src/adapters/haproxy/plan.js';
import type { ServiceConfig } from '../src/config/schema.js';
import type { Instance, InstanceState, Listing } from '../src/core/registry.js';

const haproxy = { config: '/etc/haproxy/haproxy.cfg', adminSocket: '/run/haproxy/admin.sock', masterSocket: '/run/haproxy/master.sock' };

type Row = [service: string, instance: string, address: string, state?: InstanceState, weight?: number];

function listing(rows: Row[]): Listing {
  const instances: Instance[] = rows.map(([service, instance, address, state, weight]) => ({
    service,
    instance,
    address,
    modRevision: '1',
    ...(state || weight !== undefined ? { state: { state: state ?? 'ready', weight: weight ?? 100, by: 'U1', at: 'now' } } : {}),
  }));
  return { instances, problems: [], revision: '1' };
}

function model(
  rows: Row[],
  services: Record<string, Partial<ServiceConfig>> = {},
  opts: { checkInterMs?: number; stateFile?: string; adminSocket?: string } = {},
): HaproxyModel {
  return buildModel(
    listing(rows),
    { services: services as Record<string, ServiceConfig>, haproxy: { ...haproxy, ...(opts.adminSocket ? { adminSocket: opts.adminSocket } : {}) } as never },
    {
      servicesPrefix: '/services',
      ...(opts.checkInterMs ? { checkInterMs: opts.checkInterMs } : {}),
      ...(opts.stateFile ? { stateFile: opts.stateFile } : {}),
    },
  );
}

const applied = (m: HaproxyModel, templateHash = 'h1', rendered = 'cfg'): AppliedConfig => ({ model: m, templateHash, rendered });
const plan = (a: HaproxyModel, b: HaproxyModel) => planApply(applied(a), applied(b));

const WEB: Row[] = [
  ['web', 'web-1', '10.0.0.1:80'],
  ['web', 'web-2', '10.0.0.2:80'],
];

describe('model: what it refuses and why', () => {
  it('names each invalid registry entry and keeps the rest', () => {
    const m = model([
      ['web', 'web-1', '10.0.0.1:80'],
      ['Web', 'web-x', '10.0.0.1:80'],
      ['web', 'web x', '10.0.0.1:80'],
      ['web', 'web-2', 'nohost'],
      ['web', 'web-3', '10.0.0.3:80', 'ready', 257],
      ['web', 'web-4', '10.0.0.4:80', 'gone' as InstanceState],
      ['web', 'web-5', '10.0.0.5:80', 'ready', 256],
      ['web', 'web-6', '10.0.0.6:80', 'ready', 0],
    ]);
    expect(m.problems).toEqual([
      { key: '/services/Web/web-x', problem: 'invalid service or instance name' },
      { key: '/services/web/web x', problem: 'invalid service or instance name' },
      { key: '/services/web/web-2', problem: 'value "nohost" is not host:port (expected host:port)' },
      {
        key: '/services/web/web-3',
        problem: 'state {"state":"ready","weight":257,"by":"U1","at":"now"} is invalid (state ready|drain|maint, weight 0-256)',
      },
      {
        key: '/services/web/web-4',
        problem: 'state {"state":"gone","weight":100,"by":"U1","at":"now"} is invalid (state ready|drain|maint, weight 0-256)',
      },
    ]);
    expect(m.instances.map((s) => [s.name, s.weight])).toEqual([
      ['web-1', 100],
      ['web-5', 256],
      ['web-6', 0],
    ]);
  });

  it('refuses a configured service with a bad name or listen address, keeping the others', () => {
    const m = model([], { Bad: {}, api: { listen: 'nowhere' }, web: { listen: '127.0.0.1:8080', mode: 'tcp' } });
    expect(m.problems).toEqual([
      { key: 'services.Bad', problem: 'service name must match ^[a-z0-9][a-z0-9_.-]{0,62}$' },
      { key: 'services.api.listen', problem: '"nowhere" is not host:port' },
    ]);
    expect(m.services).toEqual([
      {
        name: 'web',
        backend: 'web',
        frontend: { name: 'fe_web', bind: '127.0.0.1:8080' },
        listen: '127.0.0.1:8080',
        mode: 'tcp',
        balance: 'roundrobin',
        configured: true,
        servers: [],
      },
    ]);
  });

  it('marks DNS names only: IPv4 and IPv6 addresses are not', () => {
    const m = model([
      ['web', 'web-1', '10.0.0.1:80'],
      ['web', 'web-2', '[fd00::2]:80'],
      ['web', 'web-3', 'app3.internal:80'],
      ['web', 'web-4', 'app4:80'],
    ]);
    expect(m.instances.map((s) => [s.name, s.dns, s.host, s.port])).toEqual([
      ['web-1', false, '10.0.0.1', 80],
      ['web-2', false, 'fd00::2', 80],
      ['web-3', true, 'app3.internal', 80],
      ['web-4', true, 'app4', 80],
    ]);
  });

  it('keeps the raw key beside each server, sorted by key', () => {
    const m = model([
      ['web', 'web-2', '10.0.0.2:80', 'maint'],
      ['api', 'api-1', '10.0.1.1:80', 'drain', 30],
    ]);
    expect(m.keys).toEqual([
      { key: '/services/api/api-1', base: 'api-1', dir: '/services/api', value: '10.0.1.1:80', service: 'api' },
      { key: '/services/web/web-2', base: 'web-2', dir: '/services/web', value: '10.0.0.2:80', service: 'web' },
    ]);
    expect(findServer(m, 'api', 'api-1')).toMatchObject({
      key: '/services/api/api-1',
      value: '10.0.1.1:80',
      drain: true,
      maint: false,
      configWeight: 0,
      weight: 30,
    });
    expect(findServer(m, 'web', 'web-2')).toMatchObject({ maint: true, drain: false, configWeight: 100 });
    expect(findServer(m, 'web', 'web-9')).toBeUndefined();
    expect(findServer(m, 'nope', 'web-2')).toBeUndefined();
  });

  it('refuses a state file path haproxy.cfg cannot hold, and takes a given one', () => {
    expect(() => model([], {}, { stateFile: '/var/lib/ha#proxy.state' })).toThrow('server-state-file "/var/lib/ha#proxy.state" cannot go into haproxy.cfg');
    expect(() => model([], {}, { adminSocket: '/run/"x".sock' })).toThrow('haproxy.adminSocket "/run/\\"x\\".sock" cannot go into haproxy.cfg');
    expect(model([], {}, { stateFile: '/var/lib/haproxy.state', checkInterMs: 500 }).global).toEqual({
      adminSocket: '/run/haproxy/admin.sock',
      stateFile: '/var/lib/haproxy.state',
      checkInterMs: 500,
    });
  });
});

describe('plan: the change lines and the reasons for a reload', () => {
  it('a server added in another state says so; an instance not named after its service is spelt out', () => {
    expect(plan(model(WEB), model([...WEB, ['web', 'web-3', '10.0.0.3:80', 'drain'], ['web', 'blue', '10.0.0.4:80', 'maint']]))).toEqual({
      method: 'runtime',
      changes: ['+web/blue (maint)', '+web-3 (drain)'],
      reasons: [],
    });
  });

  it('an address change is runtime for IPs, a reload when either side is a DNS name', () => {
    expect(plan(model(WEB), model([['web', 'web-1', '10.0.0.9:80'], WEB[1]!]))).toEqual({
      method: 'runtime',
      changes: ['web-1 10.0.0.1:80 → 10.0.0.9:80'],
      reasons: [],
    });
    expect(plan(model(WEB), model([['web', 'web-1', 'a.internal:80'], WEB[1]!]))).toEqual({
      method: 'reload',
      changes: ['web-1 10.0.0.1:80 → a.internal:80'],
      reasons: ['web-1 changed a DNS address'],
    });
    expect(plan(model([['web', 'web-1', 'a.internal:80'], WEB[1]!]), model(WEB)).reasons).toEqual(['web-1 changed a DNS address']);
  });

  it('a new DNS server is a reload, with the reason', () => {
    expect(plan(model(WEB), model([...WEB, ['web', 'web-3', 'c.internal:80']]))).toEqual({
      method: 'reload',
      changes: ['+web-3'],
      reasons: ['web-3 has a DNS address, which HAProxy 2.6 does not resolve for servers added at runtime'],
    });
  });

  it('lists state and weight changes of one server separately', () => {
    expect(plan(model(WEB), model([['web', 'web-1', '10.0.0.1:80', 'drain', 5], WEB[1]!]))).toEqual({
      method: 'runtime',
      changes: ['web-1 drain', 'web-1 weight 5'],
      reasons: [],
    });
  });

  it('a mode or listen change of a backend is a reload naming both sides', () => {
    const before = model(WEB, { web: { listen: '127.0.0.1:8080' } });
    expect(plan(before, model(WEB, { web: { listen: '127.0.0.1:8080', mode: 'tcp' } }))).toEqual({
      method: 'reload',
      changes: ['web mode http → tcp'],
      reasons: ['web mode http → tcp'],
    });
    expect(plan(before, model(WEB, { web: { listen: '127.0.0.1:9090' } })).reasons).toEqual(['web listen 127.0.0.1:8080 → 127.0.0.1:9090']);
    expect(plan(before, model(WEB)).reasons).toEqual(['web listen 127.0.0.1:8080 → none']);
    expect(plan(model(WEB), before).reasons).toEqual(['web listen none → 127.0.0.1:8080']);
  });

  it('a new backend lists its listener and servers; a removed one is named', () => {
    const withApi = model([...WEB, ['api', 'api-1', '10.0.1.1:80']], { api: { listen: '127.0.0.1:9000' } });
    expect(plan(model(WEB), withApi)).toEqual({
      method: 'reload',
      changes: ['+backend api (listen 127.0.0.1:9000)', '+api-1'],
      reasons: ['new backend api'],
    });
    expect(plan(withApi, model(WEB))).toEqual({ method: 'reload', changes: ['-backend api'], reasons: ['backend api removed'] });
  });

  it('global settings and the template are reloads', () => {
    expect(plan(model(WEB), model(WEB, {}, { checkInterMs: 500 }))).toEqual({
      method: 'reload',
      changes: ['global settings changed'],
      reasons: ['global settings changed'],
    });
    expect(plan(model(WEB), model(WEB, {}, { stateFile: '/tmp/s' })).method).toBe('reload');
    expect(plan(model(WEB), model(WEB, {}, { adminSocket: '/run/other.sock' })).method).toBe('reload');
    expect(planApply(applied(model(WEB)), applied(model(WEB), 'h2'))).toEqual({
      method: 'reload',
      changes: ['template changed'],
      reasons: ['template changed'],
    });
  });

  it('the same model rendered differently is a reload; the same text is nothing', () => {
    expect(planApply(applied(model(WEB)), applied(model(WEB), 'h1', 'other'))).toEqual({
      method: 'reload',
      changes: ['rendered config changed'],
      reasons: ['rendered config changed'],
    });
    expect(planApply(undefined, applied(model(WEB)), 'cfg')).toEqual({ method: 'runtime', changes: [], reasons: ['start-up: live config is current'] });
  });
});
