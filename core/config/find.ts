/**
 * Finding the config file: --config, $HOMELAB_AUTOPILOT_CONFIG, the system-wide file, then
 * cosmiconfig's search from the working directory (loaded only then: most runs name their
 * config). Only says where the file is; read.ts parses it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AutopilotError } from '../../lib/errors';

export const MODULE_NAME = 'homelab-autopilot';
export const ENV_CONFIG = 'HOMELAB_AUTOPILOT_CONFIG';
export const SYSTEM_CONFIG = '/etc/homelab-autopilot/homelab-autopilot.yaml';

export const SEARCH_PLACES = [
  'package.json',
  `.${MODULE_NAME}rc`,
  `.${MODULE_NAME}rc.json`,
  `.${MODULE_NAME}rc.yaml`,
  `.${MODULE_NAME}rc.yml`,
  `.config/${MODULE_NAME}rc`,
  `.config/${MODULE_NAME}rc.json`,
  `.config/${MODULE_NAME}rc.yaml`,
  `.config/${MODULE_NAME}rc.yml`,
  `${MODULE_NAME}.yaml`,
  `${MODULE_NAME}.yml`,
  `${MODULE_NAME}.json`,
];

export interface FindOptions {
  explicit?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** the system-wide file (tests point it elsewhere) */
  systemFile?: string;
}

export interface FoundConfig {
  file: string;
  /** how it was found: flag, env, system, search */
  via: 'flag' | 'env' | 'system' | 'search';
  /** set when the config lives inside package.json */
  packageProp?: boolean;
}

/** --config, then $HOMELAB_AUTOPILOT_CONFIG, then /etc/homelab-autopilot/homelab-autopilot.yaml, then cosmiconfig's search from the working directory. */
export async function findConfigFile(opts: FindOptions = {}): Promise<FoundConfig> {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const mustExist = (file: string, via: FoundConfig['via'], what: string): FoundConfig => {
    const abs = path.resolve(cwd, file);
    if (!fs.existsSync(abs)) {
      throw new AutopilotError('CONFIG_NOT_FOUND', `config file ${abs} (from ${what}) does not exist`, {
        hint: 'check the path; examples/quickstart.yaml shows a complete config',
      });
    }
    return { file: abs, via };
  };
  if (opts.explicit) return mustExist(opts.explicit, 'flag', '--config');
  if (env[ENV_CONFIG]) return mustExist(env[ENV_CONFIG], 'env', `$${ENV_CONFIG}`);
  const system = opts.systemFile ?? SYSTEM_CONFIG;
  if (fs.existsSync(system)) return { file: system, via: 'system' };
  // cosmiconfig is loaded only here: most runs name their config and never pay for it
  const { cosmiconfig } = await import('cosmiconfig');
  const noParse = (filepath: string, content: string): unknown => {
    if (path.basename(filepath) === 'package.json') {
      const pkg = JSON.parse(content) as Record<string, unknown>;
      return pkg;
    }
    return content.trim() === '' ? undefined : { found: true };
  };
  const explorer = cosmiconfig(MODULE_NAME, {
    searchPlaces: SEARCH_PLACES,
    loaders: { '.json': noParse, '.yaml': noParse, '.yml': noParse, noExt: noParse },
    cache: false,
  });
  const result = await explorer.search(cwd);
  if (!result || result.isEmpty) {
    throw new AutopilotError('CONFIG_NOT_FOUND', 'no configuration found', {
      hint: `give --config PATH, set $${ENV_CONFIG}, create ${system}, or put ${MODULE_NAME}.yaml in the working directory (see examples/quickstart.yaml)`,
    });
  }
  return { file: result.filepath, via: 'search', packageProp: path.basename(result.filepath) === 'package.json' };
}
