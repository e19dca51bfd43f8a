/**
 * `maintenance <service> on|off`: every instance of a service out of HAProxy (state maint)
 * for a maintenance window, and back to ready. No import from switchyard: everything comes
 * from `api`; the JSDoc type is for editors only.
 *
 * switchyard.yaml:
 *   plugins:
 *     - module: ./plugins/maintenance/index.js
 *       options: { reason: "database upgrade", confirmOn: true }
 */

/** @type {import('switchyard/plugin').PluginFactory} */
export default function maintenancePlugin(api) {
  const { z } = api;
  // Checked at start (and by `switchyard check`): a typo here stops the bot with the line.
  const options = api.options(
    z
      .object({
        /** Shown in the reply and in the confirmation question. */
        reason: z.string().min(1).default('planned maintenance'),
        /** Ask before taking a whole service out (answer with --yes or the Slack button). */
        confirmOn: z.boolean().default(true),
      })
      .strict(),
  );

  /** The service's instances, or a coded "not found" the router turns into the reply. */
  async function instancesOf(registry, service) {
    const { instances } = await registry.list(service);
    if (instances.length === 0) api.errors.fail('E_NOT_FOUND', `${service} has no registered instance`);
    return instances;
  }

  return {
    name: 'maintenance',
    apiVersion: '^1.0.0',
    commands: [
      api.defineCommand({
        name: 'maintenance',
        summary: 'take every instance of a service out of rotation (on), or put it back (off)',
        args: z.object({ service: api.args.service, mode: z.enum(['on', 'off']) }),
        positionals: ['service', 'mode'],
        // acl.yaml `services:` globs apply to this argument.
        serviceArg: 'service',
        async needsConfirmation(ctx, { service, mode }) {
          if (mode !== 'on' || !options.confirmOn) return undefined;
          const n = (await instancesOf(ctx.registry, service)).length;
          return `this takes all ${n} instance(s) of ${service} out of rotation (${options.reason})`;
        },
        async handler(ctx, { service, mode }) {
          const target = mode === 'on' ? 'maint' : 'ready';
          const changed = [];
          for (const inst of await instancesOf(ctx.registry, service)) {
            if ((inst.state?.state ?? 'ready') === target) continue;
            // Attributed to the caller in #ops and `history`: the router's cause is ambient.
            await ctx.registry.setState(service, inst.instance, target);
            changed.push(inst.instance);
          }
          const what = mode === 'on' ? `in maintenance (${options.reason})` : 'back in rotation';
          if (changed.length === 0) return `${service}: every instance was already ${what}`;
          return `${service}: ${changed.join(', ')} ${what}`;
        },
      }),
    ],
  };
}
