/**
 * Where a guest's vzdump backup goes, from the config's backup: section (the architecture's
 * rule): the service's own `storage`; else the PBS storage when proxmox_backup_server is
 * enabled; else direct_storage when enabled; else backup.guests.storage.
 */
import type { GuestBackupTarget, GuestRef } from '../../../core/plugins/contract';

interface StorageKey {
  enabled?: boolean;
  storage: string;
  path?: string;
}

export const PBS_LABEL = 'Proxmox Backup Server';

export function resolveTarget(guest: GuestRef, backup: Record<string, unknown>): GuestBackupTarget {
  const g = (backup.guests ?? {}) as Record<string, unknown> & { storage: string; path?: string };
  const pbsKey = backup.proxmox_backup_server as StorageKey | undefined;
  const directKey = backup.direct_storage as StorageKey | undefined;
  const pbs = pbsKey?.enabled !== false ? pbsKey : undefined;
  const direct = directKey?.enabled !== false ? directKey : undefined;
  const svc = (guest.config ?? {}) as Record<string, unknown>;
  const common = {
    mode: (svc.mode ?? g.mode) as string,
    compress: (svc.compress ?? g.compress) as string,
    notesTemplate: (svc.notes_template ?? g.notes_template) as string | undefined,
    protected: (svc.protected ?? g.protected) as boolean | undefined,
  };
  const onPbs = { kind: 'pbs', managed: true, label: PBS_LABEL };
  if (typeof svc.storage === 'string') {
    if (svc.storage === pbsKey?.storage) return { ...common, ...onPbs, storage: svc.storage, rule: 'service' };
    const path = svc.storage === directKey?.storage ? directKey?.path : svc.storage === g.storage ? g.path : undefined;
    return { ...common, storage: svc.storage, kind: 'storage', path, rule: 'service' };
  }
  if (pbs) return { ...common, ...onPbs, storage: pbs.storage, rule: 'proxmox_backup_server' };
  if (direct) return { ...common, storage: direct.storage, kind: 'storage', path: direct.path, rule: 'direct_storage' };
  return { ...common, storage: g.storage, kind: 'storage', path: g.path, rule: 'default' };
}
