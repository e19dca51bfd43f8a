/**
 * haproxy.cfg templates (Handlebars). Compiled once, rendered purely from the model.
 *
 * `strict: true` turns a misspelt field into an error instead of an empty string — an
 * empty `bind` or `server` address in haproxy.cfg is worse than no apply. `noEscape`
 * because this is a config file, not HTML; the model guarantees what reaches it is valid.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { InstanceState } from '../../core/registry.js';
import Handlebars from 'handlebars';
import { SwitchyardError } from '../../core/errors.js';
import type { HaproxyModel } from './model.js';

export const DEFAULT_TEMPLATE_PATH = fileURLToPath(new URL('./templates/haproxy.cfg.hbs', import.meta.url));

export interface ConfigTemplate {
  /** Where it was read from (for file:line messages). */
  path: string;
  source: string;
  /** sha256 of the source: a different template means a reload. */
  hash: string;
  render(data: TemplateData): string;
}

/** What a template sees. Every field is always present (null when unset), so strict mode only trips on typos. */
export interface TemplateData {
  global: HaproxyModel['global'];
  services: HaproxyModel['services'];
  instances: HaproxyModel['instances'];
  keys: HaproxyModel['keys'];
}

const env = Handlebars.create();
// Comparison helper for custom templates, e.g. {{#if (eq mode "tcp")}}.
env.registerHelper('eq', (a: unknown, b: unknown) => a === b);

function templateError(path: string, err: unknown, what: string): SwitchyardError {
  const e = err as { message?: string; lineNumber?: number; column?: number };
  const lines = String(e.message ?? err)
    .split('\n')
    .filter((l) => l.trim() !== '');
  // Handlebars reports "Parse error on line N:" in the text and lineNumber on runtime errors.
  const line = e.lineNumber ?? Number(/line (\d+)/.exec(lines[0] ?? '')?.[1] ?? NaN);
  const where = Number.isFinite(line) ? `${path}:${line}` : path;
  return new SwitchyardError('E_CONFIG', `template ${what}: ${where}: ${lines[0] ?? 'error'}`, {
    details: [`${where}: ${lines[0] ?? 'error'}`, ...lines.slice(1)],
    cause: err,
  });
}

/** A model exercising every branch of a typical template, for the compile-time trial render. */
function sampleData(): TemplateData {
  const server = (name: string, state: InstanceState) => ({
    service: 'sample',
    name,
    host: '127.0.0.1',
    port: 8001,
    address: '127.0.0.1:8001',
    dns: false,
    state,
    weight: 100,
    configWeight: state === 'drain' ? 0 : 100,
    maint: state === 'maint',
    drain: state === 'drain',
    key: `/services/sample/${name}`,
    value: '127.0.0.1:8001',
  });
  const servers = [server('a', 'ready'), server('b', 'drain'), server('c', 'maint')];
  const services = [
    {
      name: 'sample',
      backend: 'sample',
      frontend: { name: 'fe_sample', bind: '127.0.0.1:8000' },
      listen: '127.0.0.1:8000',
      mode: 'http' as const,
      balance: 'roundrobin' as const,
      configured: true,
      servers,
    },
    { name: 'other', backend: 'other', frontend: null, listen: null, mode: 'tcp' as const, balance: 'roundrobin' as const, configured: false, servers: [] },
  ];
  return {
    global: { adminSocket: '/run/haproxy/admin.sock', stateFile: '/run/haproxy/state', checkInterMs: 2000 },
    services,
    instances: servers,
    keys: servers.map((s) => ({ key: s.key, base: s.name, dir: '/services/sample', value: s.value, service: 'sample' })),
  };
}

/** Compile (and trial-render) a template; errors are E_CONFIG with `path:line` details. */
export function compileTemplate(source: string, path: string): ConfigTemplate {
  try {
    env.parse(source); // compile() is lazy: parse now so syntax errors surface here
  } catch (err) {
    throw templateError(path, err, 'does not compile');
  }
  const fn = env.compile<TemplateData>(source, { noEscape: true, strict: true });
  const template: ConfigTemplate = {
    path,
    source,
    hash: createHash('sha256').update(source).digest('hex'),
    render(data) {
      try {
        const out = fn(data);
        // HAProxy warns about a last line without LF ("file might have been truncated").
        return out.endsWith('\n') ? out : `${out}\n`;
      } catch (err) {
        throw templateError(path, err, 'failed to render');
      }
    },
  };
  template.render(sampleData());
  return template;
}

export async function loadTemplate(path: string = DEFAULT_TEMPLATE_PATH): Promise<ConfigTemplate> {
  let source: string;
  try {
    source = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new SwitchyardError('E_CONFIG', `cannot read the HAProxy template ${path} (${code})`, { cause: err });
  }
  return compileTemplate(source, path);
}

/**
 * Stands in for a template file that no longer loads (edited, then SIGHUP or `render
 * --apply`): every render fails with the load error, so the agent reports it like any
 * failed apply — in its etcd key, the #ops feed and `status` — and keeps the last good
 * config until the file is fixed.
 */
export function unusableTemplate(path: string, err: SwitchyardError): ConfigTemplate {
  return {
    path,
    source: '',
    hash: `unusable:${createHash('sha256').update(err.message).digest('hex')}`,
    render() {
      throw err;
    },
  };
}

/** `switchyard check`: the template's problems as `file:line: message` lines (empty when fine). */
export function checkTemplate(source: string, path: string): string[] {
  try {
    compileTemplate(source, path);
    return [];
  } catch (err) {
    if (err instanceof SwitchyardError) return [...err.details];
    throw err;
  }
}

export function templateData(model: HaproxyModel): TemplateData {
  return { global: model.global, services: model.services, instances: model.instances, keys: model.keys };
}

/** Pure: the haproxy.cfg text for a model. */
export function renderConfig(model: HaproxyModel, template: ConfigTemplate): string {
  return template.render(templateData(model));
}
