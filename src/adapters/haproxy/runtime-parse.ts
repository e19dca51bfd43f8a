/**
 * Parsers for HAProxy runtime API output (2.6 formats). Pure, so they are unit-tested on
 * captured output.
 */
import { SwitchyardError } from '../../core/errors.js';
import type { InstanceState } from '../../core/registry.js';

/** Bits of srv_admin_state (HAProxy's SRV_ADMF_*). */
export const ADMIN = {
  FMAINT: 0x01, // forced maintenance (CLI / "disabled")
  IMAINT: 0x02, // inherited from a tracked server
  CMAINT: 0x04, // "disabled" in the config: only a marker, the server is up once FMAINT is cleared
  FDRAIN: 0x08, // forced drain (CLI)
  IDRAIN: 0x10, // inherited drain
  RMAINT: 0x20, // DNS resolution failed
  HMAINT: 0x40, // hostname changed, waiting for resolution
} as const;

const MAINT_MASK = ADMIN.FMAINT | ADMIN.IMAINT | ADMIN.RMAINT | ADMIN.HMAINT;
const DRAIN_MASK = ADMIN.FDRAIN | ADMIN.IDRAIN;

/** One line of `show servers state`. */
export interface ServerStateRow {
  backend: string;
  backendId: number;
  name: string;
  id: number;
  addr: string;
  port: number;
  /** srv_op_state: 0 stopped, 1 starting, 2 running, 3 stopping. */
  opState: number;
  adminState: number;
  /** Weight set at runtime (or the config weight if never changed). */
  uweight: number;
  /** Weight from the configuration the running process loaded. */
  iweight: number;
  /** "-" in the output becomes undefined. */
  fqdn?: string;
}

export type AdminMode = InstanceState;

/** The administrative state HAProxy holds for a server, in switchyard's terms. */
export function adminModeOf(row: Pick<ServerStateRow, 'adminState'>): AdminMode {
  if (row.adminState & MAINT_MASK) return 'maint';
  if (row.adminState & DRAIN_MASK) return 'drain';
  return 'ready';
}

const STATE_COLUMNS = ['be_id', 'be_name', 'srv_id', 'srv_name', 'srv_addr', 'srv_op_state', 'srv_admin_state', 'srv_uweight', 'srv_iweight'];

/**
 * `show servers state [backend]`: a version line ("1"), a "# col col …" header, then one
 * space-separated line per server. Columns are found by name so a later version that
 * appends columns still parses.
 */
export function parseServersState(text: string): ServerStateRow[] {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const headerLine = lines.find((l) => l.startsWith('#'));
  if (!headerLine || lines[0] !== '1') {
    throw new SwitchyardError('E_INTERNAL', 'unexpected "show servers state" output from HAProxy', { details: lines.slice(0, 3) });
  }
  const header = headerLine.replace(/^#\s*/, '').split(/\s+/);
  const col = (name: string) => header.indexOf(name);
  for (const c of STATE_COLUMNS) {
    if (col(c) < 0) throw new SwitchyardError('E_INTERNAL', `"show servers state" has no ${c} column`);
  }
  const portCol = col('srv_port');
  const fqdnCol = col('srv_fqdn');
  const rows: ServerStateRow[] = [];
  for (const line of lines) {
    if (line === '1' || line.startsWith('#')) continue;
    const f = line.split(' ');
    const get = (name: string) => f[col(name)] ?? '';
    const fqdn = fqdnCol >= 0 ? f[fqdnCol] : undefined;
    rows.push({
      backendId: Number(get('be_id')),
      backend: get('be_name'),
      id: Number(get('srv_id')),
      name: get('srv_name'),
      addr: get('srv_addr'),
      port: portCol >= 0 ? Number(f[portCol]) : 0,
      opState: Number(get('srv_op_state')),
      adminState: Number(get('srv_admin_state')),
      uweight: Number(get('srv_uweight')),
      iweight: Number(get('srv_iweight')),
      ...(fqdn && fqdn !== '-' ? { fqdn } : {}),
    });
  }
  return rows;
}

/** The status shown by `show stat`, reduced to what an operator acts on. */
export type ServerStatus = 'UP' | 'DOWN' | 'DRAIN' | 'MAINT' | 'NOLB' | 'NO CHECK' | 'UNKNOWN';

export interface StatRow {
  backend: string;
  /** Server name, or "BACKEND" / "FRONTEND" for the aggregate lines. */
  name: string;
  status: ServerStatus;
  /** HAProxy's raw status text, e.g. "UP 1/3", "MAINT (via b/s)". */
  rawStatus: string;
  /** Current sessions. */
  scur: number;
  /** Effective weight. */
  weight: number;
  /** Address as "ip:port" when HAProxy reports one. */
  addr?: string;
  checkStatus?: string;
}

function normaliseStatus(raw: string): ServerStatus {
  const s = raw.trim().toUpperCase();
  if (s === 'NO CHECK') return 'NO CHECK';
  // "UP 1/3" is going down but still up; "DOWN 1/2" going up but still down.
  const first = s.split(/\s+/)[0] ?? '';
  if (first === 'UP' || first === 'OPEN') return 'UP';
  if (first === 'DOWN') return 'DOWN';
  if (first === 'DRAIN') return 'DRAIN';
  if (first === 'MAINT') return 'MAINT';
  if (first === 'NOLB') return 'NOLB';
  return 'UNKNOWN';
}

/** `show stat` CSV: a "# pxname,svname,…" header, then one line per proxy/server. */
export function parseStatCsv(text: string): StatRow[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const headerLine = lines[0];
  if (!headerLine?.startsWith('# ')) throw new SwitchyardError('E_INTERNAL', 'unexpected "show stat" output from HAProxy', { details: lines.slice(0, 2) });
  const header = headerLine.slice(2).split(',');
  const idx = (name: string) => header.indexOf(name);
  const [px, sv, status, scur, weight, addr, check] = ['pxname', 'svname', 'status', 'scur', 'weight', 'addr', 'check_status'].map(idx);
  if ([px, sv, status, scur, weight].some((i) => i === undefined || i < 0)) {
    throw new SwitchyardError('E_INTERNAL', '"show stat" lacks pxname/svname/status/scur/weight columns');
  }
  return lines.slice(1).map((line) => {
    // Names are validated to [a-z0-9_.-] and statuses never contain commas, so a plain
    // split is exact for every column we read.
    const f = line.split(',');
    const at = (i: number | undefined) => (i === undefined || i < 0 ? '' : (f[i] ?? ''));
    const rawStatus = at(status);
    return {
      backend: at(px),
      name: at(sv),
      status: normaliseStatus(rawStatus),
      rawStatus,
      scur: Number(at(scur)) || 0,
      weight: Number(at(weight)) || 0,
      ...(at(addr) ? { addr: at(addr) } : {}),
      ...(at(check) ? { checkStatus: at(check) } : {}),
    };
  });
}

/** `show info`: "Key: value" lines. */
export function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

export interface ProcEntry {
  pid: number;
  type: string;
  /** For the master: reloads done; for a worker: how many reloads it has survived. */
  reloads: number;
  /** Master only: failed reloads ("[failed: N]"). */
  failed?: number;
  uptime: string;
}

export interface ProcTable {
  master: ProcEntry;
  /** Current and old workers: a worker with reloads > 0 is an old one still finishing sessions. */
  workers: ProcEntry[];
}

/**
 * Master CLI `show proc` (2.6):
 *   #<PID>  <type>  <reloads>  <uptime>  <version>
 *   7788    master  1 [failed: 0]  0d00h11m34s  2.6.12
 *   # workers
 *   5165    worker  0  0d00h00m00s  2.6.12
 *   # old workers        (older versions; 2.6 lists them under "# workers")
 *   # programs
 */
export function parseShowProc(text: string): ProcTable {
  let master: ProcEntry | undefined;
  const workers: ProcEntry[] = [];
  let section = 'master';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const name = line.replace(/^#\s*/, '').toLowerCase();
      if (name.startsWith('<pid>')) continue;
      section = name;
      continue;
    }
    const m = /^(\d+)\s+(\S+)\s+(\d+)(?:\s+\[failed:\s*(\d+)\])?\s+(\S+)/.exec(line);
    if (!m) continue;
    const entry: ProcEntry = {
      pid: Number(m[1]),
      type: m[2]!,
      reloads: Number(m[3]),
      ...(m[4] !== undefined ? { failed: Number(m[4]) } : {}),
      uptime: m[5]!,
    };
    if (entry.type === 'master') master = entry;
    else if (section.includes('worker') && entry.type === 'worker') workers.push(entry);
  }
  if (!master) throw new SwitchyardError('E_INTERNAL', 'unexpected "show proc" output from the HAProxy master', { details: text.split('\n').slice(0, 3) });
  return { master, workers };
}
