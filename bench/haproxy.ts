/**
 * Issue-3 benchmarks: the HAProxy agent against a private etcd and real HAProxy 2.6
 * instances, with a confd-style baseline (bench/confd-baseline.ts) on the same workloads
 * in the same run.
 *  - registry write → first request routed to the new server, runtime path (server added
 *    to an existing backend) and reload path (a new backend each time);
 *  - a burst of 1,000 registrations across 10 existing backends: last write → converged,
 *    and how many reloads it took;
 *  - rendering 10,000 instances in 100 services.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import pino from 'pino';
import type { EtcdRegistry } from '../src/adapters/etcd/registry.js';
import type { ApplyResult } from '../src/adapters/haproxy/apply.js';
import { DEFAULT_TEMPLATE_PATH, loadTemplate } from '../src/adapters/haproxy/template.js';
import { renderCandidate } from '../src/agent/candidate.js';
import type { HaproxyAgent } from '../src/agent/agent.js';
import { createHaproxyAgent } from '../src/app/agent.js';
import { configSchema, type Config } from '../src/config/schema.js';
import type { Instance, Listing } from '../src/core/registry.js';
import { startEtcd } from '../test/helpers/etcd-server.js';
import { freePort, registryAt, startHaproxy, startHttpBackend, type HttpBackend, type TestHaproxy } from '../test/helpers/haproxy.js';
import { spawnSwitchyard } from '../test/helpers/process.js';
import { ConfdBaseline } from './confd-baseline.js';
import { fmt, summarize, writeSection } from './lib.js';

const silent = pino({ level: 'silent' });
const CHANGES = Number(process.env.BENCH_CHANGES ?? 200);
const WARMUP = 5;
const BURST = 1000;
const BURST_BACKENDS = 10;
const BURST_IN_FLIGHT = 50;
const CHECK_INTER_MS = 5000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One GET on a fresh connection (every request is a new routing decision). */
function get(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent: false, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Ask until `ok` holds; resolves with the time it held, ms since `t0`. */
async function until(t0: number, port: number, host: string, ok: (r: { status: number; body: string }) => boolean, timeoutMs = 10_000): Promise<number> {
  for (;;) {
    const r = await get(port, host).catch(() => ({ status: 0, body: '' }));
    const now = performance.now();
    if (ok(r)) return now - t0;
    if (now - t0 > timeoutMs) throw new Error(`not routed within ${timeoutMs} ms (last: ${r.status} ${r.body})`);
  }
}

/** The default template plus one frontend routing by Host header to the backend of that name. */
async function vhostTemplate(dir: string, port: number): Promise<string> {
  const source = await readFile(DEFAULT_TEMPLATE_PATH, 'utf8');
  const vhost = ['', 'frontend fe_vhost', '    mode http', `    bind 127.0.0.1:${port}`, '    use_backend %[req.hdr(host),field(1,:),lower]', ''].join('\n');
  const path = join(dir, 'bench.hbs');
  await writeFile(path, source.replace('{{#each services}}', `${vhost}{{#each services}}`));
  return path;
}

/** What the routing measurement needs: where to write, where to ask. */
type RoutingTarget = Pick<Target, 'registry' | 'port'>;

interface Target {
  name: string;
  hap: TestHaproxy;
  registry: EtcdRegistry;
  /** Port of the Host-routing frontend. */
  port: number;
  reloads(): number;
  stop(): Promise<void>;
}

/** The config file's content (before validation): written out for the agent process, parsed for the in-process one. */
function benchConfigSource(endpoint: string, root: string, hap: TestHaproxy, template: string): Record<string, unknown> {
  const services: Record<string, unknown> = { web: { image: 'bench', port: 80 } };
  for (let b = 0; b < BURST_BACKENDS; b++) services[`b${b}`] = { image: 'bench', port: 80 };
  return {
    etcd: { endpoints: [endpoint] },
    registry: { prefix: `${root}/services`, switchyardPrefix: `${root}/switchyard` },
    haproxy: { ...hap.configSection('bench'), template },
    services,
  };
}

function benchConfig(endpoint: string, root: string, hap: TestHaproxy, template: string): Config {
  return configSchema.parse(benchConfigSource(endpoint, root, hap, template));
}

/**
 * The agent as a HAProxy host runs it: `switchyard agent --config …` in a process of its own,
 * so the bench's HTTP polling, its backends and its registry client do not share the agent's
 * event loop (and its garbage collections) as they do in-process.
 */
async function agentProcessTarget(endpoint: string): Promise<{ target: RoutingTarget; reloads(): Promise<number>; stop(): Promise<void> }> {
  const hap = await startHaproxy();
  const port = await freePort();
  const configPath = join(hap.dir, 'switchyard.yaml');
  // JSON is YAML: the file the agent reads, with the same content as the in-process run's.
  await writeFile(configPath, JSON.stringify(benchConfigSource(endpoint, '/bench-agent', hap, await vhostTemplate(hap.dir, port))));
  const registry = registryAt(endpoint, '/bench-agent');
  const proc = spawnSwitchyard(['agent', '--config', configPath]);
  const stop = async () => {
    await proc.stop('SIGTERM');
    await registry.close();
    await hap.dispose();
  };
  try {
    // A process compiling its TypeScript on a busy machine takes seconds to come up.
    await until(performance.now(), port, 'nothing', (r) => r.status === 503, 60_000);
    const reloads = async () => (await hap.master.showProc()).master.reloads;
    await untilTrue(async () => (await reloads()) > 0, 'the start-up reload');
    return { target: { registry, port }, reloads, stop };
  } catch (err) {
    await stop();
    throw new Error(`the agent process did not start: ${err instanceof Error ? err.message : String(err)}\n${proc.err().slice(-2000)}`);
  }
}

async function switchyardTarget(endpoint: string): Promise<Target> {
  const hap = await startHaproxy();
  const port = await freePort();
  const config = benchConfig(endpoint, '/bench-sy', hap, await vhostTemplate(hap.dir, port));
  const registry = registryAt(endpoint, '/bench-sy');
  const results: ApplyResult[] = [];
  const agent: HaproxyAgent = createHaproxyAgent(config, registry, { log: silent, checkInterMs: CHECK_INTER_MS, onApply: (r) => results.push(r) });
  await agent.start();
  await waitForFrontend(port);
  await untilTrue(() => results.some((r) => r.method === 'reload'), 'the start-up reload to be reported');
  return {
    name: 'switchyard',
    hap,
    registry,
    port,
    reloads: () => results.filter((r) => r.method === 'reload').length,
    async stop() {
      await agent.stop();
      await registry.close();
      await hap.dispose();
    },
  };
}

async function confdTarget(endpoint: string): Promise<Target> {
  const hap = await startHaproxy();
  const port = await freePort();
  const config = benchConfig(endpoint, '/bench-confd', hap, await vhostTemplate(hap.dir, port));
  const registry = registryAt(endpoint, '/bench-confd');
  const baseline = new ConfdBaseline(
    { haproxy: config.haproxy!, services: config.services, registry: config.registry },
    registry,
    await loadTemplate(config.haproxy!.template),
    {
      checkInterMs: CHECK_INTER_MS,
      log: silent,
    },
  );
  await baseline.start();
  await waitForFrontend(port);
  await untilTrue(() => baseline.reloads > 0, 'the start-up reload to be reported');
  return {
    name: 'confd-style',
    hap,
    registry,
    port,
    reloads: () => baseline.reloads,
    async stop() {
      await baseline.stop();
      await registry.close();
      await hap.dispose();
    },
  };
}

/** The frontend answers before the reload that opened it is reported: wait for both. */
async function untilTrue(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

async function waitForFrontend(port: number): Promise<void> {
  await until(performance.now(), port, 'nothing', (r) => r.status === 503, 15_000);
}

/** A server added to / removed from an existing backend (web), one change at a time. */
async function runtimePath(t: RoutingTarget, be: HttpBackend[]): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < CHANGES + WARMUP; i++) {
    const b = be[i % be.length]!;
    const t0 = performance.now();
    await t.registry.register('web', `r${i}`, b.address, { by: 'UBENCH' });
    const ms = await until(t0, t.port, 'web', (r) => r.status === 200 && r.body === b.name);
    if (i >= WARMUP) samples.push(ms);
    await t.registry.deregister('web', `r${i}`);
    await until(performance.now(), t.port, 'web', (r) => r.status === 503);
  }
  return samples;
}

/**
 * The floor under "routed": an etcd put until a watcher on the prefix sees it, on the same
 * etcd, same client library, in the same run. Routing adds the agent's work and a runtime
 * API command on top of this.
 */
async function etcdFloor(endpoint: string): Promise<number[]> {
  const client = new Etcd3({ hosts: endpoint });
  try {
    const watcher = await client.watch().prefix('/bench-floor/').create();
    let seen: ((key: string) => void) | undefined;
    watcher.on('put', (kv) => seen?.(kv.key.toString()));
    const samples: number[] = [];
    for (let i = 0; i < CHANGES + WARMUP; i++) {
      const key = `/bench-floor/k${i}`;
      const event = new Promise<void>((resolve) => (seen = (k) => k === key && resolve()));
      const t0 = performance.now();
      await Promise.all([client.put(key).value('x'), event]);
      if (i >= WARMUP) samples.push(performance.now() - t0);
    }
    await watcher.cancel();
    await client.delete().prefix('/bench-floor/');
    return samples;
  } finally {
    client.close();
  }
}

/** A new service (backend) each time: a reload. */
async function reloadPath(t: Target, be: HttpBackend[]): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < CHANGES + WARMUP; i++) {
    const before = t.reloads();
    const t0 = performance.now();
    await t.registry.register(`svc${i}`, 'a', be[i % be.length]!.address, { by: 'UBENCH' });
    const ms = await until(t0, t.port, `svc${i}`, (r) => r.status === 200);
    if (i >= WARMUP) samples.push(ms);
    // Traffic moves before the apply is reported (the new worker is confirmed after it
    // serves): let each reload finish so the next change, and the burst, start clean.
    await untilTrue(() => t.reloads() > before, `the reload for svc${i} to be reported`);
  }
  return samples;
}

/** 1,000 registrations across the 10 configured backends, 50 writes in flight. */
async function burst(t: Target, be: HttpBackend[]): Promise<{ convergeMs: number; writeMs: number; reloads: number }> {
  const reloadsBefore = t.reloads();
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: BURST_IN_FLIGHT }, async () => {
      while (next < BURST) {
        const i = next++;
        await t.registry.register(`b${i % BURST_BACKENDS}`, `s${i}`, be[0]!.address, { by: 'UBENCH' });
      }
    }),
  );
  const lastWrite = performance.now();
  for (;;) {
    const rows = await t.hap.runtime.showServersState();
    if (rows.filter((r) => /^b\d+$/.test(r.backend)).length >= BURST) break;
    if (performance.now() - lastWrite > 60_000) throw new Error(`${t.name}: the burst did not converge within 60 s`);
    await sleep(5);
  }
  return { convergeMs: performance.now() - lastWrite, writeMs: lastWrite - t0, reloads: t.reloads() - reloadsBefore };
}

/** Render 10,000 instances in 100 services with the shipped template. */
async function renderBench(hap: TestHaproxy): Promise<number[]> {
  const config = configSchema.parse({ etcd: {}, haproxy: hap.configSection('bench') });
  const instances: Instance[] = [];
  for (let s = 0; s < 100; s++) {
    for (let i = 0; i < 100; i++) {
      instances.push({
        service: `svc${s}`,
        instance: `svc${s}-${i}`,
        address: `10.${s}.${Math.floor(i / 250)}.${(i % 250) + 1}:8080`,
        state: { state: i % 17 === 0 ? 'drain' : 'ready', weight: 100, by: 'UBENCH', at: new Date().toISOString() },
        modRevision: '1',
      });
    }
  }
  const listing: Listing = { instances, problems: [], revision: '1' };
  const template = await loadTemplate();
  const agentConfig = { haproxy: config.haproxy!, services: config.services, registry: config.registry };
  const samples: number[] = [];
  for (let run = 0; run < 23; run++) {
    const t0 = performance.now();
    const text = renderCandidate(agentConfig, listing, template, { agentId: 'bench', log: silent }).rendered;
    if (run >= 3) samples.push(performance.now() - t0);
    if (!text.includes('server svc99-99 ')) throw new Error('render lost instances');
  }
  return samples;
}

async function measure(t: Target, be: HttpBackend[]) {
  const runtime = summarize(await runtimePath(t, be));
  const runtimeReloads = t.reloads();
  const reloadStart = t.reloads();
  const reload = summarize(await reloadPath(t, be));
  const reloadCount = t.reloads() - reloadStart;
  const b = await burst(t, be);
  console.log(
    `${t.name}: runtime path p50 ${fmt(runtime.p50)} p99 ${fmt(runtime.p99)} ms; reload path p50 ${fmt(reload.p50)} p99 ${fmt(reload.p99)} ms (${reloadCount} reloads); ` +
      `burst converged ${fmt(b.convergeMs, 0)} ms after the last write (writes took ${fmt(b.writeMs, 0)} ms), ${b.reloads} reloads`,
  );
  return { runtime, runtimeReloads, reload, burst: b };
}

async function main() {
  const etcd = await startEtcd();
  const be = await Promise.all(['be-a', 'be-b'].map(startHttpBackend));
  let sy: Target | undefined;
  let confd: Target | undefined;
  let proc: Awaited<ReturnType<typeof agentProcessTarget>> | undefined;
  try {
    const floor = summarize(await etcdFloor(etcd.endpoint));
    console.log(`etcd put → watch event: p50 ${fmt(floor.p50)} p99 ${fmt(floor.p99)} ms`);
    sy = await switchyardTarget(etcd.endpoint);
    const startupReloads = sy.reloads();
    const s = await measure(sy, be);
    const renderMs = summarize(await renderBench(sy.hap));
    await sy.stop();
    sy = undefined;
    proc = await agentProcessTarget(etcd.endpoint);
    const procReloadsBefore = await proc.reloads();
    const own = summarize(await runtimePath(proc.target, be));
    const ownReloads = (await proc.reloads()) - procReloadsBefore;
    await proc.stop();
    proc = undefined;
    console.log(`agent process: runtime path p50 ${fmt(own.p50)} p99 ${fmt(own.p99)} ms, ${ownReloads} reloads`);
    confd = await confdTarget(etcd.endpoint);
    const c = await measure(confd, be);
    await confd.stop();
    confd = undefined;

    const ratio = (a: number, b: number) => (b > 0 ? fmt(a / b, 2) : '—');
    console.log(`render 10,000 instances / 100 services: p50 ${fmt(renderMs.p50)} ms, max ${fmt(renderMs.max)} ms`);
    const runtimeReloads = s.runtimeReloads - startupReloads;
    await writeSection(
      '03-haproxy',
      'HAProxy agent: runtime API vs reload vs confd-style (issue 3)',
      [
        {
          metric: `registry write → first request routed, runtime path, \`switchyard agent\` process (n=${own.n}) p50`,
          value: `${fmt(own.p50)} ms`,
          target: '—',
          pass: undefined,
        },
        {
          metric: 'registry write → first request routed, runtime path, agent process p99',
          value: `${fmt(own.p99)} ms`,
          target: '≤ 10 ms',
          pass: own.p99 <= 10,
        },
        { metric: `… reloads (${2 * (CHANGES + WARMUP)} adds/removes)`, value: String(ownReloads), target: '0', pass: ownReloads === 0 },
        {
          metric: `the same, agent in the bench's process (n=${s.runtime.n}) p50 / p99`,
          value: `${fmt(s.runtime.p50)} / ${fmt(s.runtime.p99)} ms`,
          target: '—',
          pass: undefined,
        },
        {
          metric: `floor: etcd put → watch event, same etcd and run (n=${floor.n}) p50 / p99`,
          value: `${fmt(floor.p50)} / ${fmt(floor.p99)} ms`,
          target: '—',
          pass: undefined,
        },
        { metric: `… of which reloads (${2 * (CHANGES + WARMUP)} adds/removes)`, value: String(runtimeReloads), target: '0', pass: runtimeReloads === 0 },
        {
          metric: `registry write → first request routed, reload path / new backend (n=${s.reload.n}) p50`,
          value: `${fmt(s.reload.p50)} ms`,
          target: '—',
          pass: undefined,
        },
        { metric: 'registry write → first request routed, reload path p99', value: `${fmt(s.reload.p99)} ms`, target: '≤ 300 ms', pass: s.reload.p99 <= 300 },
        {
          metric: `burst of ${BURST} registrations across ${BURST_BACKENDS} existing backends: last write → converged`,
          value: `${fmt(s.burst.convergeMs, 0)} ms`,
          target: '≤ 1000 ms',
          pass: s.burst.convergeMs <= 1000,
        },
        { metric: '… reloads during the burst', value: String(s.burst.reloads), target: '0', pass: s.burst.reloads === 0 },
        {
          metric: 'render 10,000 instances in 100 services (model + template), p50 of 20',
          value: `${fmt(renderMs.p50)} ms (max ${fmt(renderMs.max)})`,
          target: '≤ 100 ms',
          pass: renderMs.p50 <= 100,
        },
        { metric: 'confd-style, runtime-path workload p50 / p99', value: `${fmt(c.runtime.p50)} / ${fmt(c.runtime.p99)} ms`, target: '—', pass: undefined },
        {
          metric: 'ratio switchyard / confd-style, runtime-path workload p50 / p99',
          value: `${ratio(s.runtime.p50, c.runtime.p50)} / ${ratio(s.runtime.p99, c.runtime.p99)}`,
          target: '—',
          pass: undefined,
        },
        { metric: 'confd-style, new-backend workload p50 / p99', value: `${fmt(c.reload.p50)} / ${fmt(c.reload.p99)} ms`, target: '—', pass: undefined },
        {
          metric: 'ratio switchyard / confd-style, new-backend workload p50 / p99',
          value: `${ratio(s.reload.p50, c.reload.p50)} / ${ratio(s.reload.p99, c.reload.p99)}`,
          target: '—',
          pass: undefined,
        },
        {
          metric: `confd-style burst: last write → converged, reloads`,
          value: `${fmt(c.burst.convergeMs, 0)} ms, ${c.burst.reloads} reloads`,
          target: '—',
          pass: undefined,
        },
        { metric: 'ratio switchyard / confd-style, burst converge time', value: ratio(s.burst.convergeMs, c.burst.convergeMs), target: '—', pass: undefined },
      ],
      [
        "`npm run bench -- haproxy` (bench/haproxy.ts): private etcd on tmpfs, HAProxy 2.6 in master-worker mode, loopback HTTP backends. The agent runs with its defaults (a change arriving while nothing is being applied runs at once, as does one that waited for a running apply; two or more that pile up during an apply are coalesced, 5 ms quiet, 100 ms max): first as `switchyard agent --config …` in a process of its own, as on a HAProxy host (the P1 target row), then in the bench's own process, where it shares the event loop with the HTTP polling and the backends (every other row; health checks every 5 s there, 2 s in the process).",
        '"Routed" = the first fresh-connection GET through HAProxy that the new server answers, timed from just before the registry write (an etcd transaction); runtime-path changes alternate add and remove, each converged before the next.',
        'Reload path: a service not seen before, reached through a frontend that routes by Host header, so every change is a new backend and a validated reload (render, `haproxy -c`, state save, master `reload`, new worker confirmed).',
        `Burst: ${BURST} \`register\` calls (${BURST_IN_FLIGHT} in flight) into ${BURST_BACKENDS} configured backends; converged = all ${BURST} servers present in \`show servers state\`. Writes took ${fmt(s.burst.writeMs, 0)} ms (switchyard) and ${fmt(c.burst.writeMs, 0)} ms (confd-style run).`,
        'confd-style baseline (bench/confd-baseline.ts): every watch wake-up re-reads the prefix, renders the whole file with the same template, runs `haproxy -c`, renames and reloads; changes arriving during a cycle are taken by the next one, as `confd -watch` does.',
        `Machine shared with other test runs during this measurement: load average at the end ${loadavg()
          .map((l) => fmt(l, 2))
          .join(' ')} on ${cpus().length} cores.`,
      ],
    );
  } finally {
    await sy?.stop();
    await proc?.stop();
    await confd?.stop();
    await Promise.all(be.map((b) => b.close()));
    await etcd.dispose();
  }
}

await main();
