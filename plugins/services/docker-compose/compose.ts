/**
 * What the docker-compose plugin knows of a project: its compose files and name, the compose
 * command line (run without a shell), and, through the Engine API (dockerode, loaded on first
 * use), its containers, their images and the host folders they mount.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type Docker from 'dockerode';
import type { ContainerInspectInfo } from 'dockerode';
import type { ExecResult, OperationContext, PluginContext, ServiceConfig } from '../../../core/plugins/contract';

/** A service entry of `type: docker-compose` (validated against the plugin's serviceSchema). */
export interface ComposeConfig extends ServiceConfig {
  project_dir: string;
  compose_files?: string[];
  project_name?: string;
  env_file?: string;
}

/** The plugin's options (validated against its optionsSchema, defaults applied). */
export type ComposeOptions = {
  docker_host?: string;
  compose: string;
  docker: string;
  docker_compose: string;
  timeout: number;
};

export interface ImageRecord {
  /** the compose service */
  service: string;
  container: string;
  /** the image reference the container was created from (as in the compose file) */
  ref: string;
  /** sha256:… */
  imageId: string;
  repoDigests: string[];
  /** the tag that keeps the image until its snapshot is removed (homelab-autopilot/rollback:…); absent in older snapshots */
  keepTag?: string;
}

const DEFAULT_FILES = ['compose.yaml', 'compose.yml', 'docker-compose.yaml', 'docker-compose.yml'];
/** Mounts never archived: the engine's socket and the system's own files. */
const SKIP_MOUNT =
  /^\/(proc|sys|dev)(\/|$)|^\/var\/run\/docker\.sock$|^\/run\/docker\.sock$|^\/etc\/(localtime|timezone|hosts|resolv\.conf)$/;
/** Host folders a rollback must never empty, whatever a compose file mounts. */
export const SYSTEM_ROOTS = new Set([
  '/',
  '/bin',
  '/boot',
  '/etc',
  '/home',
  '/lib',
  '/lib32',
  '/lib64',
  '/opt',
  '/root',
  '/run',
  '/sbin',
  '/srv',
  '/tmp',
  '/usr',
  '/var',
  '/var/lib',
  '/var/lib/docker',
  '/var/log',
  '/mnt',
  '/media',
]);

/** The compose files of a project: the configured ones, else the first of the default names found. */
export function composeFiles(svc: ComposeConfig): string[] {
  if (svc.compose_files?.length) return svc.compose_files.map((f) => path.resolve(svc.project_dir, f));
  const found = DEFAULT_FILES.map((f) => path.join(svc.project_dir, f)).find((f) => fs.existsSync(f));
  if (!found) throw new Error(`no compose file in ${svc.project_dir} (looked for ${DEFAULT_FILES.join(', ')})`);
  return [found];
}

/** The project name: configured, else compose's own default (the folder's name, lower case, safe characters). */
export function projectName(svc: ComposeConfig): string {
  return (
    svc.project_name ??
    path
      .basename(svc.project_dir)
      .toLowerCase()
      .replace(/[^a-z0-9_-]/g, '')
  );
}

/** The compose command line and the Engine API, for one plugin instance (both looked up once). */
export class Compose {
  private docker: Docker | null = null;
  private composeCmd: [string, string[]] | null = null;

  constructor(
    private readonly ctx: PluginContext,
    readonly options: ComposeOptions,
  ) {}

  /** The Engine API client: `docker_host`, else DOCKER_HOST, else the local socket. */
  async engine(): Promise<Docker> {
    if (this.docker) return this.docker;
    const { default: Dockerode } = (await import('dockerode')) as unknown as { default: new (opts?: object) => Docker };
    const host = this.options.docker_host ?? process.env.DOCKER_HOST;
    const url = host && !host.startsWith('unix://') ? new URL(host.replace(/^tcp:/, 'http:')) : null;
    this.docker = new Dockerode(
      host?.startsWith('unix://') ? { socketPath: host.slice(7) } : url ? { host: url.hostname, port: Number(url.port || 2375) } : {},
    );
    return this.docker;
  }

  /** `docker compose` (v2) when it answers, else `docker-compose` (v1) */
  async command(op: OperationContext): Promise<[string, string[]]> {
    if (this.composeCmd) return this.composeCmd;
    const o = this.options;
    if (o.compose === 'docker compose') this.composeCmd = [o.docker, ['compose']];
    else if (o.compose === 'docker-compose') this.composeCmd = [o.docker_compose, []];
    else {
      const v2 = await this.ctx.exec(o.docker, ['compose', 'version'], { signal: op.signal, timeoutMs: 20_000 }).catch(() => null);
      this.composeCmd = v2?.code === 0 ? [o.docker, ['compose']] : [o.docker_compose, []];
    }
    return this.composeCmd;
  }

  /** Runs compose on the project; a non-zero exit throws with the output's last lines. */
  async run(svc: ComposeConfig, args: string[], op: OperationContext): Promise<ExecResult> {
    const [cmd, pre] = await this.command(op);
    const env = svc.env_file ? ['--env-file', path.resolve(svc.project_dir, svc.env_file)] : [];
    const full = [...pre, '--project-name', projectName(svc), ...composeFiles(svc).flatMap((f) => ['--file', f]), ...env, ...args];
    op.logger.info(`${cmd} ${full.join(' ')}`);
    // compose acts on the same engine as the API calls
    const dockerHost = this.options.docker_host ? { DOCKER_HOST: this.options.docker_host } : undefined;
    const r = await this.ctx.exec(cmd, full, {
      cwd: svc.project_dir,
      signal: op.signal,
      timeoutMs: this.options.timeout * 1000,
      env: dockerHost,
    });
    if (r.code !== 0) {
      const tail = `${r.stderr}\n${r.stdout}`.trim().split('\n').slice(-4).join(' | ');
      throw new Error(`${cmd} ${[...pre, ...args].join(' ')} exited ${r.code ?? r.signal}${tail ? `: ${tail}` : ''}`);
    }
    return r;
  }

  /** The project's containers, by compose's labels. */
  async containers(svc: ComposeConfig): Promise<ContainerInspectInfo[]> {
    const d = await this.engine();
    const list = await d.listContainers({ all: true, filters: { label: [`com.docker.compose.project=${projectName(svc)}`] } });
    return Promise.all(list.map((c) => d.getContainer(c.Id).inspect()));
  }

  /** Bind mounts and named volumes of the project's containers (the folders on this host). */
  async mounts(svc: ComposeConfig): Promise<string[]> {
    const out = new Set<string>();
    for (const c of await this.containers(svc)) {
      for (const m of c.Mounts ?? []) {
        // read-only mounts are the host's (node-exporter's /, certificates): not the project's data
        if (
          (m.Type === 'bind' || m.Type === 'volume') &&
          m.Source &&
          m.RW !== false &&
          !SKIP_MOUNT.test(m.Source) &&
          !SYSTEM_ROOTS.has(path.resolve(m.Source))
        )
          out.add(m.Source);
      }
    }
    return [...out].sort();
  }

  /** The image each container of the project runs. */
  async images(svc: ComposeConfig): Promise<ImageRecord[]> {
    const d = await this.engine();
    const out: ImageRecord[] = [];
    for (const c of await this.containers(svc)) {
      const img = await d.getImage(c.Image).inspect();
      out.push({
        service: c.Config.Labels?.['com.docker.compose.service'] ?? c.Name.replace(/^\//, ''),
        container: c.Name.replace(/^\//, ''),
        ref: c.Config.Image,
        imageId: c.Image,
        repoDigests: img.RepoDigests ?? [],
      });
    }
    return out;
  }
}
