/**
 * What `config validate` warns about beyond the schema: a service's `paths` (or `backup_paths`)
 * entry that does not exist. Not an error: a disk may be mounted later; but a backup of that
 * service fails until it exists.
 */
import * as fs from 'node:fs';
import type { Locator } from './errors';
import { formatLocation } from './source';
import type { AutopilotConfig } from './types';

const PATH_LISTS = ['paths', 'backup_paths'];

export function missingPathWarnings(config: AutopilotConfig, locator: Locator): string[] {
  const out: string[] = [];
  config.services.forEach((svc, i) => {
    if (svc.enabled === false) return;
    for (const key of PATH_LISTS) {
      const list = (svc as unknown as Record<string, unknown>)[key];
      if (!Array.isArray(list)) continue;
      list.forEach((p: unknown, j) => {
        if (typeof p !== 'string') return;
        try {
          fs.statSync(p);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code !== 'ENOENT' && code !== 'ENOTDIR') return;
          out.push(
            `${formatLocation(locator(['services', i, key, j]))}: services[${i}].${key}[${j}]: ${p} does not exist (a backup of '${svc.name}' fails until it does)`,
          );
        }
      });
    }
  });
  return out;
}
