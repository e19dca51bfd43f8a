import { setTimeout as sleep } from 'node:timers/promises';
import { DM } from '../../core/caller.js';
import type { Logger } from '../../core/log.js';
import type { WebClient } from './client.js';

/** Past this the command goes ahead as "not the bot's DM" while the lookup finishes. */
const LOOKUP_WAIT_MS = 2000;

/**
 * A slash command's channel as the ACL sees it. `/ops` typed in the user's DM with the bot is
 * 'dm'; typed in a DM between two people it is not (the ACL's `dm` means "with the bot"),
 * and the payload alone cannot tell the two apart — channel_name is "directmessage" for
 * both — so a D… channel is looked up once with conversations.info. Whenever the answer is
 * unknown the raw channel ID is used, which can only narrow what the ACL allows.
 */
export function slashChannelResolver(client: Pick<WebClient, 'conversations'>, log: Logger) {
  /** channel → the user at the other end of the bot's IM, or null when it is not the bot's IM. */
  const owners = new Map<string, Promise<string | null | undefined>>();

  /** Never rejects; undefined = unknown (not cached, so the next command asks again). */
  const lookup = async (channel: string): Promise<string | null | undefined> => {
    try {
      const res = await client.conversations.info({ channel });
      // `user` (the other party of an IM) is in the API's answer but not in its typings.
      const ch = res.channel as { is_im?: boolean; user?: string } | undefined;
      return ch?.is_im && ch.user ? ch.user : null;
    } catch (err) {
      // We are not in that conversation, so it is not our DM.
      if (slackErrorCode(err) === 'channel_not_found') return null;
      owners.delete(channel);
      log.warn({ err, channel }, 'could not tell whether a DM is with the bot; treating it as a channel');
      return undefined;
    }
  };

  return async (channelId: string, userId: string): Promise<string> => {
    if (!channelId.startsWith('D')) return channelId;
    let owner = owners.get(channelId);
    if (owner === undefined) {
      if (owners.size >= 10_000) owners.clear();
      owner = lookup(channelId);
      owners.set(channelId, owner);
    }
    const found = await Promise.race([owner, sleep(LOOKUP_WAIT_MS, undefined, { ref: false })]);
    return found === userId ? DM : channelId;
  };
}

function slackErrorCode(err: unknown): string | undefined {
  const data = (err as { data?: { error?: unknown } } | null)?.data;
  return typeof data?.error === 'string' ? data.error : undefined;
}
