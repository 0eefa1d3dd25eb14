/**
 * Resolving what validation collected: relative paths made absolute against the config
 * folder, `*_file` secrets read, `*_command` secrets run (without a shell), and every
 * secret value registered with the mask.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { execFile, splitCommandLine } from '../../lib/exec';
import { registerSecret } from '../../lib/mask';
import type { Collected } from './schema';

export interface ResolveOptions {
  configDir: string;
  /** `file:line:col: path` of a JSON pointer into the validated data */
  where(pointer: string): string;
  signal?: AbortSignal;
  /** for each secret command (ms) */
  commandTimeoutMs?: number;
  /**
   * false: `*_file` and `*_command` are left as written (nothing read, nothing run); paths are
   * still resolved. For commands that only read state (history, backups list): a secret
   * command may prompt for a passphrase, and they need no secret.
   */
  secrets?: boolean;
  /**
   * The owner of a secret whose failure must not fail the whole config: a plugin's options
   * (`plugins.<name>.*`), whose plugin is then set aside as createPlugins sets aside any
   * plugin that cannot load. Problems of owned secrets go to `deferred[owner]`.
   */
  owner?(pointer: string): string | undefined;
}

export interface ResolveResult {
  warnings: string[];
  /** JSON pointers of every secret value (for masking in `config show`) */
  secretPointers: string[];
  /** problems of secrets that have an owner (see ResolveOptions.owner): owner -> `file:line:col: path: message` lines */
  deferred: Record<string, string[]>;
  /** secrets without an owner that could not be resolved: `file:line:col: path: message` lines (config errors) */
  problems: string[];
}

function stripNewline(s: string): string {
  return s.replace(/\r?\n$/, '');
}

export async function resolveCollected(collected: Collected, opts: ResolveOptions): Promise<ResolveResult> {
  const warnings: string[] = [];
  const problems: string[] = [];
  const secretPointers = new Set<string>();
  const deferred: Record<string, string[]> = {};

  const seenPaths = new Set<string>();
  for (const p of collected.paths) {
    if (seenPaths.has(p.pointer)) continue;
    seenPaths.add(p.pointer);
    const value = (p.parent as Record<string | number, unknown>)[p.key];
    if (typeof value === 'string' && !path.isAbsolute(value)) {
      const expanded =
        value === '~' || value.startsWith('~/') ? path.join(process.env.HOME ?? '/', value.slice(1)) : path.resolve(opts.configDir, value);
      (p.parent as Record<string | number, unknown>)[p.key] = expanded;
    }
  }

  const seenSources = new Set<string>();
  for (const s of opts.secrets === false ? [] : collected.secretSources) {
    if (seenSources.has(s.pointer)) continue;
    seenSources.add(s.pointer);
    const raw = s.parent[s.key];
    const basePointer = s.pointer.slice(0, s.pointer.length - s.key.length) + s.base;
    try {
      let value: string;
      if (s.via === 'file') {
        const file = String(raw);
        let st;
        try {
          st = await fs.stat(file);
        } catch (e) {
          throw new Error(
            (e as NodeJS.ErrnoException).code === 'ENOENT'
              ? `secret file ${file} does not exist: create it (chmod 600) or fix the path`
              : `cannot read secret file ${file}: ${(e as Error).message}`,
          );
        }
        if (!st.isFile()) throw new Error(`secret file ${file} is not a regular file`);
        if (st.mode & 0o077) {
          warnings.push(
            `${opts.where(s.pointer)}: secret file ${file} is readable or writable by group or others (mode ${(st.mode & 0o777).toString(8)}): run chmod 600 ${file}`,
          );
        }
        value = stripNewline(await fs.readFile(file, 'utf8'));
        if (!value) throw new Error(`secret file ${file} is empty`);
      } else {
        let argv: string[];
        try {
          argv = Array.isArray(raw) ? (raw as string[]) : splitCommandLine(String(raw));
        } catch (e) {
          throw new Error(`cannot parse the command: ${(e as Error).message}`);
        }
        if (argv.length === 0) throw new Error('the command is empty');
        const res = await execFile(argv[0], argv.slice(1), {
          signal: opts.signal,
          timeoutMs: opts.commandTimeoutMs ?? 30_000,
          cwd: opts.configDir,
        });
        if (res.code !== 0) {
          const why = res.stderr.trim().split('\n').slice(-3).join(' | ');
          throw new Error(`the command ${argv[0]} exited with ${res.code ?? res.signal}${why ? `: ${why}` : ''}`);
        }
        value = stripNewline(res.stdout);
        if (!value) throw new Error(`the command ${argv[0]} printed nothing`);
      }
      registerSecret(value);
      delete s.parent[s.key];
      s.parent[s.base] = value;
      secretPointers.add(basePointer);
    } catch (e) {
      const line = `${opts.where(s.pointer)}: ${(e as Error).message}`;
      const owner = opts.owner?.(s.pointer);
      if (owner !== undefined) (deferred[owner] ??= []).push(line);
      else problems.push(line);
    }
  }
  for (const v of collected.secretValues) {
    const value = v.parent[v.key];
    if (typeof value === 'string') registerSecret(value);
    secretPointers.add(v.pointer);
  }
  return { warnings, secretPointers: [...secretPointers], deferred, problems };
}
