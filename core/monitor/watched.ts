/** The folders whose free space is watched (the monitor's disk checks and the metrics): backup.root, enabled destinations, mounts; each once. */
import * as path from 'node:path';
import type { AutopilotConfig } from '../config/types';

export function watchedPaths(config: Pick<AutopilotConfig, 'backup' | 'monitoring'>): string[] {
  const all = [
    config.backup.root,
    ...config.backup.destinations.filter((d) => d.enabled !== false).map((d) => d.path),
    ...(config.monitoring?.resources?.mounts ?? []),
  ];
  return [...new Set(all.filter(Boolean).map((p) => path.resolve(p)))];
}
