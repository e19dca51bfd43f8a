/**
 * `backend: swarm` against a real single-node Swarm on the run-wide test engine: scale
 * creates and sizes the Swarm service, each running task is registered as `<service>-<slot>`
 * at the node's address and the task's own port, a killed task is deregistered and its
 * replacement registered, scale-down drains the highest slots first, and a Swarm service
 * switchyard did not create is never touched.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SwarmEngine, type SwarmService } from '../src/adapters/docker/swarm.js';
import { LABEL_OWNER } from '../src/adapters/docker/types.js';
import { isSwitchyardError } from '../src/core/errors.js';
import { DockerOrchestration } from '../src/orchestrator/facade.js';
import { ownedBy } from '../src/orchestrator/ownership.js';
import { swarmBackendOf } from '../src/orchestrator/swarm/backend.js';
import { SwarmWatcher } from '../src/orchestrator/swarm/watcher.js';
import { sharedDockerHost } from './helpers/docker.js';
import { initSwarm, type TestSwarm } from './helpers/swarm.js';
import { httpGet, orchestratorFixture, silent, waitFor, type OrchestratorFixture } from './orchestrator-fixture.js';

let swarm: TestSwarm;
beforeAll(async () => {
  swarm = await initSwarm(await sharedDockerHost());
});
afterAll(async () => {
  await swarm?.leave();
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A fixture whose one service `name` runs on Swarm; its Swarm services are removed afterwards. */
async function swarmFixture(name = `sw-${randomBytes(3).toString('hex')}`) {
  const f = await orchestratorFixture({ services: { [name]: { backend: 'swarm' } }, docker: { startTimeout: '30s' } });
  const engine = new SwarmEngine(f.host, silent);
  f.deps.swarm = engine;
  cleanups.push(async () => {
    const svc = await f.raw.listServices({ filters: JSON.stringify({ name: [name] }) });
    await Promise.all(
      svc.map((s) =>
        f.raw
          .getService(s.ID!)
          .remove()
          .catch(() => undefined),
      ),
    ); // a test may have removed it
    await f.dispose();
  });
  return { f, name, engine, orchestration: new DockerOrchestration(f.config, f.deps, silent), backend: swarmBackendOf(f.deps)! };
}

async function addresses(f: OrchestratorFixture, service: string) {
  return new Map((await f.registrations(service)).map((r) => [r.instance, r.address]));
}

describe('swarm backend', () => {
  it('scale 0→3 through the command creates the Swarm service and registers each task at its own port', async () => {
    const { f, name, engine } = await swarmFixture();
    const reply = await f.run(`scale ${name} 3`);
    expect(reply.ok, `${reply.summary}\n${(reply.details ?? []).join('\n')}`).toBe(true);
    expect(reply.progress.join('\n')).toContain(`${name}: 3/3 running`);

    const svc = await engine.inspectService(name);
    expect(svc?.Spec.Labels?.[LABEL_OWNER]).toBe(f.owner);
    expect(svc?.Spec.Mode.Replicated?.Replicas).toBe(3);
    expect((await engine.listOwned(f.owner)).map((s) => s.Spec.Name)).toEqual([name]);
    const regs = await addresses(f, name);
    expect([...regs.keys()].sort()).toEqual([`${name}-1`, `${name}-2`, `${name}-3`]);
    const nodeAddr = [...(await engine.nodes()).values()][0]!.addr;
    const ports = new Set<string>();
    for (const address of regs.values()) {
      expect(address.startsWith(`${nodeAddr}:`)).toBe(true);
      ports.add(address);
      expect(await httpGet(address)).not.toBe(''); // each task answers on its own port
    }
    expect(ports.size).toBe(3);
    // status: per task node, slot, state
    const status = await f.run(`status ${name}`);
    const text = JSON.stringify(status.tables);
    expect(text).toContain('"slot"');
    expect(text).toContain('running');
  });

  it('a killed task is deregistered and its replacement registered (task poll, no task events)', async () => {
    const { f, name, engine, orchestration, backend } = await swarmFixture();
    await orchestration.scale(name, 2);
    const watcher = new SwarmWatcher(backend, { pollMs: 500, reconcileIntervalMs: 60_000 });
    watcher.start();
    cleanups.push(() => watcher.close());
    const before = await addresses(f, name);
    const victim = `${name}-2`;
    const oldAddress = before.get(victim)!;
    const svc = (await engine.inspectService(name))!;
    const task = (await engine.tasks(svc.ID)).find((t) => t.slot === 2 && t.state === 'running')!;
    const killedAt = Date.now();
    await f.raw.getContainer(task.containerId!).kill();
    // Liveness bound 10 s (target 2 s): the old address leaves the registry.
    await waitFor('the killed task to be deregistered', async () => (await addresses(f, name)).get(victim) !== oldAddress, 10_000, 20);
    const goneMs = Date.now() - killedAt;
    const replacement = await waitFor(
      'the replacement task to be registered',
      async () => {
        const a = (await addresses(f, name)).get(victim);
        return a !== undefined && a !== oldAddress ? a : undefined;
      },
      30_000,
      100,
    );
    expect(await httpGet(replacement)).not.toBe('');
    expect((await addresses(f, name)).get(`${name}-1`)).toBe(before.get(`${name}-1`)); // the other task untouched
    expect(goneMs).toBeLessThan(10_000);
  });

  it('scale down drains the highest slots first, then lowers the replicas', async () => {
    const { f, name, engine, orchestration } = await swarmFixture();
    await orchestration.scale(name, 3);
    const drained: string[] = [];
    const out = await orchestration.scale(name, 1, {
      progress: (t) => {
        const m = /^draining (\S+)$/.exec(t);
        if (m) drained.push(m[1]!);
      },
    });
    expect(drained.sort()).toEqual([`${name}-2`, `${name}-3`]);
    expect(out.retired).toEqual([`${name}-2`, `${name}-3`]);
    expect(out.running.map((r) => r.instance)).toEqual([`${name}-1`]);
    expect([...(await addresses(f, name)).keys()]).toEqual([`${name}-1`]);
    const svc = (await engine.inspectService(name))!;
    expect(svc.Spec.Mode.Replicated?.Replicas).toBe(1);
    expect(out.problems).toEqual([]);
  });

  it('a Swarm service not created by switchyard is never touched', async () => {
    const { f, name, engine, orchestration, backend } = await swarmFixture();
    await f.raw.createService({
      Name: name,
      TaskTemplate: { ContainerSpec: { Image: f.image, Args: ['/bin/sh', '-c', 'trap "exit 0" TERM; sleep 600 & wait'] } },
      Mode: { Replicated: { Replicas: 1 } },
      EndpointSpec: { Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishMode: 'host' }] },
    } as never);
    const svc = (await engine.inspectService(name))!;
    await waitFor('the foreign task to run', async () => (await engine.tasks(svc.ID)).some((t) => t.state === 'running'), 30_000, 100);
    const err = await orchestration.scale(name, 3).catch((e: unknown) => e);
    expect(isSwitchyardError(err, 'E_CONFLICT')).toBe(true);
    // The watcher's sync has looked (a positive sign of processing) and registered nothing.
    const synced = await backend.sync(name, 'test');
    expect(synced.view.foreign).toBe(true);
    const after = (await engine.inspectService(name))!;
    // Swarm bumps the version itself (allocations); what we would change is the spec.
    expect(after.Spec).toEqual(svc.Spec);
    expect(after.Spec.Mode.Replicated?.Replicas).toBe(1);
    expect(await f.registrations(name)).toEqual([]);
  });

  it('an update with a stale version index is refused; concurrent scales both finish consistent', async () => {
    const { f, name, engine, orchestration } = await swarmFixture();
    await orchestration.scale(name, 1);
    const stale = (await engine.inspectService(name))!;
    await engine.updateReplicas(stale, 2); // someone else's update moves the version on
    const err = await engine.updateReplicas(stale, 3).catch((e: unknown) => e);
    expect(isSwitchyardError(err, 'E_CONFLICT')).toBe(true);

    const [a, b] = await Promise.all([orchestration.scale(name, 3), orchestration.scale(name, 2)]);
    const final = (await engine.inspectService(name))!.Spec.Mode.Replicated?.Replicas;
    expect([a.replicas, b.replicas]).toContain(final);
    await waitFor('registrations to match the final replicas', async () => (await f.registrations(name)).length === final, 30_000, 100);
  });

  it('a scale that loses a version race to an outside update reads the service again and retries', async () => {
    const { f, name, orchestration } = await swarmFixture();
    await orchestration.scale(name, 1);
    // An outside update lands between our read and our write, once.
    class Racing extends SwarmEngine {
      raced = 0;
      override async updateReplicas(service: SwarmService, replicas: number): Promise<void> {
        if (this.raced++ === 0) {
          const fresh = (await this.inspectService(name))!;
          await super.updateReplicas(fresh, 1);
        }
        return super.updateReplicas(service, replicas);
      }
    }
    const racing = new Racing(f.host, silent);
    f.deps.swarm = racing;
    const progress: string[] = [];
    const out = await new DockerOrchestration(f.config, f.deps, silent).scale(name, 2, { progress: (t) => progress.push(t) });
    expect(racing.raced).toBe(2);
    expect(progress.some((t) => /changed under us .* retrying/.test(t))).toBe(true);
    expect(out.running.map((r) => r.instance)).toEqual([`${name}-1`, `${name}-2`]);
    expect((await racing.inspectService(name))!.Spec.Mode.Replicated?.Replicas).toBe(2);
  });

  it('reconcile removes our registrations without a task, keeps others’, and reports drift to #ops', async () => {
    const { f, name, orchestration, backend } = await swarmFixture();
    await orchestration.scale(name, 1);
    await f.registry.register(name, `${name}-9`, '127.0.0.1:1', { by: ownedBy('someone', f.owner) });
    await f.registry.register(name, 'by-hand', '127.0.0.1:2', { by: 'U0HAND' });
    await f.registry.setDesired(name, 2, 'test');
    const watcher = new SwarmWatcher(backend, { reconcileIntervalMs: 60_000 });
    const lines = await watcher.reconcile('manual');
    expect(lines.find((l) => l.service === name)?.changes).toEqual([`${name}/${name}-9 deregistered (no running task)`]);
    expect([...(await addresses(f, name)).keys()].sort()).toEqual(['by-hand', `${name}-1`]);
    const text = f.feed.map((e) => e.text).join('\n');
    expect(text).toContain(`${name} (swarm): desired 2, running 1`);
    expect(text).toContain(`${name}-9 deregistered`);
  });
});
