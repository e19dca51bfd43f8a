/**
 * Pure parts of the HAProxy engine: parsers, model, template, plan, reconcile, reports.
 */
import { describe, expect, it, vi } from 'vitest';
import type { ApplyResult } from '../src/core/apply-result.js';
import { cleanCheckOutput } from '../src/adapters/haproxy/check.js';
import { buildModel, type HaproxyModel } from '../src/adapters/haproxy/model.js';
import { planApply, type AppliedConfig } from '../src/adapters/haproxy/plan.js';
import { reconcile } from '../src/adapters/haproxy/reconcile.js';
import { commands, replyError } from '../src/adapters/haproxy/runtime.js';
import { adminModeOf, parseServersState, parseShowProc, parseStatCsv, type ServerStateRow } from '../src/adapters/haproxy/runtime-parse.js';
import { splitPromptReplies } from '../src/adapters/haproxy/socket.js';
import { checkTemplate, compileTemplate, loadTemplate, renderConfig } from '../src/adapters/haproxy/template.js';
import { Coalescer } from '../src/agent/coalesce.js';
import { defaultAgentId, formatApplyResult } from '../src/agent/agent.js';
import { configSchema } from '../src/config/schema.js';
import type { Instance, InstanceState, Listing } from '../src/core/registry.js';

const config = configSchema.parse({
  etcd: {},
  haproxy: { config: '/etc/haproxy/haproxy.cfg', adminSocket: '/run/haproxy/admin.sock', masterSocket: '/run/haproxy/master.sock' },
  services: { web: { image: 'x', port: 80, listen: '127.0.0.1:8080' }, db: { image: 'y', port: 5432, mode: 'tcp', listen: '127.0.0.1:5432' } },
});
const modelConfig = { services: config.services, haproxy: config.haproxy! };

type Row = [string, string, string, InstanceState?, number?];
function listing(rows: Row[], problems: Listing['problems'] = []): Listing {
  const instances: Instance[] = rows.map(([service, instance, address, state, weight]) => ({
    service,
    instance,
    address,
    ...(state || weight !== undefined ? { state: { state: state ?? 'ready', weight: weight ?? 100, by: 'U1', at: '' } } : {}),
    modRevision: '1',
  }));
  return { instances, problems, revision: '7' };
}
const model = (rows: Row[]) => buildModel(listing(rows), modelConfig, { servicesPrefix: '/services' });

describe('runtime API parsers (HAProxy 2.6 output)', () => {
  const STATE = [
    '1',
    '# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port',
    '3 be_web 1 web1 127.0.0.1 0 0 100 100 610 8 2 0 6 0 0 0 - 19001 - 0 0 - - 0',
    '3 be_web 2 web3 127.0.0.1 0 5 50 50 68 1 0 0 10 0 0 0 - 19003 - 0 0 - - 0',
    '3 be_web 3 w4 127.0.0.1 2 8 50 50 0 1 0 2 6 0 0 0 app.example 19002 - 0 0 - - 0',
    '',
    '',
  ].join('\n');

  it('parses show servers state and maps admin bits to ready/drain/maint', () => {
    const rows = parseServersState(STATE);
    expect(rows.map((r) => [r.backend, r.name, r.addr, r.port, r.uweight, adminModeOf(r)])).toEqual([
      ['be_web', 'web1', '127.0.0.1', 19001, 100, 'ready'],
      ['be_web', 'web3', '127.0.0.1', 19003, 50, 'maint'],
      ['be_web', 'w4', '127.0.0.1', 19002, 50, 'drain'],
    ]);
    expect(rows[2]?.fqdn).toBe('app.example');
    // CMAINT alone ("disabled" in the config, then enabled at runtime) is not maintenance.
    expect(adminModeOf({ adminState: 4 })).toBe('ready');
    expect(() => parseServersState('No such backend.\n')).toThrow();
  });

  it('parses show stat CSV: status, current sessions, weight', () => {
    const csv = [
      '# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo',
      'fe_web,FRONTEND,,,0,0,9979,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,0,,,,0,0,0,0,0,0,,0,0,0,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,',
      'web,web-1,0,0,2,3,,9,0,0,,0,,0,0,0,0,UP 1/3,100,1,0,1,1,610,610,,1,3,1,,0,,2,0,,0,L4OK,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer4 check passed,,2,3,3,,,,127.0.0.1:19001,,http,',
      'web,web-2,0,0,1,1,,1,0,0,,0,,0,0,0,0,DRAIN,0,1,0,0,0,5,0,,1,3,2,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,2,3,0,,,,127.0.0.1:19002,,http,',
      'web,web-3,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT (via web/web-1),1,1,0,0,0,5,0,,1,3,3,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,2,3,0,,,,127.0.0.1:19003,,http,',
      'web,BACKEND,0,0,3,3,998,0,0,0,0,0,,0,0,0,0,UP,100,1,0,,1,610,610,,1,3,0,,0,,1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,http,roundrobin',
      '',
    ].join('\n');
    const rows = parseStatCsv(csv);
    expect(rows.filter((r) => r.backend === 'web').map((r) => [r.name, r.status, r.scur, r.weight])).toEqual([
      ['web-1', 'UP', 2, 100],
      ['web-2', 'DRAIN', 1, 0],
      ['web-3', 'MAINT', 0, 1],
      ['BACKEND', 'UP', 3, 100],
    ]);
    expect(rows[1]).toMatchObject({ rawStatus: 'UP 1/3', addr: '127.0.0.1:19001', checkStatus: 'L4OK' });
  });

  it('parses show proc, including the failed-reload counter', () => {
    const t = parseShowProc(
      '#<PID>          <type>          <reloads>       <uptime>        <version>      \n7788            master          2 [failed: 1]   0d00h11m38s     2.6.12-1+deb12u4\n# workers\n5294            worker          0               0d00h00m00s     2.6.12-1+deb12u4\n5165            worker          1               0d00h00m09s     2.6.12-1+deb12u4\n# programs\n\n',
    );
    expect(t.master).toMatchObject({ pid: 7788, reloads: 2, failed: 1 });
    expect(t.workers.map((w) => [w.pid, w.reloads])).toEqual([
      [5294, 0],
      [5165, 1],
    ]);
  });

  it('splits pipelined prompt-mode replies', () => {
    const raw = '\n> \n> New server registered.\n\n> Server deleted.\n> No such server.\n\n> ';
    expect(splitPromptReplies(raw, 4)).toEqual(['\n', 'New server registered.\n\n', 'Server deleted.\n', 'No such server.\n\n']);
    expect(() => splitPromptReplies('\n> \n> ', 3)).toThrow(/after 1 of 3/);
  });

  it("turns HAProxy's replies into coded errors carrying its own words", () => {
    expect(replyError('del server web/a', 'Server still has connections attached to it, cannot remove it.\n')).toMatchObject({
      code: 'E_CONFLICT',
      message: 'HAProxy refused "del server web/a": Server still has connections attached to it, cannot remove it.',
    });
    expect(replyError('set server x/y state ready', 'No such backend.\n\n').code).toBe('E_NOT_FOUND');
    expect(replyError('add server web/a 1.2.3.4:80', 'Already exists a server with the same name in backend.\n').code).toBe('E_CONFLICT');
    expect(replyError('bogus', 'Unknown command, but maybe …\n').code).toBe('E_INTERNAL');
  });

  it('builds commands only from safe tokens', () => {
    expect(commands.addServer('web', 'web-4', '::1', 8080, { weight: 10, check: true, interMs: 500 }).line).toBe(
      'add server web/web-4 [::1]:8080 check inter 500 weight 10',
    );
    expect(() => commands.setState('web', 'a b', 'ready')).toThrow();
    expect(() => commands.setWeight('web', 'a', 300)).toThrow(/0-256/);
  });

  it('cleans haproxy -c output to its ALERT/WARNING lines naming the live file', () => {
    const out =
      "[NOTICE]   (4950) : haproxy version is 2.6.12\n[ALERT]    (4950) : config : parsing [/etc/haproxy/.haproxy.cfg.1.ab.tmp:2] : unknown keyword 'foo' in 'global' section\n";
    expect(cleanCheckOutput(out, '/etc/haproxy/.haproxy.cfg.1.ab.tmp', '/etc/haproxy/haproxy.cfg')).toEqual([
      "[ALERT] config : parsing [/etc/haproxy/haproxy.cfg:2] : unknown keyword 'foo' in 'global' section",
    ]);
  });
});

describe('model', () => {
  it('joins config services and registry instances; sorted, validated, with config-time weights', () => {
    const m = buildModel(
      listing(
        [
          ['web', 'web-2', '10.0.0.2:80', 'drain', 40],
          ['web', 'web-1', '10.0.0.1:80'],
          ['web', 'web-3', 'app.internal:80', 'maint'],
          ['api', 'api-1', '[fd00::1]:9000'],
          ['web', 'web-9', '10.0.0.9:99999'],
        ],
        [{ key: '/services/web/BAD', problem: 'instance name "BAD" is invalid' }],
      ),
      modelConfig,
      { servicesPrefix: '/services' },
    );
    expect(m.services.map((s) => [s.name, s.backend, s.frontend?.bind ?? null, s.mode, s.configured])).toEqual([
      ['api', 'api', null, 'http', false],
      ['db', 'db', '127.0.0.1:5432', 'tcp', true],
      ['web', 'web', '127.0.0.1:8080', 'http', true],
    ]);
    const web = m.services.find((s) => s.name === 'web')!;
    expect(web.servers.map((s) => [s.name, s.address, s.state, s.weight, s.configWeight, s.maint, s.dns])).toEqual([
      ['web-1', '10.0.0.1:80', 'ready', 100, 100, false, false],
      ['web-2', '10.0.0.2:80', 'drain', 40, 0, false, false],
      ['web-3', 'app.internal:80', 'maint', 100, 100, true, true],
    ]);
    expect(m.services[0]?.servers[0]?.address).toBe('[fd00::1]:9000');
    expect(m.problems.map((p) => p.key)).toEqual(['/services/web/BAD', '/services/web/web-9']);
    expect(m.keys.map((k) => `${k.base}=${k.value}`)).toEqual(['api-1=[fd00::1]:9000', 'web-1=10.0.0.1:80', 'web-2=10.0.0.2:80', 'web-3=app.internal:80']);
    expect(m.global).toEqual({ adminSocket: '/run/haproxy/admin.sock', stateFile: '/etc/haproxy/haproxy.cfg.state', checkInterMs: 2000 });
  });

  it('refuses paths that would break haproxy.cfg', () => {
    expect(() =>
      buildModel(listing([]), { ...modelConfig, haproxy: { ...modelConfig.haproxy, adminSocket: '/run/x y.sock' } }, { servicesPrefix: '/services' }),
    ).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });
});

describe('template', () => {
  it('renders the shipped template: frontends, backends, servers with state', async () => {
    const t = await loadTemplate();
    const out = renderConfig(
      model([
        ['web', 'web-1', '10.0.0.1:80'],
        ['web', 'web-2', '10.0.0.2:80', 'drain', 40],
        ['web', 'web-3', '10.0.0.3:80', 'maint'],
        ['api', 'a1', '10.0.1.1:90'],
      ]),
      t,
    );
    expect(out).toContain('stats socket /run/haproxy/admin.sock mode 600 level admin expose-fd listeners');
    expect(out).toContain('server-state-file /etc/haproxy/haproxy.cfg.state');
    expect(out).toContain('load-server-state-from-file global');
    expect(out).toMatch(/frontend fe_web\n {4}mode http\n {4}bind 127\.0\.0\.1:8080\n {4}default_backend web\n/);
    expect(out).toMatch(/frontend fe_db\n {4}mode tcp\n/);
    expect(out).not.toContain('frontend fe_api');
    expect(out).toMatch(/backend api\n {4}mode http\n.*\n {4}balance roundrobin\n {4}server a1 10\.0\.1\.1:90 check inter 2000 weight 100\n/);
    expect(out).toContain('    server web-1 10.0.0.1:80 check inter 2000 weight 100\n');
    expect(out).toContain('    server web-2 10.0.0.2:80 check inter 2000 weight 0  # draining, weight 40\n');
    expect(out).toContain('    server web-3 10.0.0.3:80 check inter 2000 weight 100 disabled\n');
    expect(renderConfig(model([['web', 'web-1', '10.0.0.1:80']]), t)).toBe(renderConfig(model([['web', 'web-1', '10.0.0.1:80']]), t));
  });

  it('supports the classic confd loop over raw keys in one line', () => {
    const t = compileTemplate('backend all\n{{#each keys}}\n    server {{base}} {{value}} check\n{{/each}}\n', 'confd.hbs');
    expect(
      renderConfig(
        model([
          ['web', 'b', '10.0.0.2:80'],
          ['web', 'a', '10.0.0.1:80'],
        ]),
        t,
      ),
    ).toBe('backend all\n    server a 10.0.0.1:80 check\n    server b 10.0.0.2:80 check\n');
  });

  it('reports compile errors and typos as file:line', () => {
    expect(checkTemplate('{{#each services}}\nbackend {{name}}\n', 't.hbs')[0]).toMatch(/^t\.hbs:\d+: Parse error/);
    expect(checkTemplate('global\n  x {{global.adminSockt}}\n', 't.hbs')[0]).toMatch(/^t\.hbs:2: "adminSockt" not defined/);
    expect(checkTemplate('{{#each services}}{{#if (eq mode "tcp")}}x{{/if}}{{/each}}', 'ok.hbs')).toEqual([]);
    expect(() => compileTemplate('{{', 'x.hbs')).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });
});

describe('plan', () => {
  const applied = (m: HaproxyModel, hash = 'h1', rendered = 'cfg'): AppliedConfig => ({ model: m, templateHash: hash, rendered });
  const base: Row[] = [
    ['web', 'web-1', '10.0.0.1:80'],
    ['web', 'web-2', '10.0.0.2:80'],
  ];

  it('servers added/removed, state and weight in existing backends → runtime', () => {
    const p = planApply(
      applied(model(base)),
      applied(
        model([
          ['web', 'web-2', '10.0.0.2:80', 'drain'],
          ['web', 'web-3', '10.0.0.3:80'],
          ['web', 'web-4', '10.0.0.4:80', 'ready', 7],
        ]),
      ),
    );
    expect(p.method).toBe('runtime');
    expect(p.changes.sort()).toEqual(['+web-3', '+web-4', '-web-1', 'web-2 drain'].sort());
    const w = planApply(
      applied(model(base)),
      applied(
        model([
          ['web', 'web-1', '10.0.0.1:80', 'ready', 5],
          ['web', 'web-2', '10.0.0.2:80'],
        ]),
      ),
    );
    expect(w).toEqual({ method: 'runtime', changes: ['web-1 weight 5'], reasons: [] });
    expect(
      planApply(
        applied(model(base)),
        applied(
          model([
            ['web', 'web-1', '10.0.0.9:80'],
            ['web', 'web-2', '10.0.0.2:80'],
          ]),
        ),
      ).method,
    ).toBe('runtime');
  });

  it('new/removed backends, template changes, DNS servers → reload', () => {
    expect(planApply(applied(model(base)), applied(model([...base, ['api', 'a1', '10.0.1.1:80']])))).toMatchObject({
      method: 'reload',
      changes: ['+backend api', '+api/a1'],
    });
    expect(planApply(applied(model([...base, ['api', 'a1', '10.0.1.1:80']])), applied(model(base)))).toMatchObject({
      method: 'reload',
      changes: ['-backend api'],
    });
    expect(planApply(applied(model(base)), applied(model(base), 'h2'))).toMatchObject({ method: 'reload', reasons: ['template changed'] });
    expect(planApply(applied(model(base)), applied(model([...base, ['web', 'web-3', 'app.internal:80']])))).toMatchObject({
      method: 'reload',
      changes: ['+web-3'],
    });
  });

  it('nothing changed → none; start-up compares with the live file', () => {
    expect(planApply(applied(model(base)), applied(model(base)))).toEqual({ method: 'none', changes: [], reasons: [] });
    expect(planApply(undefined, applied(model(base)), 'cfg').method).toBe('runtime');
    expect(planApply(undefined, applied(model(base)), 'other')).toMatchObject({
      method: 'reload',
      reasons: ['start-up: live config differs from the registry'],
    });
    expect(planApply(undefined, applied(model(base)), undefined)).toMatchObject({ method: 'reload', reasons: ['first apply: no live config'] });
  });
});

describe('reconcile', () => {
  const row = (backend: string, name: string, addr: string, port: number, adminState = 0, uweight = 100): ServerStateRow => ({
    backend,
    backendId: 3,
    name,
    id: 1,
    addr,
    port,
    opState: 2,
    adminState,
    uweight,
    iweight: uweight,
  });

  it('lists the runtime ops that make HAProxy match the model, in a safe order', () => {
    const m = model([
      ['web', 'web-1', '10.0.0.1:80', 'ready', 50],
      ['web', 'web-2', '10.0.0.2:80', 'drain', 100],
      ['web', 'web-3', '10.0.0.3:80'],
    ]);
    const rec = reconcile(
      m,
      [row('web', 'web-1', '10.0.0.1', 80, 8, 100), row('web', 'web-2', '10.0.0.2', 80, 0, 0), row('web', 'web-9', '10.0.0.9', 80)],
      new Set(['web', 'db']),
    );
    expect(rec.needsReload).toEqual([]);
    expect(
      rec.ops.map(
        (o) => `${o.kind} ${o.kind === 'add' ? o.server.name : o.name}${o.kind === 'state' ? ` ${o.state}` : ''}${o.kind === 'weight' ? ` ${o.weight}` : ''}`,
      ),
    ).toEqual([
      // Entering rotation: weight, then state. Leaving: state, then weight.
      'weight web-1 50',
      'state web-1 ready',
      'state web-2 drain',
      'weight web-2 100',
      'add web-3',
      'remove web-9',
    ]);
    expect(rec.changes).toEqual(['web-1 ready', 'web-1 weight 50', 'web-2 drain', 'web-2 weight 100', '+web-3', '-web-9']);
  });

  it('says when only a reload can help', () => {
    const m = model([
      ['web', 'web-1', 'app.internal:80'],
      ['api', 'a1', '10.0.0.1:80'],
    ]);
    expect(reconcile(m, [], new Set(['web', 'db'])).needsReload).toEqual([
      'backend api is not in the running HAProxy',
      'web-1 has a DNS address, which HAProxy 2.6 does not resolve for servers added at runtime',
    ]);
  });
});

describe('reports', () => {
  const r = (over: Partial<ApplyResult>): ApplyResult => ({ agentId: 'lb-1', method: 'runtime', ok: true, durationMs: 3, changes: [], at: '', ...over });

  it('formats apply results for the #ops feed', () => {
    expect(formatApplyResult(r({ changes: ['+web-4', '-web-2'] }))).toBe('haproxy lb-1: runtime +web-4 −web-2 in 3 ms');
    expect(formatApplyResult(r({ method: 'reload', durationMs: 61.4, changes: ['+backend api'] }))).toBe('haproxy lb-1: reload OK in 61 ms (+backend api)');
    expect(
      formatApplyResult(
        r({
          method: 'reload',
          ok: false,
          failure: 'check',
          error: ['haproxy -c rejected the new config:', "[ALERT] config : parsing [haproxy.cfg:31] : balance only supports 'roundrobin'"],
        }),
      ),
    ).toBe(
      "haproxy lb-1: check FAILED: haproxy -c rejected the new config: | [ALERT] config : parsing [haproxy.cfg:31] : balance only supports 'roundrobin' — kept last good config",
    );
    expect(
      formatApplyResult(r({ ok: false, failure: 'unavailable', error: ['waiting for HAProxy: not reachable', '/x/haproxy.cfg holds the validated config'] })),
    ).toBe('haproxy lb-1: waiting for HAProxy: not reachable | /x/haproxy.cfg holds the validated config — will retry');
    expect(formatApplyResult(r({ method: 'none', ok: false, failure: 'render', error: ['template does not compile: /t.hbs:2: Parse error on line 2:'] }))).toBe(
      'haproxy lb-1: render FAILED: template does not compile: /t.hbs:2: Parse error on line 2: — kept last good config',
    );
    expect(formatApplyResult(r({ method: 'reload', ok: false, failure: 'write', error: ['cannot write /x/haproxy.cfg: EACCES'] }))).toBe(
      'haproxy lb-1: write FAILED: cannot write /x/haproxy.cfg: EACCES — kept last good config',
    );
    expect(formatApplyResult(r({ changes: Array.from({ length: 15 }, (_, i) => `+w${i}`) }))).toMatch(/\+w11 \(\+3 more\) in 3 ms$/);
    expect(formatApplyResult(r({ changes: ['-web-2'], pending: ['web-2'] }))).toBe(
      'haproxy lb-1: runtime −web-2 in 3 ms — waiting for sessions to end on web-2',
    );
  });

  it('derives a valid agent id from the host name', () => {
    expect(defaultAgentId('LB-1.Example.com')).toBe('lb-1.example.com');
    expect(defaultAgentId('__')).toBe('haproxy');
  });
});

describe('coalescer', () => {
  it('runs a change at once when nothing is running, one change that waited for a run as soon as it ends, a burst once quiet (bounded by the max wait), never two runs at once', async () => {
    vi.useFakeTimers();
    try {
      const runs: number[] = [];
      let release: () => void = () => {};
      const c = new Coalescer(
        () => {
          runs.push(Date.now());
          return new Promise<void>((r) => (release = r));
        },
        { quietMs: 5, maxWaitMs: 20, onError: () => {} },
      );
      const since = (t: number) => runs.map((r) => r - t);
      const t0 = Date.now();
      // A lone change: no quiet period to wait out. Pokes in the same turn ride along.
      c.poke();
      c.poke();
      await vi.advanceTimersByTimeAsync(0);
      expect(since(t0)).toEqual([0]);
      // One change arriving 2 ms before the run ends: it runs the moment the run ends, not
      // a quiet period later (it has waited for the run already, and nothing followed it).
      await vi.advanceTimersByTimeAsync(48);
      c.poke();
      await vi.advanceTimersByTimeAsync(2);
      expect(runs).toHaveLength(1);
      release();
      await vi.advanceTimersByTimeAsync(0);
      expect(since(t0)).toEqual([0, 50]);
      // A change 2 ms after the previous change's run finished: nothing is pending, so at once.
      release();
      await vi.advanceTimersByTimeAsync(2);
      c.poke();
      await vi.advanceTimersByTimeAsync(0);
      expect(since(t0)).toEqual([0, 50, 52]);
      // Three changes during a run: a burst. After the run it waits until 5 ms after the last.
      const t1 = Date.now();
      c.poke();
      await vi.advanceTimersByTimeAsync(1);
      c.poke();
      await vi.advanceTimersByTimeAsync(1);
      c.poke();
      await vi.advanceTimersByTimeAsync(1);
      release();
      await vi.advanceTimersByTimeAsync(3);
      expect(since(t1).slice(3)).toEqual([]);
      await vi.advanceTimersByTimeAsync(1);
      expect(since(t1).slice(3)).toEqual([7]);
      // A burst that never goes quiet (a change every 3 ms): the max wait, counted from the
      // burst's first change, fires.
      const t2 = Date.now();
      c.poke();
      await vi.advanceTimersByTimeAsync(3);
      c.poke();
      await vi.advanceTimersByTimeAsync(1);
      release();
      for (let i = 0; i < 8; i++) {
        await vi.advanceTimersByTimeAsync(2);
        c.poke();
        await vi.advanceTimersByTimeAsync(1);
      }
      expect(since(t2).slice(4)).toEqual([20]);
      // The stream's changes during that run → a burst again once it ends; a lone one after.
      release();
      await vi.advanceTimersByTimeAsync(50);
      expect(since(t2).slice(4)).toEqual([20, 32]);
      release();
      await vi.advanceTimersByTimeAsync(100);
      const t3 = Date.now();
      c.poke();
      await vi.advanceTimersByTimeAsync(0);
      expect(since(t3).slice(6)).toEqual([0]);
      release();
      await c.stop();
      expect(c.idle).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });
});
