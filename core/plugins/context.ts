/**
 * The context a plugin's create() receives: its logger, its own store (opened when first
 * used), the run's signal, its options, its folders, exec/http/archive tools bound to the run,
 * and the host's versions. Everything a plugin may call reaches it through here.
 */
import * as path from 'node:path';
import { execFile } from '../../lib/exec';
import { httpRequest } from '../../lib/http';
import type { Logger } from '../../lib/log';
import type { KeyValueStore } from '../../lib/state';
import { hostVersion } from '../paths';
import { PLUGIN_API_VERSION, type PluginContext } from './contract';

/** The archive tools a plugin gets (lib/archive.ts, loaded when first used). */
function archiveTools(runSignal: AbortSignal): PluginContext['archive'] {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use, to keep start-up fast
  const lib = (): typeof import('../../lib/archive') => require('../../lib/archive') as typeof import('../../lib/archive');
  return {
    async create(o) {
      const r = await lib().createArchive({
        sources: o.sources,
        exclude: o.exclude ?? [],
        compression: 'zstd',
        level: 3,
        threads: 1,
        dest: o.dest,
        signal: o.signal ?? runSignal,
      });
      return { path: r.path, size: r.size, sha256: r.sha256 };
    },
    async verify(file, expect, signal) {
      const v = await lib().verifyArchive(file, expect, { signal: signal ?? runSignal });
      return { ok: v.ok, error: v.error, entries: v.entries };
    },
    extract: (file, signal) => lib().extractArchive(file, signal ?? runSignal),
  };
}

export interface ContextOptions {
  /** the plugin's name */
  name: string;
  /** its options, validated and resolved by the config stage */
  options: Record<string, unknown>;
  configDir: string;
  /** global.state_dir: plugins get <stateDir>/plugins/<name> */
  stateDir: string;
  logger: Logger;
  signal: AbortSignal;
  /** the plugin's store, opened when first used */
  store(plugin: string): KeyValueStore;
}

export function pluginContext(o: ContextOptions): PluginContext {
  let store: KeyValueStore | null = null;
  const lazyStore = (): KeyValueStore => (store ??= o.store(o.name));
  return {
    logger: o.logger.child(`plugin:${o.name}`),
    store: {
      get: (k, f) => lazyStore().get(k, f),
      set: (k, v) => lazyStore().set(k, v),
      delete: (k) => lazyStore().delete(k),
      exists: (k) => lazyStore().exists(k),
    },
    signal: o.signal,
    options: o.options,
    configDir: o.configDir,
    dataDir: path.join(o.stateDir, 'plugins', o.name),
    exec: (command, args, x = {}) =>
      execFile(command, args, {
        cwd: x.cwd,
        env: x.env ? { ...process.env, ...x.env } : undefined,
        input: x.input,
        timeoutMs: x.timeoutMs ?? 600_000,
        signal: x.signal ?? o.signal,
      }),
    http: (request) => httpRequest({ ...request, signal: request.signal ?? o.signal }),
    archive: archiveTools(o.signal),
    host: { apiVersion: PLUGIN_API_VERSION, version: hostVersion() },
  };
}
