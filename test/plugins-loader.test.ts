/**
 * Loading plugins from outside the repository: the examples copied to a temp dir and named
 * in switchyard.yaml (paths and package names), and everything the loader refuses — bad
 * options, a malformed plugin, a name clash, an API range it does not accept — with the
 * entry's file:line, in process and through `switchyard check`.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { makePluginApi } from '../src/app/builtin-plugins.js';
import { checkPlugins, offlineFacades } from '../src/app/plugin-check.js';
import { loadPlugins } from '../src/app/plugin-loader.js';
import { apiVersionProblem } from '../src/app/plugin-shape.js';
import { loadConfig } from '../src/config/load.js';
import { isSwitchyardError, type SwitchyardError } from '../src/core/errors.js';
import { commandTimeoutMs } from '../src/core/command-deadline.js';
import { DEFAULT_COMMAND_TIMEOUT_MS, PLUGIN_API_VERSION } from '../src/core/plugin-api.js';
import { pluginSource, pluginWorkspace } from './helpers/plugins.js';
import type { Workspace } from './helpers/workspace.js';

const BIN = fileURLToPath(new URL('../bin/switchyard.js', import.meta.url));
const silent = pino({ level: 'silent' });

function check(configPath: string) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'check', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The coded error `p` rejects with. */
async function refusal(p: Promise<unknown>): Promise<SwitchyardError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isSwitchyardError(err)) throw new Error(`expected a coded refusal, got ${String(err)}`);
  return err;
}

/** Replace the `plugins:` block (the last thing in the file) of the workspace's config. */
async function setPlugins(ws: Workspace, block: string) {
  const text = await readFile(ws.configPath, 'utf8');
  await writeFile(ws.configPath, text.slice(0, text.indexOf('plugins:')) + block);
}

/** The 1-based line of the first line of `text` that contains `needle`. */
const lineOf = (text: string, needle: string) => text.split('\n').findIndex((l) => l.includes(needle)) + 1;

describe('plugin loader', () => {
  let ws: Workspace | undefined;
  afterEach(async () => {
    await ws?.dispose();
    ws = undefined;
  });

  const EXAMPLES = `plugins:
  - module: ./plugins/maintenance/index.js
    options:
      reason: database upgrade
  - ./plugins/http-check
`;

  it('loads the examples after the built-ins, by path and by folder, and names each command’s origin', async () => {
    ws = await pluginWorkspace({ plugins: EXAMPLES });
    const loaded = await checkPlugins(await loadConfig(ws.configPath, {}), ws.configPath, silent);
    const names = loaded.plugins.map((p) => p.name);
    expect(names.slice(-2)).toEqual(['maintenance', 'http-check']);
    expect(names).toContain('help');
    expect(names.indexOf('help')).toBeLessThan(names.indexOf('maintenance'));
    expect(loaded.origins.get('maintenance')).toBe('plugin maintenance (./plugins/maintenance/index.js)');
    expect(loaded.origins.get('probe')).toBe('plugin http-check (./plugins/http-check)');
    expect(loaded.origins.get('drain')).toBe('built-in plugin drain');
  });

  it('resolves a package name from node_modules beside the config, ESM-only exports included', async () => {
    ws = await pluginWorkspace({ plugins: 'plugins:\n  - "@acme/switchyard-hello"\n' });
    const pkg = join(ws.dir, 'node_modules', '@acme', 'switchyard-hello');
    await mkdir(join(pkg, 'lib'), { recursive: true });
    await writeFile(
      join(pkg, 'package.json'),
      JSON.stringify({ name: '@acme/switchyard-hello', type: 'module', exports: { '.': { import: './lib/main.js' } } }),
    );
    await writeFile(join(pkg, 'lib', 'main.js'), pluginSource({ name: 'hello', command: 'hello', apiVersion: '^1.0.0' }));
    const loaded = await checkPlugins(await loadConfig(ws.configPath, {}), ws.configPath, silent);
    expect(loaded.origins.get('hello')).toBe('plugin hello (@acme/switchyard-hello)');
  });

  it('refuses options the plugin’s schema rejects, at the line of the bad option', async () => {
    ws = await pluginWorkspace({
      plugins: `plugins:
  - module: ./plugins/maintenance/index.js
    options:
      reason: 42
      confrimOn: true
`,
    });
    const text = await readFile(ws.configPath, 'utf8');
    const err = await refusal(checkPlugins(await loadConfig(ws.configPath, {}), ws.configPath, silent));
    expect(err.code).toBe('E_CONFIG');
    const details = err.details.join('\n');
    expect(details).toContain(`${ws.configPath}:${lineOf(text, 'reason: 42')}: plugins.0 (./plugins/maintenance/index.js): options.reason:`);
    // An unknown key is reported on the options block (strict schema), not silently ignored.
    expect(details).toMatch(/confrimOn/);
  });

  it('refuses a command name already taken, naming both origins', async () => {
    ws = await pluginWorkspace({
      plugins: 'plugins:\n  - ./plugins/maintenance/index.js\n  - ./mine/drain.mjs\n',
      files: { 'mine/drain.mjs': pluginSource({ name: 'my-drain', command: 'drain' }) },
    });
    const err = await refusal(checkPlugins(await loadConfig(ws.configPath, {}), ws.configPath, silent));
    expect(err.code).toBe('E_CONFIG');
    expect(err.message).toBe('command "drain" from plugin my-drain (./mine/drain.mjs) clashes with built-in plugin drain');
    expect(err.details[0]).toContain(`${ws.configPath}:${lineOf(await readFile(ws.configPath, 'utf8'), './mine/drain.mjs')}:`);

    // Between two external plugins as well (a new file: a module loads once per process).
    await writeFile(join(ws.dir, 'mine', 'other.mjs'), pluginSource({ name: 'other', command: 'maintenance' }));
    await setPlugins(ws, 'plugins:\n  - ./plugins/maintenance/index.js\n  - ./mine/other.mjs\n');
    const again = await refusal(checkPlugins(await loadConfig(ws.configPath, {}), ws.configPath, silent));
    expect(again.message).toBe('command "maintenance" from plugin other (./mine/other.mjs) clashes with plugin maintenance (./plugins/maintenance/index.js)');
  });

  it('refuses a plugin written for an incompatible API range, and malformed plugins with what is wrong', async () => {
    ws = await pluginWorkspace({
      plugins: 'plugins:\n  - ./mine/future.mjs\n',
      files: { 'mine/future.mjs': pluginSource({ name: 'future', command: 'future', apiVersion: '^2.0.0' }) },
    });
    const err = await refusal(checkPlugins(await loadConfig(ws.configPath, {}), ws.configPath, silent));
    expect(err.code).toBe('E_PLUGIN');
    expect(err.details[0]).toBe(
      `${ws.configPath}:${lineOf(await readFile(ws.configPath, 'utf8'), './mine/future.mjs')}: plugins.0 (./mine/future.mjs): plugin future refused: it was written for plugin API ^2.0.0, and this switchyard provides ${PLUGIN_API_VERSION}`,
    );

    await writeFile(
      join(ws.dir, 'mine', 'malformed.mjs'),
      `export default () => ({ name: 'bad', commands: [{ name: 'Bad Name', summary: '', args: {}, positionals: ['x'], handler: 'no' }] });\n`,
    );
    await setPlugins(ws, 'plugins:\n  - ./mine/malformed.mjs\n');
    const malformed = await refusal(checkPlugins(await loadConfig(ws.configPath, {}), ws.configPath, silent));
    const details = malformed.details.join('\n');
    expect(details).toContain('what its factory returned is not a plugin');
    expect(details).toMatch(/commands\.0\.name: must be lower case/);
    expect(details).toMatch(/commands\.0\.args: must be a zod object/);
    expect(details).toMatch(/commands\.0\.handler: handler must be a function/);

    await writeFile(join(ws.dir, 'mine', 'no-factory.mjs'), 'export const notDefault = 1;\n');
    await setPlugins(ws, 'plugins:\n  - ./mine/no-factory.mjs\n');
    const noFactory = await refusal(checkPlugins(await loadConfig(ws.configPath, {}), ws.configPath, silent));
    expect(noFactory.details[0]).toContain('its default export is not a plugin factory');
  });

  it('says where it looked for a module that is not there', async () => {
    ws = await pluginWorkspace({ plugins: 'plugins:\n  - ./nope.js\n  - switchyard-plugin-absent\n' });
    const err = await refusal(checkPlugins(await loadConfig(ws.configPath, {}), ws.configPath, silent));
    expect(err.details[0]).toBe(
      `${ws.configPath}:${lineOf(await readFile(ws.configPath, 'utf8'), './nope.js')}: plugins.0 (./nope.js): cannot load the module: no such file: ${join(ws.dir, 'nope.js')}`,
    );
  });

  it('calls start hooks once in load order and stop hooks in reverse, a hanging one cut off at the budget', async () => {
    const hooks = (name: string, stop: string) => `globalThis.hookCalls ??= [];
export default (api) => ({ name: '${name}', commands: [],
  start() { globalThis.hookCalls.push('start ${name}'); },
  stop() { globalThis.hookCalls.push('stop ${name}'); ${stop} } });
`;
    ws = await pluginWorkspace({
      plugins: 'plugins:\n  - ./first.mjs\n  - ./second.mjs\n',
      files: { 'first.mjs': hooks('first', ''), 'second.mjs': hooks('second', 'return new Promise(() => {});') },
    });
    const config = await loadConfig(ws.configPath, {});
    const loaded = await loadPlugins({ builtins: [], entries: config.plugins, makeApi: makePluginApi(offlineFacades(), silent), log: silent });
    await loaded.start();
    await loaded.start();
    const calls = (globalThis as { hookCalls?: string[] }).hookCalls;
    expect(calls).toEqual(['start first', 'start second']);
    const began = Date.now();
    await loaded.stop(200);
    // Liveness bound (the budget is 200 ms): the hanging hook did not hold the shutdown.
    expect(Date.now() - began).toBeLessThan(5000);
    expect(calls).toEqual(['start first', 'start second', 'stop second', 'stop first']);
  });

  it('takes a command’s timeout from its figure or its arguments, else the default', () => {
    expect(commandTimeoutMs({ name: 'a' }, {})).toBe(DEFAULT_COMMAND_TIMEOUT_MS);
    expect(commandTimeoutMs({ name: 'a', timeoutMs: 300 }, {})).toBe(300);
    const byArgs = { name: 'drain', timeoutMs: ((a: { timeout: number }) => a.timeout + 1000) as (args: never) => number };
    expect(commandTimeoutMs(byArgs, { timeout: 5000 })).toBe(6000);
    // A plugin's function returning nonsense does not switch the cut-off off.
    expect(commandTimeoutMs({ name: 'a', timeoutMs: (() => Number.NaN) as (args: never) => number }, {})).toBe(DEFAULT_COMMAND_TIMEOUT_MS);
  });

  it('checks API ranges with semver', () => {
    expect(apiVersionProblem({ apiVersion: '^1.0.0' }, '1.4.2')).toBeUndefined();
    expect(apiVersionProblem({}, '9.0.0')).toBeUndefined();
    expect(apiVersionProblem({ apiVersion: '~1.2.0' }, '1.3.0')).toMatch(/written for plugin API ~1\.2\.0/);
    expect(apiVersionProblem({ apiVersion: '>=1.1.0' }, '1.0.0')).toMatch(/provides 1\.0\.0/);
  });

  it('switchyard check lists the plugins, and fails with file:line on a bad entry', async () => {
    ws = await pluginWorkspace({ plugins: EXAMPLES });
    const ok = await check(ws.configPath);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('plugins: ok (maintenance, http-check)');

    await setPlugins(ws, 'plugins:\n  - module: ./plugins/http-check\n    options: { timeout: soon }\n');
    const bad = await check(ws.configPath);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(
      `${ws.configPath}:${lineOf(await readFile(ws.configPath, 'utf8'), 'timeout: soon')}: plugins.0 (./plugins/http-check): options.timeout: "soon" is not a duration`,
    );
  });
});
