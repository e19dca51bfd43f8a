import { appendFile, cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeWorkspace, ONCALL, OPS_CHANNEL, VISITOR } from './workspace.js';

const EXAMPLES = fileURLToPath(new URL('../../examples/plugins', import.meta.url));

/** Everyone reads and probes; on-call may do anything; the visitor may put only `sandbox-*` in maintenance. */
export const PLUGIN_ACL = `groups:
  oncall: [${ONCALL}]
rules:
  - allow: [status, help, probe]
    users: ["*"]
  - name: oncall changes
    allow: ["*"]
    groups: [oncall]
    channels: [${OPS_CHANNEL}, dm]
  - name: sandbox windows
    allow: [maintenance]
    users: [${VISITOR}]
    services: ["sandbox-*"]
`;

/**
 * Test-only plugins, written as a team would (no import from switchyard): one that throws,
 * one that never answers (cut off at 300 ms), one answering with a plain string.
 */
export const FAULTY_PLUGIN = `export default (api) => ({
  name: 'faulty',
  apiVersion: '^1.0.0',
  commands: [
    api.defineCommand({ name: 'explode', summary: 'throws an uncoded error', args: api.z.object({}), positionals: [],
      handler: async () => { throw new Error('kaboom: secret internals'); } }),
    api.defineCommand({ name: 'hang', summary: 'never answers', args: api.z.object({}), positionals: [], timeoutMs: 300,
      handler: () => new Promise(() => {}) }),
    api.defineCommand({ name: 'hello', summary: 'answers with a plain string', args: api.z.object({}), positionals: [],
      handler: async (ctx) => 'hello ' + ctx.caller.userId }),
  ],
});
`;

/** A plugin module file `body`, with `apiVersion` and a command name chosen by the test. */
export const pluginSource = (o: { name: string; command: string; apiVersion?: string }) => `export default (api) => ({
  name: '${o.name}',${o.apiVersion ? `\n  apiVersion: '${o.apiVersion}',` : ''}
  commands: [api.defineCommand({ name: '${o.command}', summary: 'test', args: api.z.object({}), positionals: [], handler: async () => 'ran' })],
});
`;

/**
 * A workspace (temp dir outside the source tree, private etcd prefixes) with the example
 * plugins copied under ./plugins/ and `plugins:` appended to switchyard.yaml as given.
 */
export async function pluginWorkspace(o: { plugins: string; files?: Record<string, string>; acl?: string }) {
  const ws = await makeWorkspace({ acl: o.acl ?? PLUGIN_ACL });
  await cp(EXAMPLES, join(ws.dir, 'plugins'), { recursive: true });
  for (const [rel, text] of Object.entries(o.files ?? {})) {
    await mkdir(join(ws.dir, rel, '..'), { recursive: true });
    await writeFile(join(ws.dir, rel), text);
  }
  await appendFile(ws.configPath, o.plugins);
  return ws;
}
