import { configInvalid } from '../../../core/config/errors';
import { missingPathWarnings } from '../../../core/config/paths-exist';
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
  static override description =
    'Every problem is reported at once as file:line:col: path: message, sorted by file and line. A paths entry that does not exist is a warning. Exit code 0 when valid, 2 when not.';
  static override examples = [
    '<%= config.bin %> config validate',
    '<%= config.bin %> config validate --config ./homelab-autopilot.yaml --json',
  ];

  async run(): Promise<ValidateResult> {
    const app = await this.openApp('none');
    const { loaded } = app;
    // a plugin refused for its options is named by those options' lines (in this list); its users point there
    const why = (u: { reason: string; failed?: string }): string =>
      u.failed !== undefined && Object.hasOwn(loaded.pluginFailures, u.failed)
        ? `${u.reason.replace(/ failed to load: .*$/s, '')} was not loaded: see plugins.${u.failed} in this list`
        : u.reason;
    // the problems the run commands set aside (a plugin that cannot load fails alone), with their lines
    const problems = [
      ...loaded.pluginProblems,
      ...app.unresolvedServices.map((u) => `${u.location}: services.${u.service}.type: ${why(u)}`),
      ...app.unresolvedChannels.map((u) => `${u.location}: notifications.channels.${u.channel}.type: ${why(u)}`),
    ];
    if (problems.length)
      throw configInvalid(
        problems,
        [loaded.file, ...loaded.extraFiles],
        "'homelab-autopilot plugins list' shows every plugin and why one failed",
      );
    const missingPaths = missingPathWarnings(loaded.config, loaded.locator);
    for (const w of missingPaths) app.logger.warn(w);
    const result: ValidateResult = {
      valid: true,
      file: loaded.file,
      files: [loaded.file, ...loaded.extraFiles],
      services: loaded.config.services.length,
      warnings: [...app.warnings, ...missingPaths],
    };
    this.out(
      `${result.file}: valid (${result.services} service${result.services === 1 ? '' : 's'}${result.files.length > 1 ? `, ${result.files.length - 1} file${result.files.length > 2 ? 's' : ''} from services.d` : ''})`,
    );
    return result;
  }
}
