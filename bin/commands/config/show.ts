import * as Flags from '@oclif/core/flags';
import type { AutopilotConfig } from '../../../core/config/types';
import { maskDeep } from '../../../lib/mask';
import { BaseCommand } from '../../base';

export default class ConfigShow extends BaseCommand<typeof ConfigShow> {
  static override summary = 'Print the resolved configuration (defaults applied, services.d merged, paths absolute), secrets masked.';
  static override examples = ['<%= config.bin %> config show', '<%= config.bin %> config show --json'];
  static override flags = {
    format: Flags.option({ options: ['yaml', 'json'] as const, default: 'yaml', summary: 'Output format (without --json).' })(),
  };

  async run(): Promise<AutopilotConfig> {
    const { flags } = await this.parse(ConfigShow);
    const app = await this.openApp('none');
    // sections in the documented order, whatever order the file had
    const order = ['global', 'backup', 'notifications', 'monitoring', 'updates', 'schedules', 'daemon', 'metrics', 'plugins', 'services'];
    const raw = maskDeep(app.loaded.masked) as unknown as Record<string, unknown>;
    const keys = [...order.filter((k) => k in raw), ...Object.keys(raw).filter((k) => !order.includes(k))];
    const masked = Object.fromEntries(keys.map((k) => [k, raw[k]])) as unknown as AutopilotConfig;
    if (flags.format === 'json') this.out(JSON.stringify(masked, null, 2));
    else {
      const { stringify } = await import('yaml');
      this.out(`# ${app.loaded.file}\n${stringify(masked)}`);
    }
    return masked;
  }
}
