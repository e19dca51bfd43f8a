/**
 * Config-file writes that never leave a half-written haproxy.cfg: write a temp file in the
 * same directory (rename is atomic only within one filesystem), fsync, rename.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** A temp path beside `target`, hidden and unique per process and call. */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

export async function writeFileDurable(path: string, content: string): Promise<void> {
  const fh = await open(path, 'w', 0o644);
  try {
    await fh.writeFile(content, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function writeFileAtomic(target: string, content: string): Promise<void> {
  const tmp = tempPathFor(target);
  try {
    await writeFileDurable(tmp, content);
    await rename(tmp, target);
  } catch (err) {
    await removeQuietly(tmp);
    throw err;
  }
}

/** The file's text, or undefined when it does not exist. */
export async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function removeQuietly(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    // Already gone is the goal; anything else is worth surfacing.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
