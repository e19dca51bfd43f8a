import { isIPv6 } from 'node:net';
import { z } from 'zod';
import { MAX_WEIGHT, MIN_WEIGHT } from './registry.js';

/**
 * Validation of every name and value that can reach etcd keys or haproxy.cfg. These are
 * the only gates: anything not matching is refused before it is written.
 */
export const NAME_RE = /^[a-z0-9][a-z0-9_.-]{0,62}$/;

export const serviceName = z
  .string()
  .regex(NAME_RE, 'must match ^[a-z0-9][a-z0-9_.-]{0,62}$ (lower-case letters, digits, _ . -; at most 63 chars)')
  .describe('service');

export const instanceName = serviceName.describe('instance');

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const DNS_LABEL = '[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?';
const DNS_RE = new RegExp(`^(?=.{1,253}$)${DNS_LABEL}(\\.${DNS_LABEL})*$`);
const IPV6_RE = /^[0-9a-fA-F:.]+$/;

export interface HostPort {
  host: string;
  port: number;
}

/** Parse `host:port` (IPv4, [IPv6] or DNS name); returns an error message or the parts. */
export function parseHostPort(s: string): HostPort | string {
  let host: string;
  let portStr: string;
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0 || s[end + 1] !== ':') return 'IPv6 addresses are written [addr]:port';
    host = s.slice(1, end);
    portStr = s.slice(end + 2);
    if (!IPV6_RE.test(host) || !isIPv6(host)) return `"${host}" is not an IPv6 address`;
  } else {
    const i = s.lastIndexOf(':');
    if (i < 0) return 'expected host:port';
    host = s.slice(0, i);
    portStr = s.slice(i + 1);
    if (host.includes(':')) return 'IPv6 addresses are written [addr]:port';
    const looksNumeric = /^[\d.]+$/.test(host);
    if (looksNumeric ? !IPV4_RE.test(host) : !DNS_RE.test(host)) return `"${host}" is not an IPv4 address or DNS name`;
  }
  if (!/^\d{1,5}$/.test(portStr)) return 'port must be a number 1-65535';
  const port = Number(portStr);
  if (port < 1 || port > 65535) return 'port must be a number 1-65535';
  return { host, port };
}

export const address = z
  .string()
  .superRefine((s, ctx) => {
    const r = parseHostPort(s);
    if (typeof r === 'string') ctx.addIssue({ code: 'custom', message: r });
  })
  .describe('host:port');

const DURATION_RE = /^(\d+)(ms|s|m|h)$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/** `500ms`, `30s`, `2m`, `1h` → milliseconds; undefined if malformed. */
export function parseDuration(s: string): number | undefined {
  const m = DURATION_RE.exec(s.trim());
  if (!m) return undefined;
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0 && ms > 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** A duration argument, parsed to milliseconds. */
export const duration = z
  .string()
  .transform((s, ctx) => {
    const ms = parseDuration(s);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `"${s}" is not a duration (write 500ms, 30s, 2m)` });
      return z.NEVER;
    }
    return ms;
  })
  .describe('duration');

/** A non-negative integer written as text (chat arguments are strings). */
export const intArg = (min: number, max: number) =>
  z.string().regex(/^\d+$/, 'must be a whole number').transform(Number).pipe(z.number().int().min(min).max(max));

/** An HAProxy weight argument (0–256). */
export const weightArg = intArg(MIN_WEIGHT, MAX_WEIGHT).describe('weight');
