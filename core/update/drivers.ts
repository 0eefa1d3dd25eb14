/**
 * The two ways a service is snapshotted, updated and rolled back: a guest of a hypervisor
 * plugin (its snapshots, commands run inside the guest, its rollback), or a service plugin's
 * `updater` (docker-compose: image ids and a volume archive). Every call into a plugin goes
 * through the plugin-call boundary; what is specific to a hypervisor (how its guests are named,
 * how to roll back by hand) is asked of the plugin.
 */
import { AutopilotError, describeError } from '../../lib/errors';
import { splitCommandLine } from '../../lib/exec';
import type { StateManager } from '../../lib/state';
import { callPlugin } from '../plugins/call';
import type { HypervisorPlugin, OperationContext, ServiceConfig, ServicePlugin, ServiceUpdater, SnapshotInfo } from '../plugins/contract';
import type { GuestProvider } from '../plugins/guests';
import { SNAP_PREFIX, type Driver, type UpdateSettings } from './types';

const DEFAULT_GUEST_COMMANDS: string[][] = [
  ['apt-get', 'update'],
  [
    'env',
    'DEBIAN_FRONTEND=noninteractive',
    'apt-get',
    '-y',
    '-o',
    'Dpkg::Options::=--force-confdef',
    '-o',
    'Dpkg::Options::=--force-confold',
    'dist-upgrade',
  ],
];

const argvOf = (c: string | string[]): string[] => (Array.isArray(c) ? c : splitCommandLine(c));

/** An error that says the operation changed nothing (the runner skips the undo). */
function unchanged(message: string, hint: string | undefined, cause: unknown): AutopilotError {
  return Object.assign(new AutopilotError('JOB_FAILED', message, { hint, cause }), { changed: false });
}

export function guestDriver(svc: ServiceConfig, provider: GuestProvider): Driver {
  const ref = provider.ref(svc);
  const label = provider.label(ref);
  const call = <K extends keyof HypervisorPlugin>(
    k: K,
    op: OperationContext,
    fn: (f: NonNullable<HypervisorPlugin[K]>) => unknown,
  ): Promise<never> => {
    if (!provider.can(k))
      throw new AutopilotError('PLUGIN_FAILED', `the ${provider.name} plugin cannot ${String(k)}, which updates of guests need`);
    return provider.call(String(k), op.signal, (p) =>
      fn((p[k] as (...a: unknown[]) => unknown).bind(p) as NonNullable<HypervisorPlugin[K]>),
    ) as Promise<never>;
  };
  const commands = (s: UpdateSettings): string[][] => (s.command ? s.command.map(argvOf) : DEFAULT_GUEST_COMMANDS);

  /** Runs the update commands; a failure before the first command started changed nothing. */
  const update: Driver['update'] = async (op, s) => {
    let first = true;
    for (const argv of commands(s)) {
      op.logger.info(`${label}: ${argv.join(' ')}`);
      let r: Awaited<ReturnType<NonNullable<HypervisorPlugin['execInGuest']>>>;
      try {
        r = await call('execInGuest', op, (exec) => exec(ref, argv, { ...op, timeoutMs: s.timeoutMs }));
      } catch (e) {
        // nothing ran only when the plugin says so, or (older plugins) the runner itself could not be
        // started; a time-out or any other error may have ended a command that had begun: roll back
        const said = (e as { changed?: boolean }).changed === false;
        const notStarted = said || (e as { code?: string }).code === 'EXEC_FAILED';
        if (!first || op.signal.aborted || !notStarted)
          throw Object.assign(e instanceof Error ? e : new Error(String(e)), { changed: true });
        throw unchanged(
          said ? describeError(e) : `cannot run commands in ${label}: ${describeError(e)}`,
          (e as { hint?: string }).hint ?? 'nothing was changed; check how commands reach the guest',
          e,
        );
      }
      first = false;
      if (r.code !== 0) {
        const tail = `${r.stderr}\n${r.stdout}`.trim().split('\n').slice(-3).join(' | ');
        throw new AutopilotError('JOB_FAILED', `'${argv.join(' ')}' in ${label} exited ${r.code ?? r.signal}${tail ? `: ${tail}` : ''}`);
      }
    }
    const n = commands(s).length;
    return { changed: true, summary: `${n} command${n > 1 ? 's' : ''} ran in ${label}` };
  };

  return {
    what: `${label} via ${provider.name}`,
    async describe(_op, s) {
      return {
        snapshot: `a ${provider.name} snapshot of ${label}`,
        update: commands(s)
          .map((c) => `run in ${label}: ${c.join(' ')}`)
          .join('; then '),
        rollback: `roll ${label} back to that snapshot (and start it again if it ran)`,
      };
    },
    precheck: (op, s) =>
      provider.can('precheckGuest')
        ? call('precheckGuest', op, (f) => f(ref, { ...op, minFreeBytes: s.minFreeBytes }))
        : Promise.resolve([]),
    snapshot: (name, op) => call('createSnapshot', op, (f) => f(ref, name, 'homelab-autopilot: before an update', op)),
    update,
    rollback: (snap, op) => call('rollbackSnapshot', op, (f) => f(ref, snap, op)),
    async snapshots(op) {
      const all: SnapshotInfo[] = await call('listSnapshots', op, (f) => f(ref, op));
      return all.filter((x) => x.id.startsWith(SNAP_PREFIX));
    },
    deleteSnapshot: (snap, op) => call('deleteSnapshot', op, (f) => f(ref, snap, op)),
    running: async (op) => (await provider.call('guestStatus', op.signal, (p) => p.guestStatus(ref, op))).state === 'running',
    manual: (snap) => provider.manualRollback(ref, snap),
  };
}

export function serviceDriver(svc: ServiceConfig, plugin: ServicePlugin, state: StateManager | null): Driver {
  const u = plugin.updater as ServiceUpdater;
  const call = <T>(operation: string, op: OperationContext, fn: () => T | Promise<T>): Promise<T> =>
    callPlugin({ plugin: svc.type, operation: `updater.${operation}`, signal: op.signal }, fn);
  const kept = (): SnapshotInfo[] => state?.updateSnapshots.list<SnapshotInfo>(svc.name) ?? [];
  return {
    what: `${svc.type} service ${svc.name}`,
    async describe(op) {
      return u.describeUpdate
        ? call('describeUpdate', op, () => (u.describeUpdate as NonNullable<ServiceUpdater['describeUpdate']>)(svc, op))
        : {
            snapshot: `the ${svc.type} plugin's snapshot`,
            update: `the ${svc.type} plugin's update`,
            rollback: `the ${svc.type} plugin's rollback`,
          };
    },
    precheck: (op, s) =>
      u.precheck
        ? call('precheck', op, () => (u.precheck as NonNullable<ServiceUpdater['precheck']>)(svc, { ...op, minFreeBytes: s.minFreeBytes }))
        : Promise.resolve([]),
    async snapshot(name, op) {
      const snap = await call('snapshot', op, () => u.snapshot(svc, name, op));
      // remembered in state, so that older ones can be removed after later good updates
      if (state && !state.readonly) state.updateSnapshots.add(svc.name, snap);
      return snap;
    },
    update: (op) => call('update', op, () => u.update(svc, op)),
    rollback: (snap, op) => call('rollback', op, () => u.rollback(svc, snap, op)),
    snapshots: async () => kept().filter((s) => s.id.startsWith(SNAP_PREFIX)),
    async deleteSnapshot(snap, op) {
      if (u.deleteSnapshot)
        await call('deleteSnapshot', op, () => (u.deleteSnapshot as NonNullable<ServiceUpdater['deleteSnapshot']>)(svc, snap, op));
      if (state && !state.readonly) state.updateSnapshots.remove(svc.name, snap.id);
    },
    running: u.isRunning
      ? (op) => call('isRunning', op, () => (u.isRunning as NonNullable<ServiceUpdater['isRunning']>)(svc, op))
      : undefined,
    prepare: u.prepare ? (op) => call('prepare', op, () => (u.prepare as NonNullable<ServiceUpdater['prepare']>)(svc, op)) : undefined,
    starts: u.starts ? (op) => call('starts', op, () => (u.starts as NonNullable<ServiceUpdater['starts']>)(svc, op)) : undefined,
    manual: (snap) =>
      `see docs/updates.md: restore ${svc.name} from snapshot ${snap.id}${snap.data?.archive ? ` (its data: ${JSON.stringify(snap.data.archive)})` : ''}`,
  };
}
