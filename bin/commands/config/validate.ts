import { AutopilotError } from '../../../lib/errors';
import { BaseCommand } from '../../base';

export interface ValidateResult {
  valid: boolean;
  file: string;
  files: string[];
  services: number;
  warnings: string[];
}

export default class ConfigValidate extends BaseCommand<typeof ConfigValidate> {
  static override summary = 'Check the configuration: syntax, schema, secrets, and that every service has its plugin.';
  static override description = 'Every problem is reported at once as file:line:col: path: message. Exit code 0 when valid, 2 when not.';
  static override examples = [
    '<%= config.bin %> config validate',
    '<%= config.bin %> config validate --config ./homelab-autopilot.yaml --json',
  ];

  async run(): Promise<ValidateResult> {
    const app = await this.openApp('none');
    const missing = [
      ...app.unresolvedServices.map((u) => `${u.location}: services.${u.service}.type: ${u.reason}`),
      ...app.unresolvedChannels.map((u) => `${u.location}: notifications.channels.${u.channel}.type: ${u.reason}`),
    ];
    if (missing.length) {
      throw new AutopilotError(
        'PLUGIN_MISSING',
        `${missing.length} service${missing.length > 1 ? 's or channels have' : ' or channel has'} no usable plugin`,
        {
          details: missing,
          hint: "'homelab-autopilot plugins list' shows every plugin and why one failed",
        },
      );
    }
    const result: ValidateResult = {
      valid: true,
      file: app.loaded.file,
      files: [app.loaded.file, ...app.loaded.extraFiles],
      services: app.loaded.config.services.length,
      warnings: app.warnings,
    };
    this.out(
      `${result.file}: valid (${result.services} service${result.services === 1 ? '' : 's'}${result.files.length > 1 ? `, ${result.files.length - 1} file${result.files.length > 2 ? 's' : ''} from services.d` : ''})`,
    );
    return result;
  }
}
