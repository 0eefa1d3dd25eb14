/**
 * Our own work on a service is not an outage: an update, a backup in stop mode, a restore
 * test or a failover opens a maintenance window tied to its run, so that the monitor shows the
 * service's checks as MAINTENANCE rather than DOWN (core/monitor/maintenance.ts reads it).
 */
import type { StateManager } from '../../lib/state';

/**
 * Our own work on a service: a window tied to a run, ended by the returned function (and by
 * the run's end or its process's death, should that function never be called). Never throws:
 * monitoring is no reason to fail the work.
 */
export function beginWork(
  state: StateManager | null,
  subject: string,
  reason: string,
  runId: number | null,
  maxSeconds: number,
): () => void {
  if (!state || state.readonly) return () => undefined;
  try {
    const now = new Date();
    const id = state.monitor.beginMaintenance({
      subject,
      startsAt: now,
      endsAt: new Date(now.getTime() + maxSeconds * 1000),
      reason,
      source: 'work',
      runId,
    });
    return () => {
      try {
        state.monitor.endMaintenance(id, new Date());
      } catch {
        // the window ends with its run anyway
      }
    };
  } catch {
    return () => undefined;
  }
}
