import type { PluginRecord } from '../../../core/plugins/host';
import { BaseCommand } from '../../base';
import { table } from '../../render';

export default class PluginsList extends BaseCommand<typeof PluginsList> {
  static override summary = 'List loaded and failed plugins, with their source and the reason for each failure.';
  static override examples = ['<%= config.bin %> plugins list', '<%= config.bin %> plugins list --json'];

  async run(): Promise<PluginRecord[]> {
    const app = await this.openApp('none');
    const records = app.registry.records;
    this.out(
      table(
        ['NAME', 'KIND', 'VERSION', 'SOURCE', 'STATUS', 'FILE / REASON'],
        records.map((r) => [
          r.name,
          r.kind ?? '-',
          r.version ?? '-',
          r.source,
          r.status,
          r.status === 'failed' ? `${r.file}: ${r.reason}` : r.file,
        ]),
      ),
    );
    const able = records.filter((r) => r.status === 'loaded' && r.capabilities.length);
    if (able.length) this.out(['', 'capabilities:', ...able.map((r) => `  ${r.name}: ${r.capabilities.join(', ')}`)].join('\n'));
    this.out(`\nplugins.d: ${app.registry.pluginsDir}`);
    return records;
  }
}
