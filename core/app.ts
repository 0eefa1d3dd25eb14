/**
 * The composition root: config -> logger -> state -> plugin registry -> engines.
 * The CLI calls openApp() once per command; nothing here prints or exits.
 */
import * as path from 'node:path';
import { AutopilotError } from '../lib/errors';
import type { Logger } from '../lib/log';
import type { KeyValueStore, StateManager } from '../lib/state';
import type { BackupEngine, BackupEvent } from './backup/engine';
import type { NotificationEngine } from './notify/engine';
import type { UpdateEngine, UpdateEngineDeps } from './update/engine';
import { findConfigFile, readRawConfig, validateConfig, type FoundConfig, type LoadedConfig } from './config/load';
import { configPlugins } from './config/plugins';
import { formatLocation } from './config/source';
import type { GlobalConfig } from './config/types';
import { createPlugins, discoverPlugins, PluginRegistry } from './plugins/host';
import { CODE_ROOT } from './paths';

export const BUILTIN_PLUGINS = path.join(CODE_ROOT, 'plugins');

export type StateMode = 'rw' | 'ro' | 'none';

/**
 * What a command needs beyond the validated config and state. A listing of state needs
 * neither: it must not run `pass show …` (which may prompt) nor reach a hypervisor's API.
 */
export interface AppNeeds {
  /**
   * Create the plugins (default true). false: they are still discovered, since their schemas
   * are part of the config's, but none is created; the registry is empty and the engines
   * cannot be had.
   */
  plugins?: boolean;
  /** Read `*_file` and run `*_command` secrets (default true). Plugins need theirs: false needs plugins: false. */
  secrets?: boolean;
}

export interface AppOptions {
  configPath?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  signal: AbortSignal;
  state: StateMode;
  /** default: everything */
  needs?: AppNeeds;
  /** creates the logger once the config says where logs go */
  makeLogger(global: GlobalConfig): Logger;
  /** for tests: the built-in plugins folder */
  builtinRoot?: string;
  /** for tests: the system-wide config file */
  systemFile?: string;
}

export interface App {
  /** what was opened */
  needs: Required<AppNeeds>;
  found: FoundConfig;
  loaded: LoadedConfig;
  /** the created plugins (none when needs.plugins is false) */
  registry: PluginRegistry;
  logger: Logger;
  state: StateManager | null;
  /** problems that are not fatal (secret file permissions, options for plugins that are not installed) */
  warnings: string[];
  /** services whose plugin is missing or failed: `service -> reason` (empty when needs.plugins is false: nothing was created) */
  unresolvedServices: { service: string; reason: string; location: string }[];
  backupEngine(onEvent?: (e: BackupEvent) => void): BackupEngine;
  updateEngine(onStep?: UpdateEngineDeps['onStep']): UpdateEngine;
  /** the notification engine (one per app) */
  notifier(): NotificationEngine;
  /** channels whose plugin is missing or failed (empty when needs.plugins is false) */
  unresolvedChannels: { channel: string; reason: string; location: string }[];
  /** lets every plugin dispose of what it holds, then closes state */
  close(): Promise<void>;
}

function memoryStore(): KeyValueStore {
  const m = new Map<string, string>();
  return {
    get: <T>(k: string, f?: T) => (m.has(k) ? (JSON.parse(m.get(k) as string) as T) : f),
    set: (k, v) => void m.set(k, JSON.stringify(v ?? null)),
    delete: (k) => void m.delete(k),
    exists: (k) => m.has(k),
  };
}

export async function openApp(opts: AppOptions): Promise<App> {
  const needs: Required<AppNeeds> = { plugins: opts.needs?.plugins ?? true, secrets: opts.needs?.secrets ?? true };
  if (needs.plugins && !needs.secrets)
    throw new AutopilotError('INTERNAL', 'openApp: plugins cannot be created without their secrets (needs.plugins needs needs.secrets)');
  const found = await findConfigFile({ explicit: opts.configPath, env: opts.env, cwd: opts.cwd, systemFile: opts.systemFile });
  const raw = readRawConfig(found, opts.env ?? process.env);
  const rawGlobal = (raw.data.global ?? {}) as Record<string, unknown>;
  const pluginsDir =
    typeof rawGlobal.plugins_dir === 'string' ? path.resolve(raw.dir, rawGlobal.plugins_dir) : path.join(raw.dir, 'plugins.d');
  // discovered (imported, checked) even when none is created: their schemas are part of the config's
  const discovered = await discoverPlugins({ builtinRoot: opts.builtinRoot ?? BUILTIN_PLUGINS, pluginsDir });
  const loaded = await validateConfig(raw, configPlugins(discovered.definitions), { signal: opts.signal, secrets: needs.secrets });
  const logger = opts.makeLogger(loaded.config.global);
  const warnings = [...loaded.warnings];

  let state: StateManager | null = null;
  if (opts.state !== 'none') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { StateManager: State } = require('../lib/state') as typeof import('../lib/state');
    state = opts.state === 'rw' ? State.open(loaded.config.global.state_dir) : State.openReadOnly(loaded.config.global.state_dir);
  }

  const registry = needs.plugins
    ? await createPlugins(discovered, {
        options: loaded.pluginOptions,
        optionFailures: loaded.pluginFailures,
        configDir: loaded.dir,
        stateDir: loaded.config.global.state_dir,
        logger,
        signal: opts.signal,
        store: (name) => (state && !state.readonly ? state.pluginStore(name) : memoryStore()),
      })
    : new PluginRegistry([], [...discovered.failures], discovered.pluginsDir);
  warnings.push(...registry.warnings);
  for (const f of registry.failures) logger.warn(`plugin ${f.name} (${f.file}) was not loaded: ${f.reason}`);
  for (const w of warnings) logger.warn(w);

  const unresolvedServices: App['unresolvedServices'] = [];
  loaded.config.services.forEach((svc, i) => {
    if (!needs.plugins || registry.handlesServiceType(svc.type)) return;
    const failure = registry.failures.find((f) => f.name === svc.type);
    const installed = registry.installed('service');
    unresolvedServices.push({
      service: svc.name,
      location: formatLocation(loaded.locator(['services', i, 'type'])),
      reason: failure
        ? `the service plugin '${svc.type}' failed to load: ${failure.reason}`
        : `no service plugin named '${svc.type}' is installed (installed: ${installed.join(', ') || 'none'}; plugins.d: ${registry.pluginsDir})`,
    });
  });

  const unresolvedChannels: App['unresolvedChannels'] = [];
  loaded.config.notifications.channels.forEach((c, i) => {
    if (!needs.plugins || registry.find('notification', c.type)) return;
    const failure = registry.failures.find((f) => f.name === c.type);
    unresolvedChannels.push({
      channel: c.name,
      location: formatLocation(loaded.locator(['notifications', 'channels', i, 'type'])),
      reason: failure
        ? `the notification plugin '${c.type}' failed to load: ${failure.reason}`
        : `no notification plugin named '${c.type}' is installed (installed: ${registry.installed('notification').join(', ') || 'none'})`,
    });
  });

  // an engine over an empty registry would fail every service as "plugin not installed"
  const needPlugins = (what: string): void => {
    if (!needs.plugins) throw new AutopilotError('INTERNAL', `${what} needs plugins, but the app was opened with needs.plugins false`);
  };
  let notifier: NotificationEngine | null = null;
  const getNotifier = (): NotificationEngine => {
    needPlugins('the notification engine');
    if (!notifier) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { NotificationEngine: Engine } = require('./notify/engine') as typeof import('./notify/engine');
      notifier = new Engine({ config: loaded.config.notifications, registry, state, logger, signal: opts.signal });
    }
    return notifier;
  };

  return {
    needs,
    found,
    loaded,
    unresolvedChannels,
    notifier: getNotifier,
    registry,
    logger,
    state,
    warnings,
    unresolvedServices,
    backupEngine: (onEvent) => {
      needPlugins('the backup engine');
      // loaded when a backup runs: config validate and the listings never need it
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { BackupEngine: Engine } = require('./backup/engine') as typeof import('./backup/engine');
      return new Engine({ config: loaded.config, registry, logger, state, signal: opts.signal, onEvent, notifier: getNotifier() });
    },
    updateEngine: (onStep) => {
      needPlugins('the update engine');
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { UpdateEngine: Engine } = require('./update/engine') as typeof import('./update/engine');
      // its alerts go out even after SIGINT/SIGTERM (a rollback alert matters most then): the
      // channels' own time budgets bound them, not the command's signal
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { NotificationEngine: Notifier } = require('./notify/engine') as typeof import('./notify/engine');
      const notifier = new Notifier({ config: loaded.config.notifications, registry, state, logger, signal: new AbortController().signal });
      return new Engine({ config: loaded.config, registry, logger, state, signal: opts.signal, onStep, notifier });
    },
    close: async () => {
      try {
        await registry.dispose();
      } finally {
        state?.close();
      }
    },
  };
}
