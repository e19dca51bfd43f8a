/**
 * Slack's request signing (v0), checked before Bolt sees a request: Bolt's own check bounds
 * the timestamp only towards the past, so a request signed an hour ahead stays valid — and
 * replayable — for an hour and more. Here both bounds apply.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Slack's documented window: a timestamp further than this from our clock is refused. */
export const SIGNATURE_WINDOW_SEC = 5 * 60;

export interface SignedRequest {
  body: Buffer;
  timestamp: string | string[] | undefined;
  signature: string | string[] | undefined;
}

export type Verdict =
  | { ok: true; signature: string }
  /** `reason` is for the log: it names the bound and by how much a timestamp missed it. */
  | { ok: false; reason: string; skewSec?: number };

const SIGNATURE_RE = /^v0=[0-9a-f]{64}$/;

export function verifySlackRequest(secret: string, req: SignedRequest, nowMs: number = Date.now()): Verdict {
  const timestamp = single(req.timestamp);
  const signature = single(req.signature);
  if (timestamp === undefined) return { ok: false, reason: 'X-Slack-Request-Timestamp is missing' };
  if (signature === undefined) return { ok: false, reason: 'X-Slack-Signature is missing' };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'X-Slack-Request-Timestamp is not a Unix time in seconds' };
  if (!SIGNATURE_RE.test(signature)) return { ok: false, reason: 'X-Slack-Signature is not a v0 signature' };
  const expected = createHmac('sha256', secret).update(`v0:${timestamp}:`).update(req.body).digest();
  if (!timingSafeEqual(expected, Buffer.from(signature.slice(3), 'hex')))
    return { ok: false, reason: 'the signature does not match (wrong signing secret, or the body was altered)' };
  // Checked after the signature, so this line is only ever logged for requests Slack (or
  // someone holding a copy of one) really signed: a replay, or a clock that is off.
  const skewSec = Math.floor(nowMs / 1000) - Number(timestamp);
  if (skewSec > SIGNATURE_WINDOW_SEC) {
    return {
      ok: false,
      skewSec,
      reason: `the request timestamp is ${skewSec} s in the past, beyond the ${SIGNATURE_WINDOW_SEC} s bound (a replay, or this host's clock is ahead)`,
    };
  }
  if (skewSec < -SIGNATURE_WINDOW_SEC) {
    return {
      ok: false,
      skewSec,
      reason: `the request timestamp is ${-skewSec} s in the future, beyond the ${SIGNATURE_WINDOW_SEC} s bound (this host's clock is behind, or the signer's is ahead)`,
    };
  }
  return { ok: true, signature };
}

function single(v: string | string[] | undefined): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}
