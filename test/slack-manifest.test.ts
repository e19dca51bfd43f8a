/**
 * The two app manifests shipped for the README's setup steps: the same bot, its scopes exactly
 * the ones the code needs, request URLs only in the HTTP one and all pointing at /slack/events.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { STATUS_SHORTCUT } from '../src/adapters/slack/feed-actions.js';
import { EVENTS_PATH } from '../src/adapters/slack/front.js';

interface Manifest {
  features: { slash_commands: { command: string; url?: string }[]; shortcuts?: { name: string; type: string; callback_id: string; description: string }[] };
  oauth_config: { scopes: { bot: string[] } };
  settings: {
    event_subscriptions: { request_url?: string; bot_events: string[] };
    interactivity: { is_enabled: boolean; request_url?: string };
    socket_mode_enabled: boolean;
  };
}

const load = async (name: string) => parse(await readFile(fileURLToPath(new URL(`../${name}`, import.meta.url)), 'utf8')) as Manifest;

/** chat.postMessage/update, app_mention and message.im events, /ops, conversations.info on D… channels. */
const NEEDED = ['app_mentions:read', 'chat:write', 'commands', 'im:history', 'im:read'];

describe('Slack app manifests', () => {
  it('HTTP: every request URL is the one endpoint serve verifies, and only the scopes in use', async () => {
    const m = await load('slack-app-manifest.yaml');
    expect(m.settings.socket_mode_enabled).toBe(false);
    const urls = [m.features.slash_commands[0]!.url, m.settings.event_subscriptions.request_url, m.settings.interactivity.request_url];
    for (const url of urls) expect(new URL(url!).pathname).toBe(EVENTS_PATH);
    expect([...m.oauth_config.scopes.bot].sort()).toEqual(NEEDED);
  });

  it('Socket Mode: no request URL anywhere, the same bot otherwise', async () => {
    const [socket, http] = await Promise.all([load('slack-app-manifest.socket.yaml'), load('slack-app-manifest.yaml')]);
    expect(socket.settings.socket_mode_enabled).toBe(true);
    expect(JSON.stringify(socket)).not.toMatch(/request_url|"url"/);
    expect(socket.oauth_config).toEqual(http.oauth_config);
    expect(socket.settings.event_subscriptions.bot_events).toEqual(http.settings.event_subscriptions.bot_events);
    expect(socket.settings.interactivity.is_enabled).toBe(true);
    expect(socket.features.slash_commands.map((c) => c.command)).toEqual(['/ops']);
  });

  it('both declare the message shortcut the bot answers (status_of_message)', async () => {
    for (const name of ['slack-app-manifest.yaml', 'slack-app-manifest.socket.yaml']) {
      const shortcuts = (await load(name)).features.shortcuts ?? [];
      expect(
        shortcuts.map((s) => [s.type, s.callback_id]),
        name,
      ).toEqual([['message', STATUS_SHORTCUT]]);
      // Slack refuses the manifest over long fields.
      for (const s of shortcuts) expect(s.description.length).toBeLessThanOrEqual(150);
    }
  });
});
