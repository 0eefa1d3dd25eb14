/**
 * Built-in service plugin `files`: archives any folders and files, with GNU tar excludes.
 * Written against the public contract only, as a plugins.d author would write it.
 */
import type { ServiceConfig, ServicePluginDefinition } from '../../../core/plugins/contract';

interface FilesService extends ServiceConfig {
  paths: string[];
  exclude?: string[];
}

const plugin: ServicePluginDefinition = {
  name: 'files',
  kind: 'service',
  version: '1.0.0',
  apiVersion: '^1.0.0',
  description: 'Archives the folders and files listed in `paths`, minus `exclude`',
  serviceSchema: {
    properties: {
      paths: {
        type: 'array',
        minItems: 1,
        items: { type: 'string', minLength: 1, 'x-path': true },
        description: 'folders and files to archive; relative paths are taken from the config file folder',
      },
      exclude: {
        type: 'array',
        default: [],
        items: { type: 'string', minLength: 1 },
        description: 'GNU tar --exclude patterns (for example *.tmp or cache)',
      },
    },
    required: ['paths'],
  },
  create() {
    return {
      backupSources(service) {
        const s = service as FilesService;
        return { paths: s.paths.map((p) => ({ path: p, required: true })), exclude: s.exclude ?? [] };
      },
    };
  },
};

export default plugin;
