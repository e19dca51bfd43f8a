/**
 * Stability under load: the whole vitest suite N times in a row (default 10) while two
 * processes burn a CPU each beside it, so a race decided by timing shows up as a red run
 * here rather than on someone's loaded CI machine. Reports how many runs were green and,
 * for each red run, which tests failed; writes its section of docs/BENCHMARKS.md.
 *
 *   npm run stress             # 10 runs
 *   npm run stress -- 3        # 3 runs (also STRESS_RUNS=3)
 *   npm run stress -- 3 test/drain.test.ts   # only these files; not recorded in BENCHMARKS.md
 *
 * Lint and type-check are left out: they do not depend on timing.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { writeSection } from './lib.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BURNERS = 2;
/** A run that takes longer than this is hung: it is stopped and counted red. */
const RUN_LIMIT_MS = Number(process.env.STRESS_RUN_LIMIT_MS ?? 45 * 60_000);

const runs = Number(process.argv[2] ?? process.env.STRESS_RUNS ?? 10);
/** vitest file filters: a partial run, for chasing one flaky file; its figures are not the suite's. */
const filters = process.argv.slice(3);
if (!Number.isInteger(runs) || runs < 1) {
  console.error(`usage: npm run stress -- [runs]   (runs: a positive integer, got "${process.argv[2] ?? process.env.STRESS_RUNS}")`);
  process.exit(2);
}

/** The part of vitest's JSON report this script reads. */
const reportSchema = z.object({
  testResults: z.array(
    z.object({
      name: z.string(),
      status: z.string(),
      message: z.string().optional(),
      assertionResults: z.array(z.object({ fullName: z.string(), status: z.string() })).default([]),
    }),
  ),
});

interface RunOutcome {
  n: number;
  green: boolean;
  exitCode: number | null;
  seconds: number;
  /** "file › test" for each failed test; a file that failed to load or crashed is listed by itself. */
  failures: string[];
}

const children = new Set<ChildProcess>();

/** Kill what this script started, by PID: the burners and a vitest still running (its whole group). */
function killChildren(): void {
  for (const child of children) {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) continue;
    try {
      // vitest runs detached in its own group (its workers, etcd, HAProxy): negative PID = that group.
      process.kill(child.spawnargs.includes('vitest') ? -child.pid : child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
process.on('exit', killChildren);
/** Set by Ctrl-C / SIGTERM: the run in progress is stopped and the finished ones are reported. */
let interrupted: NodeJS.Signals | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    // A second signal: the operator has stopped waiting for the report too.
    if (interrupted) process.exit(130);
    interrupted = sig;
    console.error(`stress: ${sig}: stopping the run in progress; the runs already finished are reported`);
    killChildren();
  });
}

function startBurner(): ChildProcess {
  const child = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
  children.add(child);
  return child;
}

async function runSuite(n: number, dir: string): Promise<RunOutcome> {
  const report = join(dir, `run-${n}.json`);
  const started = Date.now();
  const child = spawn('npx', ['vitest', 'run', '--reporter=dot', '--reporter=json', `--outputFile.json=${report}`, ...filters], {
    cwd: ROOT,
    stdio: ['ignore', 'inherit', 'inherit'],
    detached: true,
  });
  children.add(child);
  const limit = setTimeout(() => {
    console.error(`stress: run ${n} still going after ${RUN_LIMIT_MS / 60_000} min: stopping it`);
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  }, RUN_LIMIT_MS);
  const exitCode = await new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  clearTimeout(limit);
  children.delete(child);
  const seconds = Math.round((Date.now() - started) / 1000);
  const failures = await failuresIn(report, exitCode);
  return { n, green: exitCode === 0 && failures.length === 0, exitCode, seconds, failures };
}

async function failuresIn(report: string, exitCode: number | null): Promise<string[]> {
  let parsed: z.infer<typeof reportSchema>;
  try {
    parsed = reportSchema.parse(JSON.parse(await readFile(report, 'utf8')));
  } catch (err) {
    return exitCode === 0
      ? []
      : [`(no test report: vitest exited ${exitCode ?? 'by a signal'}; ${err instanceof Error ? err.message.split('\n')[0] : String(err)})`];
  }
  const out: string[] = [];
  for (const file of parsed.testResults) {
    const name = relative(ROOT, file.name);
    const failed = file.assertionResults.filter((a) => a.status === 'failed');
    for (const a of failed) out.push(`${name} › ${a.fullName}`);
    if (file.status === 'failed' && failed.length === 0) out.push(`${name} (${(file.message ?? 'failed outside a test').split('\n')[0]})`);
  }
  if (out.length === 0 && exitCode !== 0)
    out.push(`(vitest exited ${exitCode ?? 'by a signal'} with every test passing: an unhandled error or a teardown failure)`);
  return out;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'sy-stress-'));
  const loadBefore = loadavg()[0]!;
  const startedAt = new Date();
  const outcomes: RunOutcome[] = [];
  const burners = Array.from({ length: BURNERS }, startBurner);
  console.error(`stress: ${runs} run(s) of the suite beside ${BURNERS} CPU burners (PIDs ${burners.map((b) => b.pid).join(', ')})`);
  try {
    for (let n = 1; n <= runs && !interrupted; n++) {
      const o = await runSuite(n, dir);
      // A run cut short by the signal proves nothing either way: not counted.
      if (interrupted) break;
      outcomes.push(o);
      console.error(`stress: run ${n}/${runs} ${o.green ? 'green' : 'RED'} in ${o.seconds} s${o.failures.length ? `: ${o.failures.join('; ')}` : ''}`);
    }
  } finally {
    // The burners are children too; after a signal they are already gone (killed by signal,
    // exitCode stays null), which a kill of its own would meet as ESRCH and lose the report.
    killChildren();
    await rm(dir, { recursive: true, force: true });
  }
  if (outcomes.length === 0) {
    console.error('stress: no run finished: nothing to report');
    process.exitCode = 130;
    return;
  }
  const done = outcomes.length;
  const green = outcomes.filter((o) => o.green).length;
  const red = outcomes.filter((o) => !o.green);
  const counts = new Map<string, number>();
  for (const o of red) for (const f of o.failures) counts.set(f, (counts.get(f) ?? 0) + 1);
  const of = done === runs ? `${runs}` : `${done} (stopped after ${done} of ${runs})`;
  console.log(`stress: ${green}/${of} green${red.length ? `; failing: ${[...counts.keys()].join('; ')}` : ''}`);
  process.exitCode = interrupted ? 130 : green === runs ? 0 : 1;
  if (filters.length > 0) {
    console.error(`stress: only ${filters.join(' ')} ran: docs/BENCHMARKS.md left as it was`);
    return;
  }
  const secs = outcomes.map((o) => o.seconds).sort((a, b) => a - b);
  await writeSection(
    '14-stress',
    'Stress: the whole suite run after run beside two CPU burners (issue 14)',
    [
      {
        metric: `green runs of \`vitest run\` (${done} in a row${done === runs ? '' : `, stopped after ${done} of ${runs}`})`,
        value: `${green}/${done}`,
        target: `${runs}/${runs}`,
        pass: done === runs ? green === runs : green === done ? undefined : false,
      },
      {
        metric: 'run duration min / median / max',
        value: `${secs[0]} / ${secs[Math.floor(secs.length / 2)]} / ${secs[secs.length - 1]} s`,
        target: '—',
        pass: undefined,
      },
    ],
    [
      `Command: \`npm run stress -- ${runs}\` (bench/stress.ts), started ${startedAt.toISOString()}: \`vitest run\` (all test files, 2 workers) ${runs} time(s) in a row while ${BURNERS} \`node -e "for(;;){}"\` processes each keep a core busy; started and killed by PID by the script.`,
      `1-min load average ${loadBefore.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after.`,
      red.length === 0 ? 'Every run was green.' : `Red runs: ${red.map((o) => `#${o.n} (exit ${o.exitCode ?? 'signal'}, ${o.seconds} s)`).join(', ')}.`,
      ...[...counts].map(([test, times]) => `failed in ${times} run(s): ${test}`),
    ],
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 70;
});
