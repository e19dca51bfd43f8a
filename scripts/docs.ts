/**
 * `npm run docs`: rewrites the generated parts of docs/ from the code, so the reference
 * cannot drift from what is validated — the configuration tables from the zod schema in
 * src/config/schema.ts (keys, types, limits, defaults), the command list from the plugins'
 * argument schemas (the usage `help` prints). Only the text between a block's markers is
 * replaced. `npm run docs -- --check` changes nothing and exits 1 when a block is stale;
 * test/docs.test.ts fails the same way.
 *
 * Every configuration key needs a sentence in KEY_DOCS below: a key added to the schema
 * without one, or a sentence left for a key that is gone, stops the generator.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { z } from 'zod';
import { loadBuiltinPlugins } from '../src/app/builtin-plugins.js';
import { offlineFacades } from '../src/app/plugin-check.js';
import { createLogger } from '../src/core/log.js';
import { configSchema } from '../src/config/schema.js';
import { formatDuration } from '../src/core/names.js';
import { usage } from '../src/core/usage.js';
import { orchestratorSettings, type OrchestratorSettings } from '../src/orchestrator/settings.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Defaults that code applies after validation, so the schema shows them as optional. */
const docker = orchestratorSettings({ docker: {}, registry: { prefix: '/services', switchyardPrefix: '/switchyard' } });
const dockerDefault = (k: keyof OrchestratorSettings) => `\`${formatDuration(docker[k] as number)}\``;

export interface KeyDoc {
  text: string;
  /** Shown when the schema has no default of its own. */
  default?: string;
}

/** What each key does. Types, limits, required and schema defaults come from the schema. */
const KEY_DOCS: Record<string, KeyDoc> = {
  etcd: { text: 'The etcd v3 cluster holding the registry. The only required section.' },
  'etcd.endpoints': { text: 'Client URLs of the etcd members. `ETCD_ENDPOINTS` (comma-separated) replaces them.' },
  'etcd.tls': { text: 'TLS to etcd; PEM files, paths relative to this file.' },
  'etcd.tls.ca': { text: 'CA certificate that signed the etcd server certificates.' },
  'etcd.tls.cert': { text: 'Client certificate, for etcd client-certificate authentication.' },
  'etcd.tls.key': { text: 'Key of the client certificate.' },
  'etcd.auth': { text: 'etcd user authentication.' },
  'etcd.auth.username': { text: 'etcd user; the password comes from `ETCD_PASSWORD`, never from this file.' },
  'etcd.commandTimeout': {
    text: 'One deadline per registry operation, across its retries and endpoints (100ms to 60s): during an outage a command fails after this long, naming the endpoints it tried.',
  },
  registry: { text: 'Where the registry lives in etcd (see the etcd layout).' },
  'registry.prefix': { text: 'Instances are `<prefix>/<service>/<instance>` = `host:port`, the layout confd templates and registrator read.' },
  'registry.switchyardPrefix': { text: 'switchyard’s own keys: instance state, desired replicas, agent reports, locks, the feed’s bookkeeping.' },
  acl: { text: 'Access control.' },
  'acl.path': { text: 'The ACL file (see acl.md), relative to this file. Reloaded when it changes.' },
  slack: { text: 'Slack settings that are not secrets (tokens come from the environment).' },
  'slack.feedChannel': {
    text: 'ID of the #ops channel the feed posts to: a feed of everything, the shorthand for one `slack.feeds` entry. Without it (and without `feeds`) `serve` posts no feed.',
  },
  'slack.feeds': {
    text:
      'Routed feeds, each `{ channel, services, kinds, quiet }`: `channel` a channel ID (one feed per channel); `services` names or globs (`web-*`, default all; HAProxy applies name no service and follow `kinds` alone); ' +
      '`kinds` of `registry` (instances, state, weights, desired replicas), `haproxy` (applies, agents), `docker` (changes by container deaths, restarts, reconcile), `approval`, `acl` (ACL reloads), default all; ' +
      '`quiet` of `ttl-refresh` (instances on a TTL lease appearing and expiring), `applies` (successful HAProxy applies; failures always show), `weights`. ' +
      'Each change goes to every feed it matches; each channel is paced (at most one message a second), coalesced and posted exactly once on its own. `feed mute <service> 30m` typed in a feed channel mutes that feed (elsewhere: every feed) until it expires or `feed unmute`.',
  },
  haproxy: { text: 'The HAProxy agent. With this section `serve` and `shell --agent` run the agent in-process; `switchyard agent` runs it alone.' },
  'haproxy.config': { text: 'The haproxy.cfg the agent renders (temp file beside it, `haproxy -c`, atomic rename).' },
  'haproxy.adminSocket': {
    text: 'HAProxy’s runtime API socket (`stats socket … level admin`): servers are added, removed, drained and re-weighted through it.',
  },
  'haproxy.masterSocket': { text: 'The master CLI socket (`haproxy -W -S <path>`): `reload` and `show proc`.' },
  'haproxy.template': { text: 'A Handlebars template of your own, relative to this file.', default: 'the shipped template' },
  'haproxy.binary': { text: 'The `haproxy` used for `haproxy -c`; a bare name is looked up on `PATH`.' },
  'haproxy.agentId': {
    text: 'The agent’s name: its key `<switchyardPrefix>/agents/<agentId>` and its name in `status` and the feed.',
    default: 'the host name',
  },
  docker: {
    text: 'The Docker engine for `scale`, container deaths and reconciliation. `DOCKER_HOST` alone also enables it.',
  },
  'docker.host': {
    text: 'The engine: `unix:///path` or `tcp://host:port` (TLS from `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`). `DOCKER_HOST` wins.',
    default: '`unix:///var/run/docker.sock`',
  },
  'docker.owner': {
    text: 'Value of the `switchyard.owner` label on the containers this switchyard manages; containers with another owner are never touched.',
    default: `from \`registry.switchyardPrefix\` (\`${docker.owner}\`)`,
  },
  'docker.reconcileInterval': {
    text: 'How often `serve` compares containers with the registry (also at start and after the Docker event stream reconnects).',
    default: dockerDefault('reconcileIntervalMs'),
  },
  'docker.startTimeout': {
    text: 'Bound on a new container becoming running (and healthy, when its image has a HEALTHCHECK).',
    default: dockerDefault('startTimeoutMs'),
  },
  'docker.stopGrace': { text: 'SIGTERM to SIGKILL when a container is stopped.', default: dockerDefault('stopGraceMs') },
  'docker.drainTimeout': { text: 'On scale-down, how long to wait for a drained instance’s sessions to end.', default: dockerDefault('drainTimeoutMs') },
  'docker.lockTtl': { text: 'Lease of the per-service lock: how long a crashed holder blocks the service (at least 2s).', default: dockerDefault('lockTtlMs') },
  'docker.lockWait': {
    text: 'How long `scale`, `drain` or `undrain` waits for the lock held by another before it is refused.',
    default: dockerDefault('lockWaitMs'),
  },
  watch: {
    text: '`switchyard watch`, one per Docker host: registers the host’s containers labelled `switchyard.register=<service>` while they run, on its own lease (see [docs/watch.md](watch.md)).',
  },
  'watch.advertise': {
    text: 'This host’s address as the load balancers reach it (IP or DNS name, no port): registrations are `<advertise>:<published port>`. Required; never guessed from the interfaces.',
  },
  'watch.ttl': { text: 'Lease TTL of the watcher’s registrations (1s–5m): how long they outlive a crashed watcher, host or network cut.' },
  'watch.host': {
    text: 'The host ID in `status`, the feed (`by watch@<host>`) and the watcher’s key `<switchyardPrefix>/watchers/<host>`; unique per host.',
    default: 'the machine’s hostname',
  },
  history: {
    text: 'The change history `history` and `status <service>` list: recorded in etcd under `<switchyardPrefix>/history/` by one elected `serve` replica, so it survives restarts and etcd compaction.',
  },
  'history.retention': { text: 'How long a recorded change is kept (`168h` is 7 days).' },
  'history.maxEntries': { text: 'At most this many recorded revisions are kept; the oldest go first.' },
  plugins: {
    text: 'Plugins loaded after the built-in ones, in order: each a module path (relative to this file) or a package name, or `{ module, options }`.',
  },
  services: { text: 'Services by name. Each gets an HAProxy frontend and backend; one with an `image` can be scaled.' },
  'services.<name>': { text: 'One service; the name follows the service-name rule.' },
  'services.<name>.image': {
    text: 'Image of the service’s containers. Without one the service is routed only (instances registered by hand or by other tools) and `scale` refuses it.',
  },
  'services.<name>.port': { text: 'The container port to publish (required with `image`).' },
  'services.<name>.hostIp': { text: 'Host address the port is published on and registered with.' },
  'services.<name>.cmd': { text: 'Command of the containers, replacing the image’s.' },
  'services.<name>.env': { text: 'Environment of the containers.' },
  'services.<name>.mode': { text: 'HAProxy mode of the service’s frontend and backend.' },
  'services.<name>.listen': {
    text: 'Where HAProxy’s frontend for the service binds, e.g. `127.0.0.1:8080`. Without it the template renders no frontend for it.',
  },
  'services.<name>.maxReplicas': { text: 'Upper bound for `scale`.' },
  'services.<name>.restart': {
    text: '`always`: a container that dies is replaced under the same instance name (backing off when it keeps dying); `no`: it is deregistered and reported.',
  },
  'services.<name>.hostPorts': { text: 'Host ports to publish on, `9001` or `9001-9010`.', default: 'a free port Docker picks' },
  'services.<name>.backend': {
    text: '`docker`: containers on the engine at `docker.host`; `swarm`: one Swarm service (that engine must be a Swarm manager), each task registered as `<name>-<slot>` at its node’s address and its own host-mode port. `hostIp`, `hostPorts` and `restart` do not apply to `swarm` (Swarm restarts tasks itself).',
  },
};

// ---------------------------------------------------------------------------------------
// Reading the zod schema

type Def = {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  keyType?: z.ZodType;
  valueType?: z.ZodType;
  entries?: Record<string, string>;
  defaultValue?: unknown;
  checks?: { _zod: { def: Record<string, unknown> } }[];
  format?: string;
};

const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

interface Field {
  optional: boolean;
  /** The default as written in switchyard.yaml, when the schema has one. */
  default?: string;
  /** The innermost schema, wrappers peeled. */
  core: z.ZodType;
}

/** A duration field: its input is a string, and it turns `1s` into 1000. */
function isDuration(s: z.ZodType): boolean {
  const r = s.safeParse('1s');
  return r.success && r.data === 1000;
}

function peel(s: z.ZodType): Field {
  let optional = false;
  let dflt: unknown;
  let hasDefault = false;
  let cur = s;
  for (;;) {
    const d = defOf(cur);
    if (d.type === 'optional') optional = true;
    else if (d.type === 'default') {
      hasDefault = true;
      dflt = d.defaultValue;
    } else break;
    cur = d.innerType!;
  }
  const field: Field = { optional: optional || hasDefault, core: cur };
  if (hasDefault) field.default = formatDefault(dflt, cur);
  return field;
}

function formatDefault(value: unknown, core: z.ZodType): string {
  if (typeof value === 'number' && isDuration(core)) return `\`${formatDuration(value)}\``;
  if (Array.isArray(value)) return `\`[${value.join(', ')}]\``;
  if (typeof value === 'object' && value !== null) return Object.keys(value).length === 0 ? '`{}`' : 'see its keys';
  return `\`${String(value)}\``;
}

function checksOf(s: z.ZodType): Record<string, unknown>[] {
  return (defOf(s).checks ?? []).map((c) => c._zod.def);
}

/** How the value is written: type plus the limits the schema enforces. */
function describeType(s: z.ZodType): string {
  const d = defOf(s);
  switch (d.type) {
    case 'string': {
      // A described string is a value with its own rule (`host:port`), checked in a refinement.
      if (s.description) return `\`${s.description}\``;
      const checks = checksOf(s);
      const regex = checks.find((c) => c.check === 'string_format' && c.format === 'regex');
      const url = d.format === 'url' || checks.some((c) => c.check === 'string_format' && c.format === 'url');
      const min = checks.find((c) => c.check === 'min_length')?.minimum as number | undefined;
      const base = url ? 'URL' : 'string';
      if (regex) {
        // The schema's own message says it best; without one, the pattern.
        const message = typeof regex.error === 'function' ? (regex.error as (i: object) => unknown)({}) : undefined;
        return typeof message === 'string' && !message.includes((regex.pattern as RegExp).source)
          ? `${base}: ${message}`
          : `${base} matching \`${(regex.pattern as RegExp).source}\``;
      }
      return min !== undefined && min > 0 ? `non-empty ${base}` : base;
    }
    case 'number': {
      const checks = checksOf(s);
      const int = checks.some((c) => c.check === 'number_format' && String(c.format).includes('int'));
      const min = checks.find((c) => c.check === 'greater_than')?.value as number | undefined;
      const max = checks.find((c) => c.check === 'less_than')?.value as number | undefined;
      const range = min !== undefined && max !== undefined ? ` ${min}–${max}` : min !== undefined ? ` ≥ ${min}` : max !== undefined ? ` ≤ ${max}` : '';
      return `${int ? 'integer' : 'number'}${range}`;
    }
    case 'boolean':
      return 'true or false';
    case 'enum':
      return Object.values(d.entries ?? {})
        .map((v) => `\`${v}\``)
        .join(' or ');
    case 'array': {
      const min = checksOf(s).find((c) => c.check === 'min_length')?.minimum as number | undefined;
      const item = describeType(peel(d.element!).core);
      const items = item === 'string' || item === 'URL' ? `${item}s` : item;
      return `list of ${items}${min ? ` (at least ${min})` : ''}`;
    }
    case 'record': {
      const value = describeType(peel(d.valueType!).core);
      return `map of ${value === 'string' ? 'strings' : value}`;
    }
    case 'object':
      return 'section';
    case 'pipe':
    case 'transform':
      if (isDuration(s)) return 'duration (`500ms`, `30s`, `2m`, `1h`)';
      // z.preprocess: a bare transform (no input schema) in front of the schema that counts.
      if (d.in && defOf(d.in).type === 'transform' && !defOf(d.in).in && d.out) return describeType(d.out);
      return d.in ? describeType(d.in) : 'value';
    default:
      return d.type;
  }
}

interface Row {
  key: string;
  type: string;
  required: boolean;
  default?: string;
}

/** Every key, depth first, in schema order; a record's entries are `<parent>.<name>`. */
function rows(schema: z.ZodType, prefix: string, out: Row[]): Row[] {
  const d = defOf(schema);
  if (d.type === 'object') {
    for (const [k, v] of Object.entries(d.shape ?? {})) {
      const key = prefix ? `${prefix}.${k}` : k;
      const f = peel(v);
      const cd = defOf(f.core);
      const row: Row = { key, type: describeType(f.core), required: !f.optional };
      if (f.default !== undefined) row.default = f.default;
      out.push(row);
      if (cd.type === 'object') rows(f.core, key, out);
      // A map of sections (services) gets rows for one entry's keys; a map of strings (env) is one row.
      if (cd.type === 'record' && defOf(peel(cd.valueType!).core).type === 'object') {
        const entry = `${key}.<name>`;
        const value = peel(cd.valueType!).core;
        const keyPattern = checksOf(peel(cd.keyType!).core).find((c) => c.format === 'regex')?.pattern as RegExp | undefined;
        out.push({ key: entry, type: `section${keyPattern ? ` (name matching \`${keyPattern.source}\`)` : ''}`, required: false });
        rows(value, entry, out);
      }
    }
  }
  return out;
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The configuration reference: one table per top-level section. */
export function configReference(schema: z.ZodType = configSchema, keyDocs: Record<string, KeyDoc> = KEY_DOCS): string {
  const all = rows(schema, '', []);
  const missing = all.filter((r) => !keyDocs[r.key]).map((r) => r.key);
  const orphaned = Object.keys(keyDocs).filter((k) => !all.some((r) => r.key === k));
  if (missing.length || orphaned.length) {
    const lines = [
      ...missing.map((k) => `  ${k}: in the schema, not described in scripts/docs.ts KEY_DOCS`),
      ...orphaned.map((k) => `  ${k}: described in scripts/docs.ts KEY_DOCS, not in the schema`),
    ];
    throw new Error(`the configuration reference is out of step with src/config/schema.ts:\n${lines.join('\n')}`);
  }
  const sections: string[] = [];
  for (const top of all.filter((r) => !r.key.includes('.'))) {
    const doc = keyDocs[top.key]!;
    const body = all.filter((r) => r.key.startsWith(`${top.key}.`));
    const head = `### \`${top.key}\`${top.required ? ' (required)' : ''}\n\n${doc.text}`;
    if (body.length === 0) {
      sections.push(head);
      continue;
    }
    const table = [
      '| key | value | default | what it does |',
      '|---|---|---|---|',
      ...body.map((r) => {
        const d = keyDocs[r.key]!;
        const dflt = r.default ?? d.default ?? (r.required ? '**required**' : '—');
        return `| \`${r.key}\` | ${cell(r.type)} | ${cell(dflt)} | ${cell(d.text)} |`;
      }),
    ];
    sections.push(`${head}\n\n${table.join('\n')}`);
  }
  return sections.join('\n\n');
}

/** Every command the built-in plugins define: usage as `help` prints it, and its summary. */
export function commandReference(): string {
  const lines = ['| usage | what it does |', '|---|---|'];
  for (const plugin of loadBuiltinPlugins({ facades: offlineFacades(), log: createLogger({ level: 'silent' }) })) {
    for (const cmd of plugin.commands) lines.push(`| \`${cell(usage(cmd))}\` | ${cell(cmd.summary)} |`);
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------
// Blocks in the Markdown files

interface Block {
  /** Relative to the repository. */
  file: string;
  name: string;
  render(): string;
}

export const BLOCKS: readonly Block[] = [
  { file: 'docs/configuration.md', name: 'config-reference', render: () => configReference() },
  { file: 'docs/commands.md', name: 'command-list', render: commandReference },
];

const start = (name: string) => `<!-- generated:${name} (npm run docs; edits here are overwritten) -->`;
const end = (name: string) => `<!-- /generated:${name} -->`;

/** `text` with the block's content replaced; throws when its markers are missing. */
export function replaceBlock(text: string, file: string, name: string, content: string): string {
  const a = text.indexOf(start(name));
  const b = text.indexOf(end(name));
  if (a < 0 || b < a) throw new Error(`${file}: no generated block "${name}" (expected the lines ${start(name)} … ${end(name)})`);
  return `${text.slice(0, a)}${start(name)}\n${content}\n${text.slice(b)}`;
}

export interface DocFile {
  file: string;
  current: string;
  expected: string;
}

/** Each file with generated blocks, as it is and as the code says it should be. */
export async function generatedDocs(root = ROOT): Promise<DocFile[]> {
  const out = new Map<string, DocFile>();
  for (const block of BLOCKS) {
    let doc = out.get(block.file);
    if (!doc) {
      const current = await readFile(`${root}/${block.file}`, 'utf8');
      doc = { file: block.file, current, expected: current };
      out.set(block.file, doc);
    }
    doc.expected = replaceBlock(doc.expected, block.file, block.name, block.render());
  }
  return [...out.values()];
}

async function main(argv: string[]): Promise<number> {
  const check = argv.includes('--check');
  const stale = (await generatedDocs()).filter((d) => d.current !== d.expected);
  if (check) {
    for (const d of stale) process.stderr.write(`${d.file} is stale: run npm run docs\n`);
    return stale.length ? 1 : 0;
  }
  for (const d of stale) {
    await writeFile(`${ROOT}/${d.file}`, d.expected);
    process.stdout.write(`updated ${d.file}\n`);
  }
  if (!stale.length) process.stdout.write('docs are up to date\n');
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
