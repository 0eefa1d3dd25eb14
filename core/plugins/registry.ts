/**
 * Creating plugins and the registry the engines reach them through: each plugin is created
 * with its context under a time limit, its instance checked against its kind and its declared
 * capabilities; one that fails is recorded with the reason and set aside. The registry names
 * what is missing and what is installed, gives guest providers for hypervisor types, and
 * disposes of every instance when the command or daemon ends.
 */
import { raceSignal } from '../../lib/async';
import { AutopilotError, describeError } from '../../lib/errors';
import type { Logger } from '../../lib/log';
import type { KeyValueStore } from '../../lib/state';
import { CAPABILITIES, type PluginRecord } from './check';
import { pluginContext } from './context';
import type {
  HypervisorPlugin,
  HypervisorPluginDefinition,
  NotificationPlugin,
  PluginDefinition,
  PluginKind,
  ServicePlugin,
} from './contract';
import type { Discovered } from './discover';
import { GuestProvider } from './guests';

type Instance = ServicePlugin | HypervisorPlugin | NotificationPlugin;

export interface LoadedPlugin {
  def: PluginDefinition;
  record: PluginRecord;
  instance: Instance;
}

export interface CreateOptions {
  /**
   * Each plugin's options, as the config stage made them (core/config/load.ts: validated
   * against the plugin's optionsSchema, defaults applied, paths and secrets resolved).
   */
  options: Record<string, Record<string, unknown>>;
  /** plugins whose options the config stage refused (bad options, a secret that failed): name -> reason; these are not created */
  optionFailures?: Record<string, string>;
  configDir: string;
  /** global.state_dir: plugins get <stateDir>/plugins/<name> */
  stateDir: string;
  logger: Logger;
  signal: AbortSignal;
  /** the plugin's store, opened when first used */
  store(plugin: string): KeyValueStore;
  /** ms create() may take */
  createTimeoutMs?: number;
}

export class PluginRegistry {
  private readonly providers = new Map<string, GuestProvider>();

  constructor(
    readonly loaded: LoadedPlugin[],
    readonly failures: PluginRecord[],
    readonly pluginsDir: string,
    /** `plugins:` entries naming no plugin */
    readonly warnings: string[] = [],
    private readonly logger?: Logger,
    /** guest types of hypervisor plugins that failed: type -> plugin name */
    private readonly failedGuestTypes: Record<string, string> = {},
  ) {}

  /**
   * Why no plugin handles what `name` names: the failure of the plugin of that name, or, for a
   * service type, of the hypervisor plugin whose guest type it is. undefined: none is installed.
   */
  failureOf(kind: PluginKind, name: string): PluginRecord | undefined {
    const own = this.failures.find((f) => f.name === name);
    if (own || kind !== 'service' || !Object.hasOwn(this.failedGuestTypes, name)) return own;
    return this.failures.find((f) => f.name === this.failedGuestTypes[name]);
  }

  /** The plugin that failed for `name`: "the service plugin 'x'", or "the hypervisor plugin 'x' (for type 'y')". */
  static failedLabel(failure: PluginRecord, kind: PluginKind, name: string): string {
    return failure.name === name
      ? `the ${kind} plugin '${name}'`
      : `the ${failure.kind ?? kind} plugin '${failure.name}' (for type '${name}')`;
  }

  /** Whether a loaded plugin can do something (one of its capabilities). */
  can(name: string, capability: string): boolean {
    return this.loaded.find((p) => p.def.name === name)?.record.capabilities.includes(capability) ?? false;
  }

  /**
   * Lets every plugin close its connections and timers (its dispose(), if it has one), each
   * within a few seconds; a failure is logged, never thrown: the command's result stands.
   */
  async dispose(limitMs = 5000): Promise<void> {
    await Promise.all(
      this.loaded.map(async (p) => {
        if (typeof p.instance.dispose !== 'function') return;
        const instance = p.instance;
        try {
          const done = Promise.resolve().then(() => instance.dispose?.());
          await raceSignal(done, AbortSignal.timeout(limitMs), () => new Error(`dispose() did not finish within ${limitMs / 1000}s`));
        } catch (e) {
          this.logger?.warn(`plugin ${p.def.name}: ${describeError(e)}`);
        }
      }),
    );
  }

  get records(): PluginRecord[] {
    return [...this.loaded.map((p) => p.record), ...this.failures];
  }

  installed(kind: PluginKind): string[] {
    return this.loaded.filter((p) => p.def.kind === kind).map((p) => p.def.name);
  }

  find<T extends Instance>(kind: PluginKind, name: string): T | undefined {
    return this.loaded.find((p) => p.def.kind === kind && p.def.name === name)?.instance as T | undefined;
  }

  /** The hypervisor plugin whose guestTypes include a service type (when no service plugin has that name). */
  guestProvider(type: string): GuestProvider | undefined {
    if (this.find('service', type)) return undefined;
    const p = this.loaded.find((l) => l.def.kind === 'hypervisor' && Object.hasOwn(l.def.guestTypes ?? {}, type));
    return p && this.providerOf(p);
  }

  /** Every loaded hypervisor plugin, as the provider engines ask (the monitor asks each for its nodes). */
  hypervisors(): GuestProvider[] {
    return this.loaded.filter((l) => l.def.kind === 'hypervisor').map((l) => this.providerOf(l));
  }

  private providerOf(p: LoadedPlugin): GuestProvider {
    let g = this.providers.get(p.def.name);
    if (!g)
      this.providers.set(
        p.def.name,
        (g = new GuestProvider(p.def as HypervisorPluginDefinition, p.instance as HypervisorPlugin, p.record.capabilities)),
      );
    return g;
  }

  /** Whether some plugin handles services of this type. */
  handlesServiceType(type: string): boolean {
    return Boolean(this.find('service', type) || this.guestProvider(type));
  }

  /** The plugin a service needs, or an error saying why it is not there and what is installed. */
  require<T extends Instance>(kind: PluginKind, name: string, neededBy: string): T {
    const found = this.find<T>(kind, name);
    if (found) return found;
    const failure = this.failureOf(kind, name);
    const installed = this.installed(kind);
    if (failure) {
      const fromConfig = /^(bad options|a secret of its options)/.test(failure.reason ?? '');
      throw new AutopilotError(
        'PLUGIN_FAILED',
        `${neededBy} needs ${PluginRegistry.failedLabel(failure, kind, name)}, which failed to load: ${failure.reason}`,
        {
          hint: `${fromConfig ? `fix plugins.${failure.name} in the config` : `fix ${failure.file}`}; 'homelab-autopilot plugins list' shows every plugin and why it failed`,
        },
      );
    }
    throw new AutopilotError('PLUGIN_MISSING', `${neededBy} needs the ${kind} plugin '${name}', which is not installed`, {
      hint: `installed ${kind} plugins: ${installed.join(', ') || 'none'}; put a plugin into ${this.pluginsDir} or fix the type`,
    });
  }
}

/** The optional methods an instance has: what it can do. */
function capabilitiesOf(kind: PluginKind, instance: Instance): string[] {
  const o = instance as unknown as Record<string, unknown>;
  return CAPABILITIES[kind].filter((m) =>
    m === 'updater' ? Boolean(o.updater) && typeof o.updater === 'object' : typeof o[m] === 'function',
  );
}

/** Why an instance does not fit its kind or its declared capabilities, or null. */
function instanceProblem(def: PluginDefinition, instance: Instance, declared: string[]): string | null {
  if (!instance || typeof instance !== 'object') return 'create() returned no plugin instance';
  const required = { service: 'backupSources', notification: 'send', hypervisor: 'guestStatus' }[def.kind];
  if (typeof (instance as unknown as Record<string, unknown>)[required] !== 'function')
    return `a ${def.kind} plugin instance needs a ${required}() method`;
  const has = capabilitiesOf(def.kind, instance);
  const missing = declared.filter((c) => !has.includes(c));
  return missing.length ? `it declares the capabilities ${missing.join(', ')}, but its instance has no ${missing.join(', ')}` : null;
}

/**
 * Creates each plugin with the options the config stage validated and resolved (options and
 * their secrets are the config's business: one pass for all secrets); failures are recorded,
 * never thrown.
 */
export async function createPlugins(found: Discovered, opts: CreateOptions): Promise<PluginRegistry> {
  const loaded: LoadedPlugin[] = [];
  const failures = [...found.failures];
  const failedGuestTypes: Record<string, string> = {};
  const failed = (d: (typeof found.definitions)[number], reason: string): void => {
    failures.push({ ...d.record, status: 'failed', reason });
    if (d.def.kind === 'hypervisor') for (const t of Object.keys(d.def.guestTypes ?? {})) failedGuestTypes[t] ??= d.def.name;
  };
  const limitMs = opts.createTimeoutMs ?? 10_000;
  for (const d of found.definitions) {
    const { def } = d;
    const refused = opts.optionFailures?.[def.name];
    if (refused !== undefined) {
      failed(d, refused);
      continue;
    }
    const ctx = pluginContext({ ...opts, name: def.name, options: structuredClone(opts.options[def.name] ?? {}) });
    try {
      const made = Promise.resolve().then(() => def.create(ctx) as Instance | Promise<Instance>);
      const instance = await raceSignal(
        made,
        AbortSignal.timeout(limitMs),
        () => new Error(`create() did not finish within ${limitMs / 1000}s`),
      );
      const problem = instanceProblem(def, instance, d.record.capabilities);
      if (problem) throw new Error(problem);
      const capabilities = d.record.capabilities.length ? d.record.capabilities : capabilitiesOf(def.kind, instance);
      loaded.push({ def, record: { ...d.record, capabilities }, instance });
    } catch (e) {
      failed(d, `create() failed: ${describeError(e)}`);
    }
  }
  return new PluginRegistry(loaded, failures, found.pluginsDir, [], opts.logger, failedGuestTypes);
}
