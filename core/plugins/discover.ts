/**
 * Finding plugins: the built-in folder (<root>/<kind>s/<name>/index.js) and plugins.d (files
 * and folders with a package.json), each plugins.d entry checked for who may have written it
 * (lib/trust.ts) before it is imported; every definition checked (./check.ts); none created.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describeError } from '../../lib/errors';
import { checkPermissions, runningAsRoot, unsafeReason } from '../../lib/trust';
import { checkDefinition, CODE_FILE, failed, type Candidate, type CheckedDefinition, type PluginRecord } from './check';

/** Built-in plugins live in <root>/<kind>s/<name>/index.js. */
export function builtinCandidates(root: string): Candidate[] {
  const out: Candidate[] = [];
  for (const kindDir of ['hypervisors', 'services', 'notifications']) {
    const dir = path.join(root, kindDir);
    if (!fs.existsSync(dir)) continue;
    for (const name of fs.readdirSync(dir).sort()) {
      const entry = path.join(dir, name, 'index.js');
      if (fs.existsSync(entry)) out.push({ source: 'built-in', location: path.join(dir, name), entry });
    }
  }
  return out;
}

/** plugins.d holds .js/.cjs/.mjs files and folders with a package.json. */
export function pluginsDirCandidates(dir: string, failures: PluginRecord[]): Candidate[] {
  const out: Candidate[] = [];
  for (const name of fs.readdirSync(dir).sort()) {
    if (name.startsWith('.')) continue;
    const full = path.join(dir, name);
    let st: fs.Stats;
    try {
      st = fs.statSync(full);
    } catch (e) {
      failures.push(failed(name, 'plugins.d', full, `cannot read it: ${describeError(e)}`));
      continue;
    }
    if (st.isFile() && CODE_FILE.test(name)) out.push({ source: 'plugins.d', location: full, entry: full });
    else if (st.isDirectory()) {
      const pkgFile = path.join(full, 'package.json');
      if (!fs.existsSync(pkgFile)) {
        failures.push(failed(name, 'plugins.d', full, 'a plugin folder needs a package.json (with "main" naming its entry file)'));
        continue;
      }
      try {
        const pkg = JSON.parse(fs.readFileSync(pkgFile, 'utf8')) as { main?: string };
        const entry = path.resolve(full, pkg.main ?? 'index.js');
        const within = (p: string, dir: string): boolean => p.startsWith(dir + path.sep);
        const realFull = fs.realpathSync(full);
        if (!within(entry, full) || (fs.existsSync(entry) && !within(fs.realpathSync(entry), realFull))) {
          failures.push(
            failed(
              name,
              'plugins.d',
              full,
              `package.json "main" (${pkg.main}) points outside the plugin folder: a plugin must be self-contained`,
            ),
          );
          continue;
        }
        out.push({ source: 'plugins.d', location: full, entry });
      } catch (e) {
        failures.push(failed(name, 'plugins.d', full, `package.json is not valid JSON: ${describeError(e)}`));
      }
    }
  }
  return out;
}

/** CommonJS files are required (cheap); ES modules (.mjs, "type": "module") are imported. */
async function loadModule(entry: string): Promise<Record<string, unknown>> {
  if (!entry.endsWith('.mjs')) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- a CommonJS plugin is required by its path
      return { default: require(entry) as unknown };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ERR_REQUIRE_ESM') throw e;
    }
  }
  return (await import(pathToFileURL(entry).href)) as Record<string, unknown>;
}

async function importCandidate(c: Candidate): Promise<unknown[]> {
  const mod = await loadModule(c.entry);
  let exp: unknown = mod.default ?? mod;
  if (exp && typeof exp === 'object' && !Array.isArray(exp)) {
    const o = exp as Record<string, unknown>;
    // a CommonJS module compiled from `export default` (TypeScript, Babel)
    if (o.__esModule && o.default) exp = o.default;
    else if (o.plugin) exp = o.plugin;
    else if (Array.isArray(o.plugins)) exp = o.plugins;
  }
  return Array.isArray(exp) ? (exp as unknown[]) : [exp];
}

export interface DiscoverOptions {
  builtinRoot: string;
  pluginsDir: string;
  /** whether to enforce root's ownership rules (default: when running as root) */
  asRoot?: boolean;
}

export interface Discovered {
  definitions: CheckedDefinition[];
  failures: PluginRecord[];
  pluginsDir: string;
}

/** Imports and checks every plugin; creates none. */
export async function discoverPlugins(opts: DiscoverOptions): Promise<Discovered> {
  const asRoot = opts.asRoot ?? runningAsRoot();
  const failures: PluginRecord[] = [];
  const candidates = builtinCandidates(opts.builtinRoot);
  if (fs.existsSync(opts.pluginsDir)) {
    const dirProblem = unsafeReason(opts.pluginsDir, fs.statSync(opts.pluginsDir), asRoot);
    const found = pluginsDirCandidates(opts.pluginsDir, failures);
    if (dirProblem)
      for (const c of found) failures.push(failed(path.basename(c.location).replace(CODE_FILE, ''), c.source, c.location, dirProblem));
    else candidates.push(...found);
  }
  const definitions: CheckedDefinition[] = [];
  const byName = new Map<string, CheckedDefinition>();
  for (const c of candidates) {
    const fallbackName = path.basename(c.location).replace(CODE_FILE, '');
    if (c.source === 'plugins.d') {
      const why = checkPermissions(c.location, asRoot);
      if (why) {
        failures.push(failed(fallbackName, c.source, c.location, `refused: ${why}`));
        continue;
      }
    }
    let exported: unknown[];
    try {
      exported = await importCandidate(c);
    } catch (e) {
      const err = e as Error;
      const where = err.stack?.split('\n').find((l) => l.includes(c.location)) ?? '';
      failures.push(
        failed(
          fallbackName,
          c.source,
          c.location,
          `cannot load it: ${err.name === 'SyntaxError' ? 'syntax error: ' : ''}${err.message}${where ? ` (${where.trim()})` : ''}`,
        ),
      );
      continue;
    }
    for (const value of exported) {
      const checked = checkDefinition(value, c);
      if ('status' in checked) {
        failures.push(checked);
        continue;
      }
      const prev = byName.get(checked.def.name);
      if (prev) {
        failures.push({
          ...checked.record,
          status: 'failed',
          reason: `duplicate name: '${checked.def.name}' is already provided by ${prev.record.file}`,
        });
        continue;
      }
      byName.set(checked.def.name, checked);
      definitions.push(checked);
    }
  }
  return { definitions, failures, pluginsDir: opts.pluginsDir };
}
