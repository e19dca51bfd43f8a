/**
 * HAProxy model and plan edges that the two other unit files leave open (mutation testing,
 * docs/TESTING.md): shape changes the model never produces today but a plan must still call
 * a reload (plan.ts takes any model), the DNS test on odd host names, the unquoted-path check
 * at both ends of a path, and the order of everything the template loops over.
 */
import { describe, expect, it } from 'vitest';
import { buildModel, type HaproxyModel, type ModelService } from '../src/adapters/haproxy/model.js';
import { planApply, type AppliedConfig } from '../src/adapters/haproxy/plan.js';
import type { ServiceConfig } from '../src/config/schema.js';
import type { Listing } from '../src/core/registry.js';

const haproxy = { config: '/etc/haproxy/haproxy.cfg', adminSocket: '/run/haproxy/admin.sock', masterSocket: '/run/haproxy/master.sock' };

function build(
  rows: [service: string, instance: string, address: string][],
  services: Record<string, Partial<ServiceConfig>> = {},
  adminSocket?: string,
): HaproxyModel {
  const listing: Listing = {
    instances: rows.map(([service, instance, address]) => ({ service, instance, address, modRevision: '1' })),
    problems: [],
    revision: '1',
  };
  return buildModel(
    listing,
    { services: services as Record<string, ServiceConfig>, haproxy: { ...haproxy, ...(adminSocket !== undefined ? { adminSocket } : {}) } as never },
    { servicesPrefix: '/services' },
  );
}

/** `m` with its one service changed by `edit`. */
const reshaped = (m: HaproxyModel, edit: (s: ModelService) => ModelService): HaproxyModel => ({ ...m, services: m.services.map(edit) });
const applied = (model: HaproxyModel, templateHash = 'h1'): AppliedConfig => ({ model, templateHash, rendered: 'cfg' });

describe('plan: shape changes are reloads, named', () => {
  it('a renamed backend, a new balance algorithm, a renamed frontend on the same bind', () => {
    const web = build([['web', 'web-1', '10.0.0.1:80']], { web: { listen: '127.0.0.1:8080' } });
    expect(planApply(applied(web), applied(reshaped(web, (s) => ({ ...s, backend: 'web_v2' }))))).toEqual({
      method: 'reload',
      changes: ['backend of web renamed'],
      reasons: ['backend of web renamed'],
    });
    expect(planApply(applied(web), applied(reshaped(web, (s) => ({ ...s, balance: 'leastconn' })))).reasons).toEqual(['web balance roundrobin → leastconn']);
    const renamedFe = reshaped(web, (s) => ({ ...s, frontend: { name: 'fe_other', bind: '127.0.0.1:8080' } }));
    expect(planApply(applied(web), applied(renamedFe)).reasons).toEqual(['web listen 127.0.0.1:8080 → 127.0.0.1:8080']);
  });

  it('a template change beside server changes reloads, listing both', () => {
    const before = build([['web', 'web-1', '10.0.0.1:80']]);
    const after = build([
      ['web', 'web-1', '10.0.0.1:80'],
      ['web', 'web-2', '10.0.0.2:80'],
    ]);
    expect(planApply(applied(before), applied(after, 'h2'))).toEqual({
      method: 'reload',
      changes: ['template changed', '+web-2'],
      reasons: ['template changed'],
    });
  });

  it('changes of several services come in the order of the model, removals last', () => {
    const before = build([
      ['api', 'api-1', '10.0.1.1:80'],
      ['web', 'web-1', '10.0.0.1:80'],
      ['web', 'web-2', '10.0.0.2:80'],
    ]);
    const after = build([
      ['api', 'api-2', '10.0.1.2:80'],
      ['web', 'web-1', '10.0.0.1:80'],
    ]);
    expect(planApply(applied(before), applied(after))).toEqual({ method: 'runtime', changes: ['+api-2', '-api-1', '-web-2'], reasons: [] });
  });
});

describe('model: host names and paths', () => {
  it('a name with digit labels is still a DNS name; only digits and dots throughout are an IPv4 address', () => {
    const m = build([
      ['web', 'web-1', '1a.example:80'],
      ['web', 'web-2', 'web.10:80'],
      ['web', 'web-3', '10.0.0.3:80'],
    ]);
    expect(m.instances.map((s) => [s.name, s.dns])).toEqual([
      ['web-1', true],
      ['web-2', true],
      ['web-3', false],
    ]);
  });

  it('refuses a bad character at either end of a path, and any quote or backslash', () => {
    for (const bad of [' /run/a.sock', '/run/a.sock ', "/run/a'b.sock", '/run/a\\b.sock', '/run/a\tb.sock', '']) {
      expect(() => build([], {}, bad), JSON.stringify(bad)).toThrow(
        `haproxy.adminSocket ${JSON.stringify(bad)} cannot go into haproxy.cfg: no spaces, quotes, # or backslashes`,
      );
    }
    expect(build([], {}, '/run/a-b_c.d/x.sock').global.adminSocket).toBe('/run/a-b_c.d/x.sock');
  });
});

describe('model: order', () => {
  it('sorts services, their servers and the raw keys by name, whatever order they arrive in', () => {
    const m = build(
      [
        ['web', 'web-3', '10.0.0.3:80'],
        ['api', 'api-2', '10.0.1.2:80'],
        ['web', 'web-1', '10.0.0.1:80'],
        ['cache', 'cache-1', '10.0.2.1:80'],
        ['web', 'web-2', '10.0.0.2:80'],
        ['api', 'api-1', '10.0.1.1:80'],
      ],
      { zeta: {}, db: { mode: 'tcp' } },
    );
    expect(m.services.map((s) => s.name)).toEqual(['api', 'cache', 'db', 'web', 'zeta']);
    expect(m.instances.map((s) => s.name)).toEqual(['api-1', 'api-2', 'cache-1', 'web-1', 'web-2', 'web-3']);
    expect(m.keys.map((k) => k.key)).toEqual([
      '/services/api/api-1',
      '/services/api/api-2',
      '/services/cache/cache-1',
      '/services/web/web-1',
      '/services/web/web-2',
      '/services/web/web-3',
    ]);
  });
});
