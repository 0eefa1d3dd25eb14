import { AutopilotError } from '../../lib/errors';
import type { ServiceConfig } from '../plugins/contract';

/** The services named on a command line, in config order; a name the config does not have is a usage error. */
export function namedServices(services: ServiceConfig[], names: string[]): ServiceConfig[] {
  const unknown = names.filter((n) => !services.some((s) => s.name === n));
  if (unknown.length) {
    throw new AutopilotError('USAGE', `no service named ${unknown.map((u) => `'${u}'`).join(', ')} in the configuration`, {
      hint: `configured services: ${services.map((s) => s.name).join(', ') || 'none'}`,
    });
  }
  return services.filter((s) => names.includes(s.name));
}
