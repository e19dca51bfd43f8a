import { setFlagsFromString } from 'node:v8';

/**
 * The long-running roles (serve, agent, watch) hold ~30 MB of live objects, but with V8's
 * defaults a burst of commands or registry changes leaves the heap holding several times
 * that in garbage: V8 grows the heap rather than collect (serve at 161–177 MB after 500
 * concurrent commands, against a 150 MB budget; 99–115 MB with this flag; bench/memory.ts).
 * `--optimize-for-size` is read by the heap's growing strategy at every collection, so
 * setting it at start-up works from any launcher (bin, image, `node dist/src/cli.js`),
 * where a command-line flag would have to be repeated in each. An operator who passes
 * `--no-optimize-for-size` to node keeps V8's defaults.
 */
export function preferSmallHeap(execArgv: readonly string[] = process.execArgv): boolean {
  if (execArgv.includes('--no-optimize-for-size')) return false;
  setFlagsFromString('--optimize-for-size');
  return true;
}
