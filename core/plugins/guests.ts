/**
 * What the engines know about a hypervisor's guests, asked of the plugin that provides them:
 * how a service entry names its guest (the plugin's idKey), how people call it ("CT 100"),
 * where its native backups go, how to roll it back by hand, and under which destination its
 * backups are recorded. Core never branches on a plugin's name: a second hypervisor plugin
 * gets the same treatment through the same questions.
 */
import type { GuestBackupTarget, GuestRef, HypervisorPlugin, HypervisorPluginDefinition, ServiceConfig, SnapshotInfo } from './contract';
import { callPlugin } from './call';

/** A backup target as the engine uses it. */
export type GuestTarget = GuestBackupTarget;

export class GuestProvider {
  constructor(
    readonly def: HypervisorPluginDefinition,
    readonly instance: HypervisorPlugin,
    /** what the plugin declared it can do (or what its instance has) */
    readonly capabilities: readonly string[],
  ) {}

  get name(): string {
    return this.def.name;
  }

  /** Whether the plugin can do something: one of its capabilities (an optional method). */
  can(method: keyof HypervisorPlugin): boolean {
    return this.capabilities.includes(method) && typeof this.instance[method] === 'function';
  }

  /** The guest a service entry names: its id under the plugin's idKey (default 'id'). */
  ref(svc: ServiceConfig): GuestRef {
    const key = this.def.idKey ?? 'id';
    const id = svc[key];
    return { service: svc.name, id: typeof id === 'string' || typeof id === 'number' ? String(id) : '', type: svc.type, config: svc };
  }

  /** How people call the guest: the plugin's words, else '<type> <id>'. */
  label(ref: GuestRef): string {
    return this.instance.describeGuest?.(ref) ?? `${ref.type ?? 'guest'} ${ref.id}`;
  }

  /** What a person runs to roll the guest back by hand. */
  manualRollback(ref: GuestRef, snapshot: SnapshotInfo): string {
    return (
      this.instance.manualRollback?.(ref, snapshot) ?? `roll ${this.label(ref)} back to snapshot ${snapshot.id} with ${this.name}'s tools`
    );
  }

  /** The destination its backups on a storage are recorded under: `<prefix>:<storage>`. */
  destination(storage: string): string {
    return `${this.def.destinationPrefix ?? this.def.name}:${storage}`;
  }

  /** Where a guest's backup goes: the plugin decides from the `backup:` section; else backup.guests and the service's own keys. */
  target(ref: GuestRef, backup: Record<string, unknown>): GuestTarget {
    if (this.instance.resolveBackupTarget) return this.instance.resolveBackupTarget(ref, backup);
    const g = (backup.guests ?? {}) as Record<string, unknown>;
    const svc = ref.config ?? ({} as Partial<ServiceConfig>);
    const pick = <T>(key: string, fallbackKey = key): T => (svc[key] ?? g[fallbackKey]) as T;
    return {
      storage: pick<string>('storage'),
      kind: 'storage',
      mode: pick<string>('mode'),
      compress: pick<string>('compress'),
      notesTemplate: pick<string | undefined>('notes_template'),
      protected: pick<boolean | undefined>('protected'),
      path: typeof svc.storage === 'string' ? undefined : (g.path as string | undefined),
      rule: typeof svc.storage === 'string' ? 'service' : 'default',
    };
  }

  /** Calls one of its operations through the plugin-call boundary. */
  call<T>(
    operation: string,
    signal: AbortSignal,
    fn: (p: HypervisorPlugin) => T | Promise<T>,
    logger?: { debug(m: string): void },
  ): Promise<T> {
    return callPlugin({ plugin: this.name, operation, signal, logger }, () => fn(this.instance));
  }
}
