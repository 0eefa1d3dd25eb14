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
import { formatLocation } from './config/source';
import type { GlobalConfig } from './config/types';
import { createPlugins, discoverPlugins, schemaPlugins, type PluginRegistry } from './plugins/host';
import { CODE_ROOT } from './paths';

export const BUILTIN_PLUGINS = path.join(CODE_ROOT, 'plugins');

export type StateMode = 'rw' | 'ro' | 'none';

export interface AppOptions {
  configPath?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  signal: AbortSignal;
  state: StateMode;
  /** creates the logger once the config says where logs go */
  makeLogger(global: GlobalConfig): Logger;
  /** for tests: the built-in plugins folder */
  builtinRoot?: string;
  /** for tests: the system-wide config file */
  systemFile?: string;
}

export interface App {
  found: FoundConfig;
  loaded: LoadedConfig;
  registry: PluginRegistry;
  logger: Logger;
  state: StateManager | null;
  /** problems that are not fatal (secret file permissions, options for plugins that are not installed) */
  warnings: string[];
  /** services whose plugin is missing or failed: `service -> reason` */
  unresolvedServices: { service: string; reason: string; location: string }[];
  backupEngine(onEvent?: (e: BackupEvent) => void): BackupEngine;
  updateEngine(onStep?: UpdateEngineDeps['onStep']): UpdateEngine;
  /** the notification engine (one per app) */
  notifier(): NotificationEngine;
  /** channels whose plugin is missing or failed */
  unresolvedChannels: { channel: string; reason: string; location: string }[];
  close(): void;
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
  const found = await findConfigFile({ explicit: opts.configPath, env: opts.env, cwd: opts.cwd, systemFile: opts.systemFile });
  const raw = readRawConfig(found, opts.env ?? process.env);
  const rawGlobal = (raw.data.global ?? {}) as Record<string, unknown>;
  const pluginsDir =
    typeof rawGlobal.plugins_dir === 'string' ? path.resolve(raw.dir, rawGlobal.plugins_dir) : path.join(raw.dir, 'plugins.d');
  const discovered = await discoverPlugins({ builtinRoot: opts.builtinRoot ?? BUILTIN_PLUGINS, pluginsDir });
  const { service: servicePlugins, notification: channelPlugins } = schemaPlugins(discovered);
  const loaded = await validateConfig(raw, servicePlugins, { signal: opts.signal }, channelPlugins);
  const logger = opts.makeLogger(loaded.config.global);
  const warnings = [...loaded.warnings];

  let state: StateManager | null = null;
  if (opts.state !== 'none') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { StateManager: State } = require('../lib/state') as typeof import('../lib/state');
    state = opts.state === 'rw' ? State.open(loaded.config.global.state_dir) : State.openReadOnly(loaded.config.global.state_dir);
  }

  const registry = await createPlugins(discovered, {
    options: loaded.config.plugins ?? {},
    configDir: loaded.dir,
    stateDir: loaded.config.global.state_dir,
    locator: loaded.locator,
    logger,
    signal: opts.signal,
    store: (name) => (state && !state.readonly ? state.pluginStore(name) : memoryStore()),
  });
  warnings.push(...registry.warnings);
  for (const f of registry.failures) logger.warn(`plugin ${f.name} (${f.file}) was not loaded: ${f.reason}`);
  for (const w of warnings) logger.warn(w);

  const unresolvedServices: App['unresolvedServices'] = [];
  loaded.config.services.forEach((svc, i) => {
    if (registry.handlesServiceType(svc.type)) return;
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
    if (registry.find('notification', c.type)) return;
    const failure = registry.failures.find((f) => f.name === c.type);
    unresolvedChannels.push({
      channel: c.name,
      location: formatLocation(loaded.locator(['notifications', 'channels', i, 'type'])),
      reason: failure
        ? `the notification plugin '${c.type}' failed to load: ${failure.reason}`
        : `no notification plugin named '${c.type}' is installed (installed: ${registry.installed('notification').join(', ') || 'none'})`,
    });
  });

  let notifier: NotificationEngine | null = null;
  const getNotifier = (): NotificationEngine => {
    if (!notifier) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { NotificationEngine: Engine } = require('./notify/engine') as typeof import('./notify/engine');
      notifier = new Engine({ config: loaded.config.notifications, registry, state, logger, signal: opts.signal });
    }
    return notifier;
  };

  return {
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
      // loaded when a backup runs: config validate and the listings never need it
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { BackupEngine: Engine } = require('./backup/engine') as typeof import('./backup/engine');
      return new Engine({ config: loaded.config, registry, logger, state, signal: opts.signal, onEvent, notifier: getNotifier() });
    },
    updateEngine: (onStep) => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { UpdateEngine: Engine } = require('./update/engine') as typeof import('./update/engine');
      // its alerts go out even after SIGINT/SIGTERM (a rollback alert matters most then): the
      // channels' own time budgets bound them, not the command's signal
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { NotificationEngine: Notifier } = require('./notify/engine') as typeof import('./notify/engine');
      const notifier = new Notifier({ config: loaded.config.notifications, registry, state, logger, signal: new AbortController().signal });
      return new Engine({ config: loaded.config, registry, logger, state, signal: opts.signal, onStep, notifier });
    },
    close: () => state?.close(),
  };
}
