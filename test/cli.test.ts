/**
 * The command line as an ops tool: --version, per-subcommand --help on stdout (exit 0),
 * unknown or inapplicable flags and stray words refused with the usage on stderr (exit 2),
 * a missing config that says what to copy, the Node.js version check, and `--yes` values
 * in the chat/shell grammar.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIN_NODE, nodeVersionProblem } from '../bin/node-version.js';
import { EXIT, parseCommandLine, type Exit, type Invocation } from '../src/command-line.js';
import { replyToText } from '../src/core/reply.js';
import { shellCaller, testRouter } from './helpers/core.js';

const BIN = fileURLToPath(new URL('../bin/switchyard.js', import.meta.url));
const PACKAGE = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string; engines: { node: string } };

function parse(argv: string[]): { result: Invocation | Exit; out: string; err: string } {
  let out = '';
  let err = '';
  const result = parseCommandLine(argv, {
    out: (s) => {
      out += s;
    },
    err: (s) => {
      err += s;
    },
  });
  return { result, out, err };
}

function run(args: string[], opts: { cwd?: string; nodeArgs?: string[] } = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const env = { ...process.env };
    delete env.SWITCHYARD_CONFIG;
    const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), BIN, ...args], { cwd: opts.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('command line parsing', () => {
  it('--version prints the package version on stdout', () => {
    for (const flag of ['--version', '-V']) {
      const { result, out, err } = parse([flag]);
      expect(result).toEqual({ exit: EXIT.ok });
      expect(out.trim()).toBe(PACKAGE.version);
      expect(err).toBe('');
    }
  });

  it('--help and `help` list every subcommand and the exit statuses on stdout', () => {
    for (const argv of [['--help'], ['help'], ['-h']]) {
      const { result, out, err } = parse(argv);
      expect(result).toEqual({ exit: EXIT.ok });
      expect(err).toBe('');
      for (const command of ['serve', 'shell', 'check', 'agent', 'render']) expect(out).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
      expect(out).toContain('--config <file>');
      expect(out).toMatch(/Exit status: 0 done; 1 failed .*\n2 usage error/);
    }
  });

  it.each([
    ['serve', []],
    ['shell', ['--user <id>', '--channel <id|dm>', '--log <file>', '--agent']],
    ['check', []],
    ['agent', []],
    ['render', ['--once', '--dry-run']],
  ])('`%s --help` shows its own options and the global --config, on stdout', (command, options) => {
    for (const argv of [
      [command, '--help'],
      ['help', command],
    ]) {
      const { result, out, err } = parse(argv);
      expect(result).toEqual({ exit: EXIT.ok });
      expect(err).toBe('');
      expect(out).toContain(`Usage: switchyard ${command} [options]`);
      for (const option of options) expect(out).toContain(option);
      expect(out).toMatch(/Global Options:[\s\S]*--config <file>/);
    }
  });

  it.each([
    [['check', '--once', 'extra'], /unknown option '--once'/, 'check'],
    [['check', 'extra'], /too many arguments for 'check'/, 'check'],
    [['agent', '--dry-run'], /unknown option '--dry-run'/, 'agent'],
    [['serve', '--agent'], /unknown option '--agent'/, 'serve'],
    [['shell', '--once'], /unknown option '--once'/, 'shell'],
    [['shell', 'U123'], /too many arguments for 'shell'/, 'shell'],
    [['shell', '--user'], /option '--user <id>' argument missing/, 'shell'],
    [['shell', '--user', '--agent'], /--user needs a value, not a flag/, 'shell'],
    [['shell', '--channel='], /--channel must not be empty/, 'shell'],
    [['render'], /render: --once is required/, 'render'],
    [['render', '--dry-run'], /render: --once is required/, 'render'],
    [['render', '--once=yes'], /unknown option '--once=yes'/, 'render'],
    [['render', '--once', '--diff'], /unknown option '--diff'/, 'render'],
    [['frobnicate'], /unknown command 'frobnicate'/, undefined],
    [['chek'], /unknown command 'chek'\n\(Did you mean check\?\)/, undefined],
    [['--config'], /option '--config <file>' argument missing/, undefined],
    [[], /^Usage: switchyard \[options\] \[command\]/, undefined],
    [['help', 'nope'], /^Usage: switchyard \[options\] \[command\]/, undefined],
  ])('%j → exit 2, the reason and the usage on stderr, nothing on stdout', (argv, reason, command) => {
    const { result, out, err } = parse(argv);
    expect(result).toEqual({ exit: EXIT.usage });
    expect(out).toBe('');
    expect(err).toMatch(reason);
    expect(err).toContain(command ? `Usage: switchyard ${command} [options]` : 'Usage: switchyard [options] [command]');
  });

  it('chooses the subcommand with its options, --config before or after it', () => {
    expect(parse(['shell', '--user', 'U1', '--channel', 'dm', '--log', 'x.log', '--agent']).result).toEqual({
      command: 'shell',
      values: { user: 'U1', channel: 'dm', log: 'x.log', agent: true },
    });
    expect(parse(['--config', 'a.yaml', 'check']).result).toEqual({ command: 'check', values: { config: 'a.yaml' } });
    expect(parse(['check', '--config=b.yaml']).result).toEqual({ command: 'check', values: { config: 'b.yaml' } });
    expect(parse(['render', '--dry-run', '--once']).result).toEqual({ command: 'render', values: { once: true, dryRun: true } });
    expect(parse(['serve']).result).toEqual({ command: 'serve', values: {} });
  });
});

describe('switchyard as a process', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchyard-cli-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('--version exits 0 with the version on stdout', async () => {
    const r = await run(['--version']);
    expect(r).toMatchObject({ code: 0, stdout: `${PACKAGE.version}\n`, stderr: '' });
  });

  it('`check --once extra` exits 2 with the usage on stderr and nothing on stdout', async () => {
    const r = await run(['check', '--once', 'extra']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^switchyard: unknown option '--once'\n/);
    expect(r.stderr).toContain('Usage: switchyard check [options]');
  });

  it('a missing config names the path tried and the cp command that fixes it', async () => {
    const r = await run(['check'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('switchyard: no configuration file at ./switchyard.yaml');
    expect(r.stderr).toContain(`looked for ${join(dir, 'switchyard.yaml')}`);
    const example = fileURLToPath(new URL('../switchyard.example.yaml', import.meta.url));
    expect(r.stderr).toContain(`cp ${example} ./switchyard.yaml`);
  });

  it('on a Node.js older than 20.18 it exits 1 naming both versions, before importing anything', async () => {
    // --import runs before the entry point: it makes this Node report an older version.
    const fake = 'data:text/javascript,Object.defineProperty(process.versions,"node",{value:"20.17.0"})';
    const r = await run(['--version'], { nodeArgs: ['--import', fake] });
    expect(r).toMatchObject({ code: 1, stdout: '', stderr: 'switchyard needs Node.js >= 20.18 (this is 20.17.0)\n' });
  });
});

describe('Node.js version check', () => {
  it.each(['20.17.0', '20.0.0', '18.20.4', '16.20.2', 'v20.9.0', 'garbage', ''])('refuses %j', (version) => {
    expect(nodeVersionProblem(version)).toBe(`switchyard needs Node.js >= 20.18 (this is ${version})`);
  });

  it.each(['20.18.0', 'v20.18.1', '20.19.2', '21.0.0', '22.11.0', '24.1.0'])('accepts %s', (version) => {
    expect(nodeVersionProblem(version)).toBeUndefined();
  });

  it('agrees with package.json engines', () => {
    expect(PACKAGE.engines.node).toBe(`>=${MIN_NODE.major}.${MIN_NODE.minor}`);
  });
});

describe('--yes in the chat/shell grammar', () => {
  async function withLastInstance() {
    const t = testRouter();
    await t.router.dispatch({ text: 'register web web-1 10.0.0.1:80', caller: shellCaller() });
    return t;
  }

  it.each(['--yes=false', '--yes=no', '--yes=FALSE'])('%s is not a yes: asks for confirmation, changes nothing', async (flag) => {
    const { router, registry, audits } = await withLastInstance();
    const r = await router.dispatch({ text: `deregister web web-1 ${flag}`, caller: shellCaller() });
    expect(r).toMatchObject({ ok: false, code: 'E_CONFIRM_REQUIRED' });
    expect(await registry.get('web', 'web-1')).toBeDefined();
    expect(audits.at(-1)).toMatchObject({ command: 'deregister', result: 'confirmation_needed' });
  });

  it.each(['--yes=maybe', '--yes=1', '--yes=', '--yes=yes'])('%s is refused as invalid, changing nothing', async (flag) => {
    const { router, registry } = await withLastInstance();
    const r = await router.dispatch({ text: `deregister web web-1 ${flag}`, caller: shellCaller() });
    expect(r).toMatchObject({ ok: false, code: 'E_BAD_ARGS' });
    expect(replyToText(r)).toContain('write --yes (or --yes=true) to confirm, --yes=false or --yes=no not to');
    expect(await registry.get('web', 'web-1')).toBeDefined();
  });

  it.each(['--yes', '--yes=true', '--yes=True'])('%s confirms', async (flag) => {
    const { router, registry } = await withLastInstance();
    const r = await router.dispatch({ text: `deregister web web-1 ${flag}`, caller: shellCaller() });
    expect(r).toMatchObject({ ok: true });
    expect(await registry.get('web', 'web-1')).toBeUndefined();
  });

  it('the last --yes wins, so a confirmation button appending --yes still works', async () => {
    const { router, registry } = await withLastInstance();
    expect(await router.dispatch({ text: 'deregister web web-1 --yes=false --yes', caller: shellCaller() })).toMatchObject({ ok: true });
    expect(await registry.get('web', 'web-1')).toBeUndefined();
  });
});
