/**
 * `scale` and an image with a HEALTHCHECK, on the run-wide dockerd and the shared etcd: an
 * instance is registered only once Docker reports it healthy — not when it merely runs — and
 * one whose HEALTHCHECK fails is removed, not registered, and named in the reply.
 *
 * The probe passes once /tmp/ready exists, which the test creates (docker exec) when it
 * chooses, so "registered before healthy" cannot hide behind a fast container.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildBusyboxImage, sharedDockerHost } from './helpers/docker.js';
import { orchestratorFixture, waitFor, type OrchestratorFixture } from './orchestrator-fixture.js';

const PROBE = '["/bin/sh","-c","[ -f /tmp/ready ]"]';
/** Liveness bound for a container to start / a probe to run (~0.2 s each expected). */
const WITHIN_MS = 30_000;

describe('scale waits for a HEALTHCHECK (real dockerd + etcd)', () => {
  const tag = randomBytes(3).toString('hex');
  /** Failed probes do not count during the start period: "starting" until the file exists. */
  const slowImage = `switchyard-test/hc-slow:${process.pid}-${tag}`;
  /** No start period, two failures: unhealthy within a second. */
  const sickImage = `switchyard-test/hc-sick:${process.pid}-${tag}`;
  let fx: OrchestratorFixture | undefined;

  beforeAll(async () => {
    const host = await sharedDockerHost();
    await buildBusyboxImage(host, slowImage, { healthcheck: `--interval=200ms --timeout=2s --start-period=10m --retries=2 CMD ${PROBE}` });
    await buildBusyboxImage(host, sickImage, { healthcheck: `--interval=200ms --timeout=2s --retries=2 CMD ${PROBE}` });
  }, 120_000);

  afterEach(async () => {
    await fx?.dispose();
    fx = undefined;
  });

  it('registers an instance only once its HEALTHCHECK reports healthy', async () => {
    fx = await orchestratorFixture({ services: { web: { image: slowImage } }, docker: { startTimeout: '5m' } });
    const f = fx;
    const scaling = f.run('scale web 1');
    // Settled at once: a failure shows in the assertions below, not as an unhandled rejection.
    const settled = scaling.then(
      (r) => r,
      (err: unknown) => err as Error,
    );
    const running = await waitFor('the container to run', async () => (await f.containers('web'))[0], WITHIN_MS, 50);
    // A positive sign that Docker has probed and found it not ready yet (twice), before
    // checking that nothing was registered meanwhile.
    const probed = await waitFor(
      'two failed probes',
      async () => {
        const state = (await f.raw.getContainer(running.id).inspect()).State as { Health?: { Status: string; Log?: { ExitCode: number }[] } };
        return (state.Health?.Log ?? []).filter((l) => l.ExitCode !== 0).length >= 2 ? state.Health : undefined;
      },
      WITHIN_MS,
      50,
    );
    expect(probed.Status).toBe('starting');
    expect(await f.registrations('web')).toEqual([]);

    const exec = await f.raw.getContainer(running.id).exec({ Cmd: ['/bin/busybox', 'touch', '/tmp/ready'] });
    await exec.start({ hijack: true, stdin: false }).then(
      (stream) =>
        new Promise<void>((resolve) => {
          stream.on('end', resolve);
          stream.on('close', resolve);
          stream.resume();
        }),
    );
    const reply = await settled;
    expect(reply).toMatchObject({ ok: true });
    const [reg] = await f.registrations('web');
    expect(reg?.instance).toBe(running.instance);
    const info = await f.engine.inspect(running.id);
    expect(info).toMatchObject({ hasHealthcheck: true, health: 'healthy', running: true });
  }, 120_000);

  it('an instance whose HEALTHCHECK fails is removed, not registered, and reported by name', async () => {
    fx = await orchestratorFixture({ services: { sick: { image: sickImage } }, docker: { startTimeout: '5m' } });
    const reply = await fx.run('scale sick 1');
    expect(reply.ok).toBe(false);
    const text = [reply.summary, ...(reply.details ?? [])].join('\n');
    expect(text).toMatch(/sick-[0-9a-f]{8}/);
    expect(text).toMatch(/HEALTHCHECK reports unhealthy/);
    expect(await fx.registrations('sick')).toEqual([]);
    expect(await fx.containers('sick', true)).toEqual([]);
  }, 120_000);
});
