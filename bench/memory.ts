/**
 * Issue-9 memory benchmark: resident memory of `serve` (the compiled build, as the image runs
 * it), each phase in a fresh process against a fresh etcd so that one phase's garbage never
 * counts against the next:
 *   idle · 10,000 instances (100 services) + `status` · 10,000 instances in one service +
 *   `status <service>` · 10,000 registrations arriving while it runs (feed and history take
 *   each) + `status` · 500 concurrent signed slash commands.
 * Besides RSS, a probe preloaded into the process says where the memory is: V8 heap (used,
 * live after a full GC, held per space), compiled code, external buffers, and file-backed
 * pages (the node binary and libraries) from /proc/<pid>/smaps_rollup.
 *
 * argv: phase numbers (e.g. `3`) run only those and print, leaving docs/ alone;
 *       --profile (implied when every phase runs) adds a second pass per phase with V8's
 *       sampling heap profiler and reports the live heap by the package that allocated it
 *       (a separate pass: the profiler costs memory of its own);
 *       --variant (implied when every phase runs) measures every phase again with
 *       `node --no-optimize-for-size`: V8's default heap policy, which serve overrides (src/small-heap.ts);
 *       --repeat=N runs each phase N times (default 3 for the documented run, else 1);
 *       --snapshot writes a heap snapshot per run to the temp directory (path printed).
 * env:  MEMORY_NODE_ARGS="--max-semi-space-size=4" passes node flags to `serve`, to try heap settings;
 *       MEMORY_REUSE_BUILD=1 measures the build the last run made (trying flags while the sources are mid-edit);
 *       MEMORY_PROFILE=all profiles every allocation, collected or not (what a phase churns through);
 *       MEMORY_PROFILE_OUT=/tmp/p saves each raw profile as /tmp/p-<phase>.json (Chrome DevTools reads it).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { startEtcd } from '../test/helpers/etcd-server.js';
import { freePort } from '../test/helpers/net.js';
import { postSlashCommand, startSlackStandIn, type SlackStandIn } from '../test/helpers/slack.js';
import { fmt, writeSection } from './lib.js';

const SECRET = 'bench-secret';
const USER = 'U0BENCH';
const TARGET_MB = 150;
/** Start-up garbage settles, and the phase's last replies are out, before a reading. */
const SETTLE_MS = 2000;
/** Further readings after the first (at +10 s and +30 s): does RSS come back down when idle? */
const LATER_MS = [8000, 20_000];
const MB = 2 ** 20;
const args = process.argv.slice(2);
const ONLY = args.filter((a) => /^\d+$/.test(a)).map(Number);
// The documented run profiles too: where the memory goes belongs in docs/BENCHMARKS.md.
const PROFILE = args.includes('--profile') || ONLY.length === 0;
const SNAPSHOT = args.includes('--snapshot');
/** Runs per phase: RSS after a burst varies with when V8 happened to collect. */
const REPEAT = Number(/^--repeat=(\d+)$/.exec(args.find((a) => a.startsWith('--repeat=')) ?? '')?.[1] ?? (ONLY.length ? 1 : 3));
const NODE_ARGS = (process.env.MEMORY_NODE_ARGS ?? '').split(' ').filter(Boolean);
/** A second set of runs with these flags (implied by the documented run, or --variant). */
const VARIANT_ARGS = ['--no-optimize-for-size'];
const VARIANT = args.includes('--variant') || ONLY.length === 0;

/**
 * Preloaded with --import. The first SIGUSR2 writes the process's own view of its memory as
 * it is (taken with the RSS reading); the second forces a full GC first, which tells live
 * objects from heap V8 merely holds. --expose-gc on the command line would change the
 * process measured; enabling it here only makes gc() reachable. With SY_MEMPROBE_PROFILE
 * the sampling heap profiler runs from the start; it drops collected objects, so after the
 * GC its profile is the live heap.
 */
const PROBE = `
import { writeFileSync } from 'node:fs';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Session } from 'node:inspector';
v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');
const env = process.env;
let session;
if (env.SY_MEMPROBE_PROFILE) {
  session = new Session();
  session.connect();
  const all = env.SY_MEMPROBE_PROFILE === 'all';
  session.post('HeapProfiler.startSampling', { samplingInterval: 8192, includeObjectsCollectedByMajorGC: all, includeObjectsCollectedByMinorGC: all });
}
const view = () => ({
  usage: process.memoryUsage(),
  spaces: Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { used: s.space_used_size, size: s.space_size }])),
  code: v8.getHeapCodeStatistics(),
});
let calls = 0;
process.on('SIGUSR2', () => {
  const n = ++calls;
  const write = (extra) => writeFileSync(env.SY_MEMPROBE_OUT + '.' + n, JSON.stringify({ ...view(), ...extra }));
  if (n === 1) return write({});
  gc();
  const snapshot = env.SY_MEMPROBE_SNAPSHOT ? v8.writeHeapSnapshot(env.SY_MEMPROBE_SNAPSHOT) : undefined;
  if (!session) return write({ snapshot });
  session.post('HeapProfiler.stopSampling', (err, r) => write({ snapshot, profile: err ? undefined : r.profile }));
});
`;

interface ProfileNode {
  callFrame: { functionName: string; url: string };
  selfSize: number;
  children: ProfileNode[];
}

/** What the process says about its memory (see PROBE). */
interface ProbeView {
  usage: NodeJS.MemoryUsage;
  spaces: Record<string, { used: number; size: number }>;
  code: { code_and_metadata_size: number; bytecode_and_metadata_size: number };
  snapshot?: string;
  profile?: { head: ProfileNode };
}

interface Reading {
  rssMb: number;
  /** RSS at the LATER_MS readings. */
  laterMb: number[];
  /** High-water mark of RSS over the process's life (VmHWM): start-up included. */
  peakMb: number;
  /** From smaps_rollup: pages backed by files (binary, libraries) vs anonymous (heaps, buffers). */
  fileMb: number;
  anonMb: number;
  /** The process's view at the first reading, and after a forced full GC at the end. */
  now: ProbeView;
  afterGc: ProbeView;
  note?: string;
}

interface PhaseContext {
  events: string;
  etcd: string;
  standIn: SlackStandIn;
}

interface Phase {
  name: string;
  /** Writes what the registry holds before `serve` starts. */
  prepare?(etcd: string): Promise<void>;
  /** Runs against a healthy `serve`; returns a note for the report. */
  run(ctx: PhaseContext): Promise<string | undefined>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function smaps(pid: number): Promise<{ rss: number; file: number; anon: number }> {
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? NaN) * 1024;
  const rss = kb('Rss');
  const anon = kb('Anonymous');
  return { rss, anon, file: rss - anon };
}

async function peakRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN) / 1024;
}

async function waitFor(cond: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function probe(child: ChildProcess, out: string, n: number): Promise<ProbeView> {
  child.kill('SIGUSR2');
  const file = `${out}.${n}`;
  await waitFor(async () => (await readFile(file, 'utf8').catch(() => '')).endsWith('}'), 120_000, 'the memory probe');
  return JSON.parse(await readFile(file, 'utf8')) as ProbeView;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

/** The final (not "running…") response to the command sent with response_url id `id`. */
const finalResponse = (standIn: SlackStandIn, id: string, timeoutMs: number) =>
  standIn.waitFor((c) => c.kind === 'response' && c.method === id && !String(c.body.text).startsWith('running'), timeoutMs);

/** Writes `count` instances straight into etcd, 100 per transaction, as a large existing registry. */
async function fill(endpoint: string, count: number, service: (i: number) => string): Promise<void> {
  const client = new Etcd3({ hosts: endpoint });
  try {
    for (let batch = 0; batch < count / 100; batch++) {
      const ops = Array.from({ length: 100 }, (_, j) => {
        const i = batch * 100 + j;
        return client.put(`/services/${service(i)}/i-${i}`).value(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}:80`);
      });
      await client
        .if('/services/none', 'Version', '==', 0)
        .then(...ops)
        .commit();
    }
  } finally {
    client.close();
  }
}

async function slash(ctx: PhaseContext, text: string, id: string): Promise<void> {
  const res = await postSlashCommand(ctx.events, SECRET, { text, user_id: USER, channel_id: 'C0BENCH', response_url: ctx.standIn.responseUrl(id) });
  if (res.status !== 200) throw new Error(`${text}: ack status ${res.status}`);
}

async function statusCommand(ctx: PhaseContext, text: string, id: string): Promise<string> {
  await slash(ctx, text, id);
  const reply = await finalResponse(ctx.standIn, id, 60_000);
  const blocks = (reply.body.blocks as unknown[] | undefined)?.length ?? 0;
  return `\`${text}\` answered with ${blocks} blocks and ${String(reply.body.text).length} chars of fallback text`;
}

const PHASES: Phase[] = [
  { name: 'idle (empty registry)', run: async () => undefined },
  {
    name: '10,000 instances in 100 services (registered before start) + `status`',
    prepare: (etcd) => fill(etcd, 10_000, (i) => `svc-${i % 100}`),
    run: (ctx) => statusCommand(ctx, 'status', 'status-all'),
  },
  {
    name: '10,000 instances in one service (registered before start) + `status <service>`',
    prepare: (etcd) => fill(etcd, 10_000, () => 'big'),
    run: (ctx) => statusCommand(ctx, 'status big', 'status-big'),
  },
  {
    // Every change goes through the #ops feed's watch and the change history.
    name: '10,000 instances registered while it runs (100 per etcd transaction) + `status`',
    run: async (ctx) => {
      await fill(ctx.etcd, 10_000, (i) => `svc-${i % 100}`);
      return statusCommand(ctx, 'status', 'status-all');
    },
  },
  {
    name: '500 concurrent signed slash commands (`register`, each an etcd write)',
    run: async (ctx) => {
      const t0 = performance.now();
      await Promise.all(Array.from({ length: 500 }, (_, i) => slash(ctx, `register mem m-${i} 10.8.${i >> 8}.${i & 255}:80`, `slash-${i}`)));
      // Read memory once every command has finished, not just been acked.
      const replies = await Promise.all(Array.from({ length: 500 }, (_, i) => finalResponse(ctx.standIn, `slash-${i}`, 120_000)));
      const failed = replies.filter((r) => !String(r.body.text).includes('registered')).length;
      if (failed) throw new Error(`${failed} of 500 register commands did not answer "registered"`);
      return `all 500 acked and answered "registered" within ${fmt((performance.now() - t0) / 1000, 1)} s`;
    },
  },
];

async function runPhase(phase: Phase, index: number, nodeArgs: readonly string[], profile: boolean): Promise<Reading> {
  const etcd = await startEtcd();
  const standIn = await startSlackStandIn();
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-bench-mem-'));
  let child: ChildProcess | undefined;
  let stopping = false;
  try {
    await writeFile(join(dir, 'acl.yaml'), `rules:\n  - allow: ["*"]\n    users: [${USER}]\n`);
    const configPath = join(dir, 'switchyard.yaml');
    // An #ops feed channel, as a production bot has: registry changes flow through the poster.
    await writeFile(configPath, `etcd:\n  endpoints: [${etcd.endpoint}]\nacl:\n  path: ./acl.yaml\nslack:\n  feedChannel: C0FEED\n`);
    await phase.prepare?.(etcd.endpoint);
    const port = await freePort();
    const probeOut = join(dir, 'probe.json');
    const bin = join(BUILD_DIR, 'src', 'cli.js');
    child = spawn(process.execPath, [...nodeArgs, `--import=data:text/javascript,${encodeURIComponent(PROBE)}`, bin, 'serve', '--config', configPath], {
      env: {
        ...process.env,
        HOST: '127.0.0.1',
        PORT: String(port),
        SLACK_BOT_TOKEN: 'xoxb-bench',
        SLACK_SIGNING_SECRET: SECRET,
        SLACK_API_URL: standIn.apiUrl,
        LOG_LEVEL: 'warn',
        SY_MEMPROBE_OUT: probeOut,
        ...(profile ? { SY_MEMPROBE_PROFILE: process.env.MEMORY_PROFILE ?? 'live' } : {}),
        ...(SNAPSHOT && !profile ? { SY_MEMPROBE_SNAPSHOT: join(tmpdir(), `switchyard-memory-${index}.heapsnapshot`) } : {}),
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    // The audit log goes to stderr; only its tail is kept, to explain a serve that died.
    let stderrTail = '';
    child.stderr!.on('data', (d: Buffer) => (stderrTail = (stderrTail + d.toString()).slice(-4000)));
    child.once('exit', (code, signal) => {
      if (!stopping) console.error(`serve exited during the phase (${code ?? signal}):\n${stderrTail}`);
    });
    const pid = child.pid!;
    const base = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${base}/healthz`).catch(() => undefined))?.ok === true, 120_000, 'serve to be healthy');
    await sleep(SETTLE_MS);
    const note = await phase.run({ events: `${base}/slack/events`, etcd: etcd.endpoint, standIn }).catch((err: unknown) => {
      console.error(`${phase.name} failed; the end of serve's log:\n${stderrTail}`);
      throw err;
    });
    await sleep(SETTLE_MS);
    const first = await smaps(pid);
    const now = await probe(child, probeOut, 1);
    const laterMb: number[] = [];
    for (const wait of profile ? [] : LATER_MS) {
      await sleep(wait);
      laterMb.push((await smaps(pid)).rss / MB);
    }
    const peakMb = await peakRssMb(pid);
    const afterGc = await probe(child, probeOut, 2);
    return { rssMb: first.rss / MB, laterMb, peakMb, fileMb: first.file / MB, anonMb: first.anon / MB, now, afterGc, ...(note ? { note } : {}) };
  } finally {
    stopping = true;
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child?.kill('SIGKILL'), 10_000);
      await exited(child);
      clearTimeout(killer);
    }
    await standIn.close();
    await etcd.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Live heap by the package whose code allocated it (innermost frame outside node's own modules). */
function byPackage(head: ProfileNode, top = 6): string {
  const sizes = new Map<string, number>();
  let total = 0;
  const walk = (node: ProfileNode, owner: string) => {
    const url = node.callFrame.url;
    const here = url && !url.startsWith('node:') ? packageOf(url) : owner;
    if (node.selfSize) {
      sizes.set(here, (sizes.get(here) ?? 0) + node.selfSize);
      total += node.selfSize;
    }
    for (const c of node.children) walk(c, here);
  };
  walk(head, '(module loading: node internals)');
  const rows = [...sizes].sort((a, b) => b[1] - a[1]).slice(0, top);
  return `${rows.map(([k, v]) => `${k} ${fmt(v / MB)}`).join(', ')} MB (of ${fmt(total / MB)} MB sampled)`;
}

function packageOf(url: string): string {
  const dep = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (dep) return dep[1]!;
  if (url.includes('/bench-memory-dist/')) return 'switchyard';
  return url.startsWith('data:') ? '(memory probe)' : url;
}

/**
 * RSS at the reading, split: file-backed pages (the node binary and libraries), the V8 heap
 * V8 holds (of it: used, and live after a forced full GC at the end), external buffers, and
 * the rest of the anonymous memory (malloc, thread stacks, heap pages V8 pools).
 */
function breakdown(r: Reading): string {
  const { usage, spaces, code } = r.now;
  const mb = (n: number | undefined) => fmt((n ?? 0) / MB);
  const space = (name: string, label: string) => `${label} ${mb(spaces[name]?.used)}/${mb(spaces[name]?.size)}`;
  const other = r.anonMb - (usage.heapTotal + usage.external) / MB;
  return [
    `node binary and libraries (file-backed) ${fmt(r.fileMb)} MB;`,
    `V8 heap ${mb(usage.heapTotal)} MB held, ${mb(usage.heapUsed)} used, ${mb(r.afterGc.usage.heapUsed)} live after a forced full GC`,
    `(used/held: ${space('old_space', 'old')}, ${space('new_space', 'new')}, ${space('code_space', 'code')}, ${space('large_object_space', 'large objects')};`,
    `compiled code + bytecode ${mb(code.code_and_metadata_size + code.bytecode_and_metadata_size)});`,
    `external ${mb(usage.external)} MB; other anonymous (malloc, stacks, pooled heap pages) ${fmt(other)} MB;`,
    `RSS after the forced GC ${mb(r.afterGc.usage.rss)} MB`,
  ].join(' ');
}

const rssLine = (r: Reading) => `${fmt(r.rssMb)} MB (+10 s ${fmt(r.laterMb[0]!)}, +30 s ${fmt(r.laterMb[1]!)}; peak ${fmt(r.peakMb)})`;
const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

interface PhaseResult {
  phase: Phase;
  runs: Reading[];
  /** Runs that did not finish (the phase's own failure, e.g. replies that never came), with why. */
  failures: string[];
  /** The median run; undefined when every run failed. */
  typical?: Reading;
  profile?: string;
}

/** REPEAT runs of a phase; a failed run is reported with the others, not hidden by a retry. */
async function measure(phase: Phase, index: number, nodeArgs: readonly string[], label: string): Promise<PhaseResult> {
  const runs: Reading[] = [];
  const failures: string[] = [];
  for (let n = 1; n <= REPEAT; n++) {
    console.error(`memory: ${phase.name}${label} (run ${n} of ${REPEAT})`);
    let reading: Reading;
    try {
      reading = await runPhase(phase, index, nodeArgs, false);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      failures.push(why.length > 160 ? `${why.slice(0, 160)}…` : why);
      console.error(`  run ${n} failed: ${why.slice(0, 400)}`);
      continue;
    }
    runs.push(reading);
    console.log(`${phase.name}${label}: RSS ${rssLine(reading)} — ${breakdown(reading)}${reading.note ? `. ${reading.note}` : ''}`);
    if (reading.afterGc.snapshot) console.log(`  heap snapshot: ${reading.afterGc.snapshot}`);
  }
  const mid = runs.length ? median(runs.map((r) => r.rssMb)) : undefined;
  return { phase, runs, failures, ...(mid !== undefined ? { typical: runs.find((r) => r.rssMb === mid)! } : {}) };
}

/** The summary of the breakdowns: what is fixed, what is live, what is held garbage. */
function whereItGoes(results: PhaseResult[], variant: PhaseResult[], flag: string): string[] {
  const typical = results.flatMap((r) => (r.typical ? [r.typical] : []));
  if (!typical.length) return [];
  const mb = (n: number) => fmt(n / MB);
  const live = typical.map((r) => r.afterGc.usage.heapUsed);
  const worst = typical.reduce((a, b) => (b.rssMb > a.rssMb ? b : a));
  const worstVariant = Math.max(...variant.flatMap((r) => (r.typical ? [r.typical.rssMb] : [])));
  return [
    `Where the memory goes: ${fmt(median(typical.map((r) => r.fileMb)))} MB is the node binary and its libraries (file-backed, the same in every phase); nearly all the rest is V8 heap. ` +
      `Live objects after a forced full GC are ${mb(Math.min(...live))}–${mb(Math.max(...live))} MB in every phase (the loaded modules and their state; per package below), so nothing accumulates. ` +
      `What grows is garbage V8 holds on to: in the largest phase it had grown old space to ${mb(worst.now.spaces.old_space?.size ?? 0)} MB (${mb(worst.now.spaces.old_space?.used ?? 0)} MB of it in use) ` +
      `and keeps a ${mb(worst.now.spaces.new_space?.size ?? 0)} MB young generation; RSS stays there, after a forced GC too, until V8 gives pages back when idle (the +30 s readings).` +
      (Number.isFinite(worstVariant) ? ` With ${flag} V8 collects sooner: no phase above ${fmt(worstVariant)} MB.` : ''),
  ];
}

/**
 * The compiled build, as the image runs it, in a directory of the bench's own: `npm run build`
 * empties dist/ first, so one run elsewhere mid-bench would pull the program from under it.
 * Inside the repository (a git-ignored directory) so that node_modules and package.json resolve.
 */
const BUILD_DIR = fileURLToPath(new URL('../.switchyard/bench-memory-dist/', import.meta.url));

async function main(): Promise<void> {
  if (!process.env.MEMORY_REUSE_BUILD) {
    execFileSync(process.execPath, [fileURLToPath(new URL('../scripts/build-dist.mjs', import.meta.url)), '--out-dir', BUILD_DIR], { stdio: 'inherit' });
  }
  const loadBefore = loadavg()[0]!;
  const phases = [...PHASES.entries()].filter(([i]) => !ONLY.length || ONLY.includes(i));
  const results: PhaseResult[] = [];
  for (const [i, phase] of phases) {
    const result = await measure(phase, i, NODE_ARGS, '');
    if (PROFILE) {
      const head = (await runPhase(phase, i, NODE_ARGS, true)).afterGc.profile?.head;
      if (head && process.env.MEMORY_PROFILE_OUT) await writeFile(`${process.env.MEMORY_PROFILE_OUT}-${i}.json`, JSON.stringify({ head }));
      if (head) result.profile = byPackage(head);
      if (head)
        console.log(`  heap by the package that allocated it (${process.env.MEMORY_PROFILE === 'all' ? 'all allocations' : 'live'}): ${result.profile}`);
    }
    results.push(result);
  }
  // The same phases with V8's default heap policy: what serve's own setting saves.
  const variant: PhaseResult[] = [];
  if (VARIANT) for (const [i, phase] of phases) variant.push(await measure(phase, i, [...NODE_ARGS, ...VARIANT_ARGS], ` with ${VARIANT_ARGS.join(' ')}`));
  if (ONLY.length) return;
  const spread = (runs: Reading[]) => runs.map((r) => fmt(r.rssMb)).join(', ');
  const flag = `\`node ${VARIANT_ARGS.join(' ')}\``;
  const row =
    (suffix: string) =>
    ({ phase, runs, failures, typical }: PhaseResult) => ({
      metric: `RSS, ${phase.name}${suffix}; median of ${runs.length} (all: ${spread(runs)})${failures.length ? `; ${failures.length} more run(s) failed` : ''}`,
      value: typical ? rssLine(typical) : 'no run finished',
      target: `≤ ${TARGET_MB} MB`,
      pass: typical ? typical.rssMb <= TARGET_MB : false,
    });
  const detail =
    (suffix: string) =>
    ({ phase, typical, profile }: PhaseResult) =>
      `${phase.name}${suffix}: ${typical ? breakdown(typical) : 'no run finished'}${typical?.note ? `. ${typical.note}` : ''}` +
      `${profile ? `. Live JS heap by the package that allocated it (sampled, separate run): ${profile}` : ''}.`;
  const failed =
    (suffix: string) =>
    ({ phase, failures }: PhaseResult) =>
      failures.map((f) => `${phase.name}${suffix}: a run failed: ${f}`);
  await writeSection(
    '05-memory',
    'Memory of `serve`, each phase in a fresh process (issue 9)',
    [...results.map(row('')), ...variant.map(row(`, ${flag}`))],
    [
      '`npm run bench -- memory` (bench/memory.ts): the compiled build (`node dist/src/cli.js serve`, built by the bench into a directory of its own) in HTTP mode with an #ops feed channel, Slack Web API a local stand-in, a fresh etcd 3.4 and a fresh ' +
        `process for every run of every phase. RSS from /proc/<pid>/smaps_rollup ${SETTLE_MS / 1000} s after the phase's last reply (the figure judged), again 10 s and 30 s later; ` +
        'peak = VmHWM over the process’s life, start-up included. The run shown is the median one. ' +
        `1-min load average ${fmt(loadBefore, 2)} before, ${fmt(loadavg()[0]!, 2)} after, on ${cpus().length} cores shared with other work.`,
      ...whereItGoes(results, variant, flag),
      `serve sets V8's --optimize-for-size at start-up (src/small-heap.ts: V8 then collects sooner instead of growing the heap around garbage). Rows marked ${flag} start it with V8's default policy instead, for comparison.`,
      ...results.map(detail('')),
      ...variant.map(detail(`, ${flag}`)),
      ...results.flatMap(failed('')),
      ...variant.flatMap(failed(`, ${flag}`)),
    ],
  );
}

await main();
