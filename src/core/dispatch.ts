import type { Caller } from './caller.js';
import type { Reply } from './reply.js';

export interface DispatchRequest {
  /** The command line as typed, without the `/ops` or @mention prefix. */
  text: string;
  caller: Caller;
  /** Correlates logs and the audit record; front-ends pass Slack's trigger/event id. */
  requestId?: string;
  /** Called with progress lines of long commands. */
  onProgress?: (text: string) => void;
  /**
   * Set only by the approval gate, after the compare-and-swap that approved the request:
   * the command runs without asking again, the approvers in its audit record and feed line.
   */
  approval?: { id: string; approvers: readonly string[] };
}

/** What every front-end (Slack, shell) needs from the core. */
export interface Dispatcher {
  dispatch(req: DispatchRequest): Promise<Reply>;
}
