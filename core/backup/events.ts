/** The alert a service's backup raises, from its result. */
import { formatBytes } from '../../lib/format';
import type { NotifyEvent } from '../notify/engine';
import type { ServiceBackupResult } from './types';

export function backupEvent(r: ServiceBackupResult): NotifyEvent {
  const size = r.archive ? ` (${formatBytes(r.archive.size)}, ${r.archive.verified ? 'verified' : 'not verified'})` : '';
  if (r.status === 'success') {
    // what went wrong without failing the backup (a config that does not validate, a path skipped) is said too
    const warned = r.warnings.length ? `\nwarnings:\n${r.warnings.map((w) => `- ${w}`).join('\n')}` : '';
    return {
      event: 'backup_success',
      severity: r.warned ? 'warning' : 'success',
      subject: r.service,
      title: r.warned ? `Backup of ${r.service} succeeded with warnings` : `Backup of ${r.service} succeeded`,
      text: `${r.archive?.path ?? ''}${size}${warned}`,
      details: { durationMs: r.durationMs, copies: r.copies.length, warnings: r.warnings.length },
    };
  }
  return {
    event: 'backup_failed',
    severity: 'critical',
    subject: r.service,
    title: `Backup of ${r.service} FAILED`,
    text: `${r.error ?? 'unknown error'}${r.hint ? `\nhint: ${r.hint}` : ''}`,
    details: { durationMs: r.durationMs },
  };
}
