import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';

/** Shared bits of the benchmark scripts: percentiles, machine facts, result fragments. */
export const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
export const REPORT = fileURLToPath(new URL('../docs/BENCHMARKS.md', import.meta.url));

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}

export function summarize(samples: readonly number[]) {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), max: s[s.length - 1] ?? NaN };
}

export const fmt = (n: number, digits = 1) => n.toFixed(digits);

export function machine(): string {
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  return `${cpu}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Node ${process.version}, ${process.platform}/${process.arch}`;
}

/** One benchmark's section of docs/BENCHMARKS.md, kept until that benchmark runs again. */
export async function writeSection(
  name: string,
  title: string,
  rows: { metric: string; value: string; target: string; pass: boolean | undefined }[],
  notes: string[] = [],
) {
  await mkdir(RESULTS_DIR, { recursive: true });
  const table = [
    '| metric | result | target | |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${r.metric} | ${r.value} | ${r.target} | ${r.pass === undefined ? '' : r.pass ? 'met' : '**missed**'} |`),
  ];
  const body = [`## ${title}`, '', `Run ${new Date().toISOString()} on ${machine()}.`, '', ...table, '', ...notes.map((n) => `- ${n}`), ''].join('\n');
  await writeFile(`${RESULTS_DIR}${name}.md`, body);
  await buildReport();
}

export async function buildReport() {
  const files = (await readdir(RESULTS_DIR)).filter((f) => f.endsWith('.md')).sort();
  const sections = await Promise.all(files.map((f) => readFile(`${RESULTS_DIR}${f}`, 'utf8')));
  const head = [
    '# Benchmarks',
    '',
    'Written by `npm run bench` (bench/run.sh); each section says when and on which machine it ran.',
    'Figures, not pass/fail tests: the suite never times anything.',
    '',
  ];
  await writeFile(REPORT, [...head, ...sections].join('\n'));
}
