import type { ApplyResult, CommandContext, ErrorCode, LocalRouting, Plugin, PluginApi, Reply, Table } from '../src/plugin.js';

/** Enough to read in chat; the whole file is one `switchyard render --once --dry-run` away. */
const MAX_LINES = 150;
const MAX_SKIPPED = 10;
/** A reload takes well under a second; this only bounds a stuck HAProxy. */
const APPLY_TIMEOUT_MS = 30_000;

/** `render [--diff] [--apply]`: the config the registry would produce, its diff to the live one, and applying it now. */
export default function render(api: PluginApi): Plugin {
  const { z } = api;
  return {
    name: 'render',
    commands: [
      api.defineCommand({
        name: 'render',
        summary: 'show the HAProxy config the registry would produce (--diff: against the live one; --apply: validate it with haproxy -c and apply it now)',
        args: z.object({
          diff: z.boolean().optional().describe('diff'),
          apply: z.boolean().optional().describe('apply'),
        }),
        positionals: [],
        async handler(ctx, { diff, apply }) {
          const hap = localAgent(api, ctx);
          let cand;
          try {
            cand = await hap.candidate();
          } catch (err) {
            // A template file that no longer loads: the agent reports the refusal like any
            // failed apply (its etcd key, #ops, status), and this reply is that report.
            if (apply && api.errors.is(err, 'E_CONFIG')) return applyReply(ctx, await hap.applyNow(APPLY_TIMEOUT_MS), [], []);
            throw err;
          }
          const live = await hap.live();
          const same = live === cand.text;
          const details = notes(cand.skipped, cand.templateChanged);
          const tables: { title?: string; table: Table }[] = [];
          if (diff) tables.push({ table: await diffTable(live, cand.text, hap.configPath) });
          else if (!apply) tables.push({ table: configTable(cand.text, hap.configPath) });

          if (!apply) {
            const verdict =
              live === undefined
                ? `there is no live config yet at ${hap.configPath}`
                : same
                  ? 'identical to the live config'
                  : `differs from the live config${diff ? '' : ' (render --diff shows how)'}`;
            return {
              ok: true,
              summary: `haproxy.cfg as the registry would produce it (agent ${hap.agentId}): ${verdict}`,
              ...(details.length ? { details } : {}),
              tables,
            };
          }
          // Validate first: a candidate haproxy rejects never reaches the agent.
          const check = await hap.check(cand.text);
          if (!check.ok) {
            return {
              ok: false,
              code: 'E_CONFIG',
              summary: `haproxy -c rejected the candidate config: nothing was applied, the live config is unchanged`,
              details: [...check.lines, ...details],
              tables,
            };
          }
          const r = await hap.applyNow(APPLY_TIMEOUT_MS);
          return applyReply(ctx, r, details, tables);
        },
      }),
    ],
  };
}

function localAgent(api: PluginApi, ctx: CommandContext): LocalRouting {
  const hap = ctx.routing.local;
  if (hap) return hap;
  return api.errors.fail('E_UNAVAILABLE', 'render needs haproxy: configured on this bot: it renders with the local agent’s template and paths', {
    details: ['on an HAProxy host, `switchyard render --once --dry-run` prints the same from the command line'],
  });
}

function notes(skipped: string[], templateChanged: boolean): string[] {
  const out: string[] = [];
  if (templateChanged) out.push('the template file changed since the agent loaded it: this is rendered with the file; render --apply loads it');
  for (const s of skipped.slice(0, MAX_SKIPPED)) out.push(`skipped ${s}`);
  if (skipped.length > MAX_SKIPPED) out.push(`… and ${skipped.length - MAX_SKIPPED} more skipped keys`);
  return out;
}

const CODE_OF: Record<NonNullable<ApplyResult['failure']>, ErrorCode> = {
  check: 'E_CONFIG',
  render: 'E_CONFIG',
  write: 'E_CONFIG',
  unavailable: 'E_UNAVAILABLE',
  reload: 'E_UNAVAILABLE',
  runtime: 'E_UNAVAILABLE',
  internal: 'E_INTERNAL',
};

function applyReply(ctx: CommandContext, r: ApplyResult, details: string[], tables: { table: Table }[]): Reply {
  if (r.ok) return { ok: true, summary: `applied: ${ctx.routing.describe(r)}`, ...(details.length ? { details } : {}), tables };
  return {
    ok: false,
    code: CODE_OF[r.failure ?? 'internal'],
    // The one-line description already says the last good config was kept.
    summary: ctx.routing.describe(r),
    details: [...(r.error ?? []), ...details],
    tables,
  };
}

/** One column, so the renderer shows it as a code block; cut at MAX_LINES with a note. */
function linesTable(header: string, lines: string[]): Table {
  const rows = lines.slice(0, MAX_LINES).map((l) => [l]);
  const more = lines.length - rows.length;
  if (more > 0) rows.push([`… ${more} more line${more === 1 ? '' : 's'} (switchyard render --once --dry-run on the HAProxy host prints them all)`]);
  return { header: [header], rows };
}

function configTable(text: string, path: string): Table {
  const lines = text.replace(/\n$/, '').split('\n');
  return linesTable(`# ${path} (candidate, ${lines.length} lines)`, lines);
}

async function diffTable(live: string | undefined, candidate: string, path: string): Promise<Table> {
  // Loaded on first use: most bots never diff, and every idle megabyte counts.
  const { structuredPatch } = await import('diff');
  const patch = structuredPatch(path, path, live ?? '', candidate, undefined, undefined, { context: 3 });
  if (patch.hunks.length === 0) return { header: [`# no difference: ${path} is what the registry produces`], rows: [] };
  const lines = [`+++ candidate`];
  let added = 0;
  let removed = 0;
  for (const h of patch.hunks) {
    lines.push(`@@ -${h.oldStart},${h.oldLines} +${h.newStart},${h.newLines} @@`);
    for (const l of h.lines) {
      if (l.startsWith('+')) added++;
      else if (l.startsWith('-')) removed++;
      lines.push(l);
    }
  }
  return linesTable(`--- ${path} (live${live === undefined ? ': none yet' : ''})  +${added} −${removed}`, lines);
}
