/**
 * The docker-compose service plugin as created for a run: backups of a project's compose
 * files, .env, and every bind mount and named volume of its containers; safe updates through
 * its updater (./updater.ts).
 */
import * as path from 'node:path';
import type { BackupSources, PluginContext, ServiceConfig, ServicePlugin } from '../../../core/plugins/contract';
import { Compose, composeFiles, type ComposeConfig, type ComposeOptions } from './compose';
import { ComposeUpdater } from './updater';

export class ComposeService implements ServicePlugin {
  readonly updater: ComposeUpdater;
  private readonly compose: Compose;

  constructor(ctx: PluginContext) {
    this.compose = new Compose(ctx, ctx.options as ComposeOptions);
    this.updater = new ComposeUpdater(ctx, this.compose);
  }

  async backupSources(service: ServiceConfig): Promise<BackupSources> {
    const svc = service as ComposeConfig;
    const paths = composeFiles(svc).map((p) => ({ path: p, required: true }));
    paths.push({ path: path.resolve(svc.project_dir, svc.env_file ?? '.env'), required: false });
    for (const m of await this.compose.mounts(svc)) paths.push({ path: m, required: false });
    return { paths };
  }
}
