/** Who is asking, and from where. IDs only: display names never reach an authorization decision. */
export interface Caller {
  /** Slack user ID (U…/W…), or the shell's --user. */
  userId: string;
  /** Channel ID (C…/G…) or the literal 'dm' for a direct conversation with the bot. */
  channel: string;
  source: 'slack' | 'shell';
}

export const DM = 'dm';
