/**
 * Routed-only services (confd-era stacks: instances registered by hand or by launch
 * scripts): `services.<name>` without an image gets its frontend and backend, and `scale`
 * refuses it, naming why. No etcd, no Docker, no HAProxy process.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTemplate } from '../src/adapters/haproxy/template.js';
import { renderCandidate } from '../src/agent/candidate.js';
import { loadConfig } from '../src/config/load.js';
import { configSchema, scalableService } from '../src/config/schema.js';
import { isSwitchyardError } from '../src/core/errors.js';
import { routerOver, shellCaller } from './helpers/core.js';
import { MemoryRegistry } from './helpers/memory-registry.js';

const log = pino({ level: 'silent' });
const haproxy = { config: '/tmp/sy-routed/haproxy.cfg', adminSocket: '/tmp/sy-routed/admin.sock', masterSocket: '/tmp/sy-routed/master.sock' };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-routed-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('routed-only services', () => {
  it('need no image (nor container port) in switchyard.yaml', async () => {
    const file = join(dir, 'routed.yaml');
    await writeFile(file, ['etcd: {}', 'services:', '  legacy: { listen: 127.0.0.1:8081, mode: tcp }', ''].join('\n'));
    const config = await loadConfig(file, {});
    expect(config.services.legacy).toMatchObject({ listen: '127.0.0.1:8081', mode: 'tcp' });
    expect(config.services.legacy?.image).toBeUndefined();
    expect(config.services.legacy?.port).toBeUndefined();
  });

  it('an image still needs its container port', () => {
    const r = configSchema.safeParse({ etcd: {}, services: { web: { image: 'web:1' } } });
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => [i.path.join('.'), i.message])).toEqual([['services.web.port', 'required with image: the container port to publish']]);
  });

  it('get their frontend and backend from the shipped template', async () => {
    const config = configSchema.parse({ etcd: {}, haproxy, services: { legacy: { listen: '127.0.0.1:8081' } } });
    const listing = {
      instances: [{ service: 'legacy', instance: 'legacy-1', address: '10.0.0.7:9000', modRevision: '3' }],
      problems: [],
      revision: '3',
    };
    const cand = renderCandidate({ haproxy: config.haproxy!, services: config.services, registry: config.registry }, listing, await loadTemplate(), {
      agentId: 'lb-1',
      log,
    });
    expect(cand.rendered).toMatch(/^frontend fe_legacy\n {4}mode http\n {4}bind 127\.0\.0\.1:8081\n {4}default_backend legacy$/m);
    expect(cand.rendered).toMatch(/^backend legacy$/m);
    expect(cand.rendered).toContain('    server legacy-1 10.0.0.7:9000 check inter 2000 weight 100\n');
  });

  describe('scale', () => {
    const registry = new MemoryRegistry();
    // No docker: either: the refusal must name the service's config, not the missing engine.
    const router = routerOver({ registry, config: configSchema.parse({ etcd: {}, services: { legacy: { listen: '127.0.0.1:8081' } } }) });

    it.each(['scale legacy 2', 'scale legacy 0', 'scale legacy 0 --yes'])('%s is refused: no image configured, routed only', async (text) => {
      const r = await router.dispatch({ text, caller: shellCaller('U1') });
      expect(r).toMatchObject({ ok: false, code: 'E_BAD_ARGS' });
      expect(r.summary).toBe(
        'legacy has no image configured: it is routed only (its instances are registered by hand or by other tools), so it cannot be scaled',
      );
      expect(r.details).toEqual(['to scale it, set services.legacy.image and services.legacy.port in switchyard.yaml']);
      expect(await registry.getDesired('legacy')).toBeUndefined();
    });
  });

  it('cannot be launched by any other path either (a coded error, not a container without an image)', () => {
    const config = configSchema.parse({ etcd: {}, services: { legacy: {}, web: { image: 'web:1', port: 80 } } });
    expect(scalableService('web', config.services.web!)).toMatchObject({ image: 'web:1', port: 80 });
    let err: unknown;
    try {
      scalableService('legacy', config.services.legacy!);
    } catch (e) {
      err = e;
    }
    expect(isSwitchyardError(err, 'E_BAD_ARGS')).toBe(true);
  });
});
