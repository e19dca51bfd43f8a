import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * Where a `plugins:` entry's module lives: a path is relative to the config file's
 * directory; a package name is looked up in node_modules from there (not from switchyard's
 * own install), so a team installs its plugins beside its config.
 * Throws a plain Error with a message fit for the config error; the loader codes it.
 */
export function resolvePluginModule(specifier: string, configDir: string): string {
  if (specifier.startsWith('.') || isAbsolute(specifier)) {
    const file = resolve(configDir, specifier);
    if (!existsSync(file)) throw new Error(`no such file: ${file}`);
    // A folder loads as a package does: its package.json "main", else index.js.
    return statSync(file).isDirectory() ? createRequire(join(configDir, 'switchyard.yaml')).resolve(file) : file;
  }
  const require = createRequire(join(configDir, 'switchyard.yaml'));
  try {
    return require.resolve(specifier);
  } catch (err) {
    // require.resolve reads the "require" condition of `exports`; an ESM-only package
    // exports "import" alone. Node 20's import.meta.resolve ignores a parent URL, so the
    // import side is read here.
    if ((err as NodeJS.ErrnoException).code === 'ERR_PACKAGE_PATH_NOT_EXPORTED') {
      const found = resolveEsmExport(specifier, configDir);
      if (found) return found;
    }
    if ((err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') {
      throw new Error(`cannot find the package "${specifier}" from ${configDir} (install it there with npm, or write a path starting with ./)`);
    }
    throw err;
  }
}

/** Imports the module; .ts works when switchyard runs from its sources (bin/ registers tsx). */
export async function importPluginModule(file: string): Promise<unknown> {
  try {
    return await import(pathToFileURL(file).href);
  } catch (err) {
    // Run from the sources, tsx takes a .js file outside a "type": "module" package for
    // CommonJS, and an `export` in it then fails with this code.
    if ((err as NodeJS.ErrnoException).code === 'ERR_REQUIRE_CYCLE_MODULE' && extname(file) === '.js') {
      throw new Error(`${file} is an ES module: put "type": "module" in a package.json beside it, or name it .mjs`);
    }
    if ((err as NodeJS.ErrnoException).code === 'ERR_UNKNOWN_FILE_EXTENSION' && ['.ts', '.mts'].includes(extname(file))) {
      throw new Error(`${file}: a TypeScript plugin needs switchyard run from its sources (through tsx); compile it to .js for this install`);
    }
    throw err;
  }
}

type Exports = string | null | { [key: string]: Exports } | Exports[];

function resolveEsmExport(specifier: string, fromDir: string): string | undefined {
  const parts = specifier.split('/');
  const nameLength = specifier.startsWith('@') ? 2 : 1;
  const name = parts.slice(0, nameLength).join('/');
  const subpath = parts.length > nameLength ? `./${parts.slice(nameLength).join('/')}` : '.';
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const pkgDir = join(dir, 'node_modules', name);
    const manifest = join(pkgDir, 'package.json');
    if (existsSync(manifest)) {
      const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as { exports?: Exports };
      const exp = pkg.exports;
      const entry =
        typeof exp === 'object' && exp !== null && !Array.isArray(exp) && Object.keys(exp).some((k) => k.startsWith('.'))
          ? exp[subpath]
          : subpath === '.'
            ? exp
            : undefined;
      const target = pick(entry ?? null);
      return target ? resolve(pkgDir, target) : undefined;
    }
    if (dirname(dir) === dir) return undefined;
  }
}

const CONDITIONS = ['import', 'node', 'default'];

function pick(e: Exports): string | undefined {
  if (typeof e === 'string') return e;
  if (Array.isArray(e)) return e.map(pick).find((t) => t !== undefined);
  if (e === null) return undefined;
  for (const c of CONDITIONS) if (c in e) return pick(e[c] ?? null);
  return undefined;
}
