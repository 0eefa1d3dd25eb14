/**
 * Built-in service plugin `docker-compose`: a Docker Compose project.
 *
 * - Backup: the compose files, .env, and every bind mount and named volume of its containers.
 * - Snapshot (before an update): the image of each container (id, reference, repo digests),
 *   and an archive of its bind mounts and named volumes, made while the project is stopped.
 * - Update: pull first (nothing new: "up to date", nothing stopped), then recreate
 *   (`docker compose up -d`, or `docker-compose` where that is what is installed).
 * - Rollback: the volumes restored from the archive, the previous images (kept by a tag of
 *   ours, or pulled again by digest) tagged back to the references the compose file names,
 *   the containers recreated.
 * The Engine API is reached through dockerode; compose itself through its command line
 * (./compose.ts). The plugin is ./service.ts, its updater ./updater.ts.
 */
import type { PluginContext, ServicePlugin, ServicePluginDefinition } from '../../../core/plugins/contract';
import { ComposeService } from './service';

const plugin: ServicePluginDefinition = {
  name: 'docker-compose',
  kind: 'service',
  version: '1.0.0',
  apiVersion: '^1.5.0',
  description: 'A Docker Compose project: backups of its files and volumes, safe updates (pull, recreate, roll back images and volumes)',
  serviceSchema: {
    properties: {
      project_dir: { type: 'string', minLength: 1, 'x-path': true, description: 'the folder of the compose file' },
      compose_files: {
        type: 'array',
        items: { type: 'string', minLength: 1 },
        minItems: 1,
        description: 'compose files, relative to project_dir (default: compose.yaml, docker-compose.yml, …)',
      },
      project_name: {
        type: 'string',
        pattern: '^[a-z0-9][a-z0-9_-]*$',
        description: "compose's project name (default: the folder's name)",
      },
      env_file: { type: 'string', minLength: 1, description: 'the .env file, relative to project_dir (default .env)' },
    },
    required: ['project_dir'],
  },
  optionsSchema: {
    additionalProperties: false,
    properties: {
      docker_host: { type: 'string', minLength: 1, description: 'the engine (default: DOCKER_HOST, else the local socket)' },
      compose: { enum: ['auto', 'docker compose', 'docker-compose'], default: 'auto', description: 'which compose to run' },
      docker: { type: 'string', minLength: 1, default: 'docker' },
      docker_compose: { type: 'string', minLength: 1, default: 'docker-compose' },
      timeout: { type: 'integer', minimum: 1, default: 1800, description: 'seconds a compose command (pull, up) may take' },
    },
  },
  create(ctx: PluginContext): ServicePlugin {
    return new ComposeService(ctx);
  },
};

export default plugin;
