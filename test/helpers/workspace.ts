import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { sharedEtcdEndpoint, uniquePrefix, wipe } from './etcd.js';

export const ONCALL = 'U0ONCALL';
export const VISITOR = 'U0VISITOR';
export const OPS_CHANNEL = 'C0OPS';

/** Everyone may read; the on-call group may change anything, in #ops or a DM. */
export const DEFAULT_ACL = `groups:
  oncall: [${ONCALL}]
rules:
  - allow: [status, help]
    users: ["*"]
  - name: oncall changes
    allow: ["*"]
    groups: [oncall]
    channels: [${OPS_CHANNEL}, dm]
`;

export interface WorkspaceOptions {
  acl?: string;
  /** etcd.commandTimeout as written in switchyard.yaml ("30s"); the product's default when absent. */
  commandTimeout?: string;
}

/**
 * A private switchyard setup on the shared etcd: a temp dir holding switchyard.yaml and
 * acl.yaml, with registry prefixes no other test uses, and an etcd client to check state.
 */
export async function makeWorkspace(opts: WorkspaceOptions = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-ws-'));
  const endpoint = sharedEtcdEndpoint();
  const root = uniquePrefix('ws');
  const prefixes = { services: `${root}/services`, switchyard: `${root}/switchyard` };
  const acl = opts.acl ?? DEFAULT_ACL;
  await writeFile(join(dir, 'acl.yaml'), acl);
  const configPath = join(dir, 'switchyard.yaml');
  await writeFile(
    configPath,
    `etcd:
  endpoints: [${endpoint}]
${opts.commandTimeout ? `  commandTimeout: ${opts.commandTimeout}\n` : ''}registry:
  prefix: ${prefixes.services}
  switchyardPrefix: ${prefixes.switchyard}
acl:
  path: ./acl.yaml
`,
  );
  const etcd = new Etcd3({ hosts: endpoint });
  return {
    dir,
    configPath,
    endpoint,
    prefixes,
    etcd,
    /** The value under <services>/<service>/<instance>, or null. */
    instanceValue: (service: string, instance: string) => etcd.get(`${prefixes.services}/${service}/${instance}`).string(),
    async dispose() {
      await wipe(etcd, root);
      etcd.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export type Workspace = Awaited<ReturnType<typeof makeWorkspace>>;
