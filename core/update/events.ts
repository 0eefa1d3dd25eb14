/** The alert an update raises, from its result. */
import type { NotifyEvent } from '../notify/engine';
import type { ServiceUpdateResult } from './types';

export function updateEvent(r: ServiceUpdateResult): NotifyEvent | null {
  const err = r.error ? `\n${r.error}` : '';
  const rolledBack = r.steps.some((x) => x.step === 'revalidate' && x.status === 'success');
  switch (r.status === 'interrupted' && rolledBack ? 'rolled_back' : r.status) {
    case 'success':
      return {
        event: 'update_success',
        severity: 'success',
        subject: r.service,
        title: `Update of ${r.service} succeeded`,
        text: r.steps.find((s) => s.step === 'update')?.detail ?? '',
        details: { durationMs: r.durationMs },
      };
    case 'rolled_back':
      return {
        event: 'rollback_executed',
        severity: 'warning',
        subject: r.service,
        title: `Update of ${r.service} failed and was ROLLED BACK`,
        text: `${r.status === 'interrupted' ? 'The update was interrupted. ' : ''}The service was rolled back to snapshot ${r.snapshot?.id ?? '?'} and passed its health checks again.${err}`,
        details: { snapshot: r.snapshot?.id, durationMs: r.durationMs },
      };
    case 'rollback_failed':
      return {
        event: 'update_failed',
        severity: 'critical',
        // its own incident: an earlier update that was simply not done never holds it back
        cause: 'rollback_failed',
        subject: r.service,
        title: `Update of ${r.service} failed and the ROLLBACK FAILED too: act now`,
        text: `${r.error ?? ''}\nWhat to do by hand: ${r.manual ?? 'restore the service from its last backup'}`,
        details: { snapshot: r.snapshot?.id },
      };
    case 'failed':
    case 'interrupted':
      // critical, as docs/notifications.md says of update_failed: the service was not updated and may need a look
      return {
        event: 'update_failed',
        severity: 'critical',
        cause: 'not_done',
        subject: r.service,
        title: `Update of ${r.service} was not done`,
        text: `${r.error ?? ''}${r.hint ? `\nhint: ${r.hint}` : ''}`,
        details: { snapshot: r.snapshot?.id },
      };
    default:
      return null;
  }
}
