/**
 * End to end, as an operator runs it: `switchyard serve`, `switchyard agent` and
 * `switchyard shell --agent` spawned as processes (bin/switchyard.js), against a private
 * etcd (this file stops and restarts it), a real HAProxy, the run-wide dockerd and the
 * Slack stand-in (signed requests to serve's HTTP port; the Web API, #ops included, at
 * SLACK_API_URL). Nothing here hands a component a channel production does not wire: what
 * reaches #ops got there through etcd and serve's own feed.
 *
 * `serve` (the feed poster), `agent` and `shell --agent` are shared by the tests, started
 * together up front and again on first use after they stopped, so the file passes in any
 * order: the SIGTERM test stops them and a later test starts them again.
 */
import { randomUUID } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dockerodeOptions, LABEL_OWNER } from '../../src/adapters/docker/index.js';
import { DEFAULT_TEMPLATE_PATH } from '../../src/adapters/haproxy/template.js';
import { loadConfig } from '../../src/config/load.js';
import { orchestratorSettings } from '../../src/orchestrator/settings.js';
import { testImage, WEB_CMD } from '../orchestrator-fixture.js';
import { sharedDockerHost } from '../helpers/docker.js';
import { startEtcd, type EtcdProcess } from '../helpers/etcd.js';
import { sectionText } from '../helpers/feed.js';
import { prepareHaproxy, startHaproxy, startHttpBackend, waitFor, type HttpBackend, type TestHaproxy } from '../helpers/haproxy.js';
import { freePort } from '../helpers/net.js';
import { killAll, spawnSwitchyard, type SwitchyardProcess } from '../helpers/process.js';
import { postSlashCommand, startSlackStandIn, type SlackCall, type SlackStandIn } from '../helpers/slack.js';
import { DEFAULT_ACL, ONCALL, OPS_CHANNEL, VISITOR } from '../helpers/workspace.js';

const SECRET = 'e2e-signing-secret';
const BOT_TOKEN = 'xoxb-e2e';
const AGENT_ID = 'e2e-lb';
/** The product promise (SPEC: "exits within 5 s of SIGTERM/SIGINT"). */
const EXIT_WITHIN_MS = 5000;
/** Start-up through tsx on a loaded 2-core machine: a liveness bound, not a figure. */
const START_MS = 90_000;
/** Something that happens in well under a second, seen through etcd, a watch and a post. */
const SEEN_MS = 20_000;

const ACL = DEFAULT_ACL;

interface Serve extends SwitchyardProcess {
  base: string;
  events: string;
}

describe('serve, agent and shell as processes (real etcd, HAProxy, dockerd, Slack stand-in)', () => {
  let dir: string;
  let etcd: EtcdProcess;
  let client: Etcd3;
  let standIn: SlackStandIn;
  let hap: TestHaproxy;
  let shellHap: TestHaproxy;
  let backend: HttpBackend;
  let docker: Dockerode;
  let owner: string;
  let prefix: string;
  const paths = { serve: '', agent: '', shell: '', acl: '', template: '' };
  let shared: { serve?: Promise<Serve>; agent?: Promise<SwitchyardProcess>; shell?: Promise<SwitchyardProcess> } = {};

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchyard-e2e-'));
    const host = await sharedDockerHost();
    [etcd, standIn, hap, shellHap, backend] = await Promise.all([
      startEtcd(),
      startSlackStandIn(),
      startHaproxy(),
      prepareHaproxy(),
      startHttpBackend('api-e2e'),
    ]);
    const image = await testImage(host);
    client = new Etcd3({ hosts: etcd.endpoint });
    docker = new Dockerode(dockerodeOptions(host));
    prefix = `/e2e-${process.pid}`;
    const apiListen = `127.0.0.1:${await freePort()}`;
    Object.assign(paths, {
      serve: join(dir, 'serve.yaml'),
      agent: join(dir, 'agent.yaml'),
      shell: join(dir, 'shell.yaml'),
      acl: join(dir, 'acl.yaml'),
      template: join(dir, 'agent.hbs'),
    });
    const common = [
      `etcd: { endpoints: [${etcd.endpoint}] }`,
      `registry: { prefix: ${prefix}/services, switchyardPrefix: ${prefix}/switchyard }`,
      'acl: { path: ./acl.yaml }',
    ];
    const haproxy = (h: TestHaproxy, agentId: string, template?: string) => [
      'haproxy:',
      `  config: ${h.config}`,
      `  adminSocket: ${h.adminSocket}`,
      `  masterSocket: ${h.masterSocket}`,
      `  binary: ${h.binary}`,
      `  agentId: ${agentId}`,
      ...(template ? [`  template: ${template}`] : []),
    ];
    await writeFile(paths.acl, ACL);
    await copyFile(DEFAULT_TEMPLATE_PATH, paths.template);
    // serve runs no agent (no haproxy:): an apply reaches #ops only through the agent's key.
    await writeFile(
      paths.serve,
      [
        ...common,
        `slack: { feedChannel: ${OPS_CHANNEL} }`,
        `docker: { host: "${host}", stopGrace: 2s, startTimeout: 30s, reconcileInterval: 10m }`,
        'services:',
        `  web: { image: "${image}", port: 80, hostIp: 127.0.0.1, cmd: ${JSON.stringify(WEB_CMD)}, maxReplicas: 3 }`,
        `  api: { listen: "${apiListen}" }`,
        '',
      ].join('\n'),
    );
    await writeFile(paths.agent, [...common, ...haproxy(hap, AGENT_ID, './agent.hbs'), 'services:', `  api: { listen: "${apiListen}" }`, ''].join('\n'));
    // The shell's own agent renders for an HAProxy that is not running: it needs none to start.
    await writeFile(paths.shell, [...common, ...haproxy(shellHap, 'e2e-shell'), 'services:', `  api: { listen: "${apiListen}" }`, ''].join('\n'));
    owner = orchestratorSettings(await loadConfig(paths.serve, {})).owner;
    // Started together, awaited by the tests that use them: each start is seconds of tsx.
    void serve().catch(() => undefined);
    void agent().catch(() => undefined);
    void shellAgent().catch(() => undefined);
  });

  afterEach(async ({ task }) => {
    // A failed test's processes would poison the next one: start afresh.
    if (task.result?.state === 'fail') {
      killAll();
      shared = {};
    }
  });

  afterAll(async () => {
    const stops = await Promise.allSettled([shared.serve, shared.agent, shared.shell]);
    await Promise.all(stops.map((s) => (s.status === 'fulfilled' && s.value ? s.value.stop('SIGTERM') : undefined)));
    killAll();
    if (docker) {
      const ours = await docker.listContainers({ all: true, filters: { label: [`${LABEL_OWNER}=${owner}`] } }).catch(() => []);
      await Promise.all(
        ours.map((c) =>
          docker
            .getContainer(c.Id)
            .remove({ force: true })
            .catch(() => undefined),
        ),
      );
    }
    client?.close();
    await Promise.all([etcd?.dispose(), standIn?.close(), hap?.dispose(), shellHap?.dispose(), backend?.close()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  // ---------------------------------------------------------------------------------------
  // Processes

  /** The poster election's candidates: lease and pid of each replica campaigning. */
  const candidates = async () => {
    const key = `${prefix}/switchyard/feed/election/poster/`;
    const kvs = (await client.getAll().prefix(key).exec()).kvs;
    return kvs.map((kv) => ({ lease: kv.key.toString().slice(key.length), pid: Number(kv.value.toString().split('/')[1]) }));
  };

  /** A `serve` replica, once /healthz answers 200 and it campaigns for the poster role. */
  async function startServe(): Promise<Serve> {
    const port = await freePort();
    const p = spawnSwitchyard(['serve', '--config', paths.serve], {
      env: { SLACK_BOT_TOKEN: BOT_TOKEN, SLACK_SIGNING_SECRET: SECRET, SLACK_API_URL: standIn.apiUrl, HOST: '127.0.0.1', PORT: String(port) },
    });
    const base = `http://127.0.0.1:${port}`;
    let last = 'no answer';
    const ready = await waitFor(
      'serve to answer /healthz 200',
      async () => {
        if (!p.running()) return 'exited';
        const r = await fetch(`${base}/healthz`).catch(() => undefined);
        if (r) last = `${r.status} ${await r.text()}`;
        return r?.status === 200 && 'up';
      },
      START_MS,
      100,
    ).catch((err: unknown) => `${String(err)} (last /healthz: ${last})`);
    if (ready !== 'up') throw new Error(`serve did not start: ${ready}; its log ends:\n${p.err().slice(-3000)}`);
    await waitFor('the replica to campaign', async () => (await candidates()).some((c) => c.pid === p.pid), START_MS, 50);
    return { ...p, base, events: `${base}/slack/events` };
  }

  /** The shared poster (the first replica), started when first needed or after it stopped. */
  async function serve(): Promise<Serve> {
    const current = shared.serve && (await shared.serve);
    if (current?.running()) return current;
    shared.serve = (async () => {
      const s = await startServe();
      await waitFor('it to post the feed', () => s.logs(/^this replica now posts the #ops feed$/).length > 0, START_MS, 50);
      return s;
    })();
    return shared.serve;
  }

  const agentKey = async () => {
    const v = await client.get(`${prefix}/switchyard/agents/${AGENT_ID}`).string();
    return v === null ? undefined : (JSON.parse(v) as { ok: boolean; method: string; changes: string[]; at: string; durationMs: number });
  };

  /** The shared `switchyard agent`, once its status key is in etcd. */
  async function agent(): Promise<SwitchyardProcess> {
    const current = shared.agent && (await shared.agent);
    if (current?.running()) return current;
    shared.agent = (async () => {
      const p = spawnSwitchyard(['agent', '--config', paths.agent]);
      await waitFor('the agent status key', async () => (await agentKey())?.ok === true || !p.running(), START_MS, 50);
      if (!p.running()) throw new Error(`agent exited during start: ${p.err().slice(-2000)}`);
      return p;
    })();
    return shared.agent;
  }

  /** `shell --agent` with its stdin left open, once it has answered a first command. */
  async function shellAgent(): Promise<SwitchyardProcess> {
    const current = shared.shell && (await shared.shell);
    if (current?.running()) return current;
    shared.shell = (async () => {
      const p = spawnSwitchyard(['shell', '--agent', '--config', paths.shell], { stdin: 'pipe' });
      p.child.stdin!.write('help\n');
      await waitFor('the reply to help', () => /\bstatus\b/.test(p.out()) || !p.running(), START_MS, 50);
      if (!p.running()) throw new Error(`shell --agent exited during start: ${p.err().slice(-2000)}`);
      return p;
    })();
    return shared.shell;
  }

  // ---------------------------------------------------------------------------------------
  // Slack

  /** A signed /ops slash command; resolves with the reply posted to its response_url. */
  async function slash(s: Serve, text: string, user = ONCALL, done: RegExp = /./): Promise<string> {
    const id = randomUUID();
    const res = await postSlashCommand(s.events, SECRET, { text, user_id: user, channel_id: OPS_CHANNEL, response_url: standIn.responseUrl(id) });
    expect(res.status).toBe(200);
    const reply = await standIn.waitFor((c) => c.kind === 'response' && c.method === id && done.test(replyText(c)), SEEN_MS);
    return replyText(reply);
  }
  const replyText = (c: SlackCall) => `${String(c.body.text ?? '')}\n${sectionText(c)}`;

  /** #ops posts from now on: the mrkdwn a reader sees, one entry per message. */
  const opsFrom = (start: number) =>
    standIn
      .api('chat.postMessage')
      .slice(start)
      .filter((c) => c.body.channel === OPS_CHANNEL)
      .map((c) => `${sectionText(c)}\n${String(c.body.text ?? '')}`);
  const opsMark = () => standIn.api('chat.postMessage').length;
  const waitOps = (what: string, start: number, re: RegExp) => waitFor(what, () => opsFrom(start).find((t) => re.test(t)), SEEN_MS, 50);

  /** Prometheus text → value of one sample, labels in any order. */
  function sample(text: string, name: string, labels: Record<string, string> = {}): number {
    for (const line of text.split('\n')) {
      const m = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
      if (!m || m[1] !== name) continue;
      const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
      if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
    }
    return 0;
  }
  const sum = (text: string, name: string) =>
    text
      .split('\n')
      .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
      .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);

  // ---------------------------------------------------------------------------------------

  it('/healthz: 200 with etcd up, 503 naming etcd while the etcd server is stopped, 200 again once it is back', async () => {
    const s = await serve();
    const up = await fetch(`${s.base}/healthz`);
    expect(up.status).toBe(200);
    expect(((await up.json()) as { details: { etcd: string } }).details.etcd).toBe('ok');

    await etcd.stop();
    try {
      const down = await waitFor(
        '/healthz 503',
        async () => {
          const r = await fetch(`${s.base}/healthz`);
          return r.status === 503 && ((await r.json()) as { ok: boolean; details: { etcd: string } });
        },
        SEEN_MS,
        100,
      );
      expect(down.ok).toBe(false);
      expect(down.details.etcd).toMatch(new RegExp(`^unreachable: ${etcd.endpoint.replace(/[.:/]/g, '\\$&')}: `));
    } finally {
      await etcd.start();
    }
    await waitFor('/healthz 200 again', async () => (await fetch(`${s.base}/healthz`)).status === 200, SEEN_MS, 100);
    expect(s.running()).toBe(true);
  }, 120_000);

  it('/metrics: signed slash commands are counted by command and result, with their durations', async () => {
    const s = await serve();
    const scrape = async () => {
      const r = await fetch(`${s.base}/metrics`);
      expect(r.status).toBe(200);
      return r.text();
    };
    const before = await scrape();
    expect(await slash(s, 'help')).toMatch(/status/);
    expect(await slash(s, 'help status')).toMatch(/status/);
    expect(await slash(s, 'status api')).toMatch(/api/);
    expect(await slash(s, 'scale web 2', VISITOR)).toMatch(/you may not run scale/);
    const after = await scrape();

    const delta = (name: string, labels: Record<string, string> = {}) => sample(after, name, labels) - sample(before, name, labels);
    expect(delta('switchyard_commands_total', { command: 'help', result: 'ok' })).toBe(2);
    expect(delta('switchyard_commands_total', { command: 'status', result: 'ok' })).toBe(1);
    expect(delta('switchyard_commands_total', { command: 'scale', result: 'denied' })).toBe(1);
    expect(delta('switchyard_acl_refusals_total', { command: 'scale' })).toBe(1);
    // Exactly these four, each counted once: no double count by a retry or a second front-end.
    expect(sum(after, 'switchyard_commands_total') - sum(before, 'switchyard_commands_total')).toBe(4);
    expect(delta('switchyard_command_duration_seconds_count', { command: 'help' })).toBe(2);
    expect(delta('switchyard_command_duration_seconds_count', { command: 'status' })).toBe(1);
    expect(delta('switchyard_command_duration_seconds_sum', { command: 'status' })).toBeGreaterThan(0);
  }, 120_000);

  it('acl.yaml hot reload in a running serve: new rules apply at once, a broken file keeps the old ones and #ops says so', async () => {
    const s = await serve();
    const reloaded = /acl\.yaml reloaded: 2 rules, 1 group/;
    const reloads = () => opsFrom(0).filter((t) => reloaded.test(t)).length;
    try {
      expect(await slash(s, 'history', VISITOR)).toMatch(/you may not run history/);

      // A previously denied user is allowed…
      let n = reloads();
      await writeFile(paths.acl, ACL.replace(`oncall: [${ONCALL}]`, `oncall: [${ONCALL}, ${VISITOR}]`));
      await waitFor('the reload in #ops', () => reloads() > n, SEEN_MS, 50);
      expect(await slash(s, 'history', VISITOR)).not.toMatch(/you may not run/);

      // …and a previously allowed one is refused.
      n = reloads();
      await writeFile(paths.acl, ACL.replace(`oncall: [${ONCALL}]`, `oncall: [${VISITOR}]`));
      await waitFor('the second reload in #ops', () => reloads() > n, SEEN_MS, 50);
      expect(await slash(s, 'history', ONCALL)).toMatch(/you may not run history/);

      // A broken file: the rules in force stay, and #ops is told why.
      const mark = opsMark();
      await writeFile(paths.acl, `${ACL.replace(`oncall: [${ONCALL}]`, `oncall: [${VISITOR}]`)}  - allow: [scale]\n    users: 42\n`);
      const said = await waitOps('the refusal in #ops', mark, /acl\.yaml is invalid; keeping the previous rules/);
      expect(said).toMatch(/acl\.yaml:\d+/);
      expect(await slash(s, 'history', VISITOR)).not.toMatch(/you may not run/);
      expect(await slash(s, 'history', ONCALL)).toMatch(/you may not run history/);
    } finally {
      const n = reloads();
      await writeFile(paths.acl, ACL);
      await waitFor('the original rules back', () => reloads() > n, SEEN_MS, 50);
    }
  }, 120_000);

  it('a container death reaches #ops through the real chain: die event → deregistration in etcd → the poster', async () => {
    const s = await serve();
    const registered = async () => (await client.getAll().prefix(`${prefix}/services/web/`).strings()) as Record<string, string>;
    const had = new Set(Object.keys(await registered()));
    expect(await slash(s, `scale web ${had.size + 1}`, ONCALL, /web/)).not.toMatch(/you may not run/);
    const [key, address] = await waitFor('the new instance in etcd', async () => Object.entries(await registered()).find(([k]) => !had.has(k)), 60_000, 100);
    const instance = key.slice(key.lastIndexOf('/') + 1);
    const [container] = await docker.listContainers({ filters: { label: [`${LABEL_OWNER}=${owner}`, `switchyard.instance=${instance}`] } });
    expect(container).toBeDefined();
    const name = container!.Names[0]!.replace(/^\//, '');

    const mark = opsMark();
    await docker.getContainer(container!.Id).kill();
    const line = await waitOps('the death in #ops', mark, new RegExp(`\\*web/${instance}\\* removed`));
    expect(line).toContain(
      `*web/${instance}* removed (was at ${address}) — (container died (exit 137, SIGKILL) (container ${name}, image ${container!.Image})) by docker`,
    );
    expect(await client.get(key).string()).toBeNull();
  }, 120_000);

  it("an agent's apply reaches #ops through the real chain: register via Slack → agent applies → its key → serve's feed", async () => {
    const [s] = await Promise.all([serve(), agent()]);
    const instance = `api-${randomUUID().slice(0, 6)}`;
    const mark = opsMark();
    expect(await slash(s, `register api ${instance} ${backend.address}`)).toMatch(new RegExp(`registered api/${instance}`));
    const applied = await waitFor('the apply in the agent key', async () => {
      const k = await agentKey();
      return k?.ok && k.changes.includes(`+${instance}`) && k;
    });
    expect(['runtime', 'reload']).toContain(applied.method);
    expect(await readFile(hap.config, 'utf8')).toContain(`server ${instance} ${backend.address} `);
    const line = await waitOps('the apply in #ops', mark, new RegExp(`\\*haproxy ${AGENT_ID}\\* \\w+ apply [^\\n]*\\+${instance}`));
    expect(line).toMatch(new RegExp(`\\*haproxy ${AGENT_ID}\\* ${applied.method} apply [^\\n]*\\+${instance}[^\\n]* in [\\d.]+ m?s`));
    // The registration's own line came from the same feed, attributed to the command.
    expect(opsFrom(mark).join('\n')).toContain(`*api/${instance}* registered at ${backend.address} — by <@${ONCALL}> via \`register\``);
  }, 120_000);

  it('SIGHUP makes the agent re-read its template: the new content is applied by a reload and reported', async () => {
    const a = await agent();
    const marker = `# e2e template ${randomUUID()}`;
    const shipped = await readFile(DEFAULT_TEMPLATE_PATH, 'utf8');
    const worker = await hap.workerPid();
    try {
      await writeFile(paths.template, `${marker}\n${shipped}`);
      const before = await agentKey();
      const hup = Date.now();
      a.child.kill('SIGHUP');
      await waitFor('the re-read in the log', () => a.logs(/^SIGHUP: re-reading the HAProxy template$/).length > 0, SEEN_MS, 50);
      const reloaded = await waitFor('the reload in the agent key', async () => {
        const k = await agentKey();
        return k?.ok && k.method === 'reload' && k.at !== before?.at && Date.parse(k.at) >= hup - 1000 && k;
      });
      expect(reloaded.ok).toBe(true);
      expect(await readFile(hap.config, 'utf8')).toMatch(new RegExp(`^${marker}$`, 'm'));
      expect(await hap.workerPid()).not.toBe(worker);
    } finally {
      await writeFile(paths.template, shipped);
    }
  }, 120_000);

  it('SIGTERM: serve (poster and standby), agent and shell --agent each exit within 5 s', async () => {
    const [poster, a, shell] = await Promise.all([serve(), agent(), shellAgent()]);
    const standby = await startServe();
    // Which replica posts is what serve itself says on /metrics.
    const posting = async (s: Serve) => /^switchyard_feed_poster 1$/m.test(await (await fetch(`${s.base}/metrics`)).text());
    expect([await posting(poster), await posting(standby)]).toEqual([true, false]);
    // The poster's role changes as it logs them: "now", or "no longer (why)".
    const roles = () =>
      poster.logs(/^this replica (now|no longer) posts the #ops feed$/).map((l) => (l.msg.includes('no longer') ? `no longer (${String(l.why)})` : 'now'));
    const rolesBefore = roles();
    expect(rolesBefore.at(-1)).toBe('now');
    shared = {};

    const stopped = [];
    for (const [what, p] of [
      ['standby', standby],
      ['poster', poster],
      ['agent', a],
      ['shell --agent', shell],
    ] as const) {
      const exit = await p.stop('SIGTERM');
      stopped.push({ what, code: exit.code, fast: exit.ms < EXIT_WITHIN_MS });
    }
    // README: the shell reads no further and exits 143 on SIGTERM, so a script can tell it was cut short.
    expect(stopped).toEqual([
      { what: 'standby', code: 0, fast: true },
      { what: 'poster', code: 0, fast: true },
      { what: 'agent', code: 0, fast: true },
      { what: 'shell --agent', code: 143, fast: true },
    ]);
    expect(roles().slice(rolesBefore.length)).toEqual(['no longer (stopping)']);
    expect(await candidates()).toEqual([]);
    expect(await agentKey()).toBeUndefined();
  }, 180_000);
});
