import { z } from 'zod';
import { fail } from '../src/core/errors.js';
import { defineCommand, type Plugin } from '../src/core/plugin.js';
import { ok } from '../src/core/reply.js';
import { usage } from '../src/core/usage.js';

/** `help [command]`: only what the caller may run, usage generated from the schemas. */
export default function helpPlugin(): Plugin {
  return {
    name: 'help',
    commands: [
      defineCommand({
        name: 'help',
        summary: 'list the commands you may run, or show one command’s usage',
        args: z.object({ command: z.string().describe('command').optional() }),
        positionals: ['command'],
        mutating: false,
        async handler(ctx, { command }) {
          const visible = ctx.visibleCommands();
          if (command) {
            const cmd = visible.find((c) => c.name === command.toLowerCase());
            if (!cmd) fail('E_NOT_FOUND', `no command "${command}" that you may run`, { details: ['type "help" for the list'] });
            return ok(`${cmd.name}: ${cmd.summary}`, { details: [`usage: ${usage(cmd)}`] });
          }
          if (visible.length === 0) return ok('you may not run any command here');
          return ok('commands you may run here:', {
            tables: [{ table: { header: ['usage', 'what it does'], rows: visible.map((c) => [usage(c), c.summary]) } }],
          });
        },
      }),
    ],
  };
}
