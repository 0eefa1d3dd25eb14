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
import type { MonitorEngine } from './monitor/engine';
import type { Clock } from '../lib/async';
import type { UpdateEngine, UpdateEngineDeps } from './update/engine';
import { findConfigFile, readRawConfig, validateConfig, type FoundConfig, type LoadedConfig } from './config/load';
import { configPlugins } from './config/plugins';
import { formatLocation } from './config/source';
import type { GlobalConfig } from './config/types';
import { createPlugins, discoverPlugins, PluginRegistry } from './plugins/host';
import { CODE_ROOT } from './paths';
import { unfinishedUpdates } from './update/unfinished';

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
  /** false: skip the quick check of the whole state file (commands run very often: monitor, status) */
  fullStateCheck?: boolean;
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
  unresolvedServices: { service: string; reason: string; location: string; /** the plugin that failed, when one did */ failed?: string }[];
  backupEngine(onEvent?: (e: BackupEvent) => void): BackupEngine;
  updateEngine(onStep?: UpdateEngineDeps['onStep']): UpdateEngine;
  /** the monitor engine over the config's checks and resources (the clock is for tests and the bench) */
  monitorEngine(opts?: { clock?: Clock; defaultInterval?: number }): MonitorEngine;
  /** the notification engine (one per app) */
  notifier(): NotificationEngine;
  /** channels whose plugin is missing or failed (empty when needs.plugins is false) */
  unresolvedChannels: { channel: string; reason: string; location: string; failed?: string }[];
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

function openState(mode: StateMode, dir: string, fullCheck: boolean): StateManager | null {
  if (mode === 'none') return null;
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- better-sqlite3 is loaded only by commands that use state
  const { StateManager: State } = require('../lib/state') as typeof import('../lib/state');
  return mode === 'rw' ? State.open(dir, { fullCheck }) : State.openReadOnly(dir, { fullCheck });
}

/** Services and channels whose plugin is missing or failed, each with its config line and the reason. */
function unresolved(loaded: LoadedConfig, registry: PluginRegistry): Pick<App, 'unresolvedServices' | 'unresolvedChannels'> {
  const why = (kind: 'service' | 'notification', type: string): { reason: string; failed?: string } => {
    const failure = registry.failureOf(kind, type);
    if (failure)
      return { reason: `${PluginRegistry.failedLabel(failure, kind, type)} failed to load: ${failure.reason}`, failed: failure.name };
    const where = kind === 'service' ? `; plugins.d: ${registry.pluginsDir}` : '';
    return {
      reason: `no ${kind} plugin named '${type}' is installed (installed: ${registry.installed(kind).join(', ') || 'none'}${where})`,
    };
  };
  const at = (p: (string | number)[]): string => formatLocation(loaded.locator(p));
  return {
    unresolvedServices: loaded.config.services
      .map((svc, i) => ({ svc, i }))
      .filter(({ svc }) => !registry.handlesServiceType(svc.type))
      .map(({ svc, i }) => ({ service: svc.name, location: at(['services', i, 'type']), ...why('service', svc.type) })),
    unresolvedChannels: loaded.config.notifications.channels
      .map((c, i) => ({ c, i }))
      .filter(({ c }) => !registry.find('notification', c.type))
      .map(({ c, i }) => ({
        channel: c.name,
        location: at(['notifications', 'channels', i, 'type']),
        ...why('notification', c.type),
      })),
  };
}

/** The engines, each loaded when first asked for (config validate and the listings never need them). */
function engines(
  loaded: LoadedConfig,
  registry: PluginRegistry,
  state: StateManager | null,
  logger: Logger,
  signal: AbortSignal,
  needs: Required<AppNeeds>,
): Pick<App, 'notifier' | 'backupEngine' | 'updateEngine' | 'monitorEngine'> {
  // an engine over an empty registry would fail every service as "plugin not installed"
  const needPlugins = (what: string): void => {
    if (!needs.plugins) throw new AutopilotError('INTERNAL', `${what} needs plugins, but the app was opened with needs.plugins false`);
  };
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use
  const notifyModule = (): typeof import('./notify/engine') => require('./notify/engine') as typeof import('./notify/engine');
  const makeNotifier = (s: AbortSignal): NotificationEngine =>
    new (notifyModule().NotificationEngine)({ config: loaded.config.notifications, registry, state, logger, signal: s });
  let notifier: NotificationEngine | null = null;
  const getNotifier = (): NotificationEngine => {
    needPlugins('the notification engine');
    return (notifier ??= makeNotifier(signal));
  };
  return {
    notifier: getNotifier,
    backupEngine: (onEvent) => {
      needPlugins('the backup engine');
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded when a backup runs
      const { BackupEngine: Engine } = require('./backup/engine') as typeof import('./backup/engine');
      return new Engine({ config: loaded.config, registry, logger, state, signal, onEvent, notifier: getNotifier() });
    },
    updateEngine: (onStep) => {
      needPlugins('the update engine');
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded when an update runs
      const { UpdateEngine: Engine } = require('./update/engine') as typeof import('./update/engine');
      // its alerts go out even after SIGINT/SIGTERM (a rollback alert matters most then): the
      // channels' own time budgets bound them, not the command's signal
      const notifierOfUpdates = makeNotifier(new AbortController().signal);
      return new Engine({ config: loaded.config, registry, logger, state, signal, onStep, notifier: notifierOfUpdates });
    },
    monitorEngine: (opts = {}) => {
      needPlugins('the monitor engine');
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded when the monitor runs
      const { MonitorEngine: Engine } = require('./monitor/engine') as typeof import('./monitor/engine');
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded when the monitor runs
      const { resourceProbes } = require('./monitor/resources') as typeof import('./monitor/resources');
      // the daemon's schedules.monitor may set the default interval of the checks
      const config =
        opts.defaultInterval === undefined
          ? loaded.config
          : { ...loaded.config, monitoring: { ...loaded.config.monitoring, interval: opts.defaultInterval } };
      const resources = (sig: AbortSignal): Promise<import('./monitor/resources').ResourceProbe[]> =>
        resourceProbes(config, registry, logger, sig);
      // as for updates: alerts decided at a SIGTERM still go out (their channels' own budgets bound them)
      const notifier = makeNotifier(new AbortController().signal);
      return new Engine({ config, registry, logger, state, notifier, clock: opts.clock, resources });
    },
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
  const state = openState(opts.state, loaded.config.global.state_dir, opts.fullStateCheck ?? true);
  // an update whose process died left its service half done: every command says so
  for (const u of unfinishedUpdates(state)) logger.warn(u.summary);

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

  return {
    needs,
    found,
    loaded,
    registry,
    logger,
    state,
    warnings,
    ...(needs.plugins ? unresolved(loaded, registry) : { unresolvedServices: [], unresolvedChannels: [] }),
    ...engines(loaded, registry, state, logger, opts.signal, needs),
    close: async () => {
      try {
        await registry.dispose();
      } finally {
        state?.close();
      }
    },
  };
}
