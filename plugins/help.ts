import type { Plugin, PluginApi } from '../src/plugin.js';

/** `help [command]`: only what the caller may run, usage generated from the schemas. */
export default function help(api: PluginApi): Plugin {
  const { z } = api;
  return {
    name: 'help',
    commands: [
      api.defineCommand({
        name: 'help',
        summary: 'list the commands you may run, or show one command’s usage',
        args: z.object({ command: z.string().describe('command').optional() }),
        positionals: ['command'],
        async handler(ctx, { command }) {
          const visible = ctx.visibleCommands();
          if (command) {
            const cmd = visible.find((c) => c.name === command.toLowerCase());
            if (!cmd) api.errors.fail('E_NOT_FOUND', `no command "${command}" that you may run`, { details: ['type "help" for the list'] });
            const approval = ctx.approvalNeeded(cmd.name);
            return api.reply.text(`${cmd.name}: ${cmd.summary}`, [
              `usage: ${api.usage(cmd)}`,
              ...(approval ? [`needs approval by ${approvers(approval)} before it runs`] : []),
            ]);
          }
          if (visible.length === 0) return 'you may not run any command here';
          return api.reply.ok('commands you may run here:', {
            tables: [
              api.reply.table(
                undefined,
                ['usage', 'what it does'],
                visible.map((c) => {
                  const approval = ctx.approvalNeeded(c.name);
                  return [api.usage(c), approval ? `${c.summary} (needs approval by ${approvers(approval)})` : c.summary];
                }),
              ),
            ],
          });
        },
      }),
    ],
  };
}

/** "1 of leads", "2 of leads, sre", "1 other person". */
function approvers(a: { groups: readonly string[]; count: number }): string {
  if (a.groups.includes('*')) return a.count === 1 ? '1 other person' : `${a.count} other people`;
  return `${a.count} of ${a.groups.join(', ')}`;
}
