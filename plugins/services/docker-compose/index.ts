/**
 * Built-in service plugin `docker-compose`: a Docker Compose project.
 *
 * - Backup: the compose files, .env, and every bind mount and named volume of its containers.
 * - Snapshot (before an update): the image of each container (id, reference, repo digests),
 *   and an archive of its bind mounts and named volumes, made while the project is stopped.
 * - Update: pull, then recreate (`docker compose up -d`, or `docker-compose` where that is
 *   what is installed).
 * - Rollback: the previous images tagged back to the references the compose file names, the
 *   volumes restored from the archive, the containers recreated.
 * The Engine API is reached through dockerode; compose itself through its command line.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type {
  ExecResult,
  OperationContext,
  PluginContext,
  ServiceConfig,
  ServicePlugin,
  ServicePluginDefinition,
  SnapshotInfo,
} from '../../../core/plugins/contract';

type Docker = import('dockerode');

interface ComposeService extends ServiceConfig {
  project_dir: string;
  compose_files?: string[];
  project_name?: string;
  env_file?: string;
}

interface ImageRecord {
  /** the compose service */
  service: string;
  container: string;
  /** the image reference the container was created from (as in the compose file) */
  ref: string;
  /** sha256:… */
  imageId: string;
  repoDigests: string[];
}

const DEFAULT_FILES = ['compose.yaml', 'compose.yml', 'docker-compose.yaml', 'docker-compose.yml'];
/** Mounts never archived: the engine's socket and the system's own files. */
const SKIP_MOUNT =
  /^\/(proc|sys|dev)(\/|$)|^\/var\/run\/docker\.sock$|^\/run\/docker\.sock$|^\/etc\/(localtime|timezone|hosts|resolv\.conf)$/;
/** Host folders a rollback must never empty, whatever a compose file mounts. */
const SYSTEM_ROOTS = new Set([
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

const plugin: ServicePluginDefinition = {
  name: 'docker-compose',
  kind: 'service',
  version: '1.0.0',
  apiVersion: '^1.3.0',
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
    const o = ctx.options as { docker_host?: string; compose: string; docker: string; docker_compose: string; timeout: number };
    let docker: Docker | null = null;
    const engine = async (): Promise<Docker> => {
      if (docker) return docker;
      const { default: Dockerode } = (await import('dockerode')) as unknown as { default: new (opts?: object) => Docker };
      const host = o.docker_host ?? process.env.DOCKER_HOST;
      docker = new Dockerode(
        host?.startsWith('unix://')
          ? { socketPath: host.slice(7) }
          : host
            ? { host: new URL(host.replace(/^tcp:/, 'http:')).hostname, port: Number(new URL(host.replace(/^tcp:/, 'http:')).port || 2375) }
            : {},
      );
      return docker;
    };
    let composeCmd: [string, string[]] | null = null;
    /** `docker compose` (v2) when it answers, else `docker-compose` (v1) */
    const compose = async (op: OperationContext): Promise<[string, string[]]> => {
      if (composeCmd) return composeCmd;
      if (o.compose === 'docker compose') composeCmd = [o.docker, ['compose']];
      else if (o.compose === 'docker-compose') composeCmd = [o.docker_compose, []];
      else {
        const v2 = await ctx.exec(o.docker, ['compose', 'version'], { signal: op.signal, timeoutMs: 20_000 }).catch(() => null);
        composeCmd = v2?.code === 0 ? [o.docker, ['compose']] : [o.docker_compose, []];
      }
      return composeCmd;
    };
    const files = (svc: ComposeService): string[] => {
      if (svc.compose_files?.length) return svc.compose_files.map((f) => path.resolve(svc.project_dir, f));
      const found = DEFAULT_FILES.map((f) => path.join(svc.project_dir, f)).find((f) => fs.existsSync(f));
      if (!found) throw new Error(`no compose file in ${svc.project_dir} (looked for ${DEFAULT_FILES.join(', ')})`);
      return [found];
    };
    const project = (svc: ComposeService): string =>
      svc.project_name ??
      path
        .basename(svc.project_dir)
        .toLowerCase()
        .replace(/[^a-z0-9_-]/g, '');
    const run = async (svc: ComposeService, args: string[], op: OperationContext): Promise<ExecResult> => {
      const [cmd, pre] = await compose(op);
      const env = svc.env_file ? ['--env-file', path.resolve(svc.project_dir, svc.env_file)] : [];
      const full = [...pre, '--project-name', project(svc), ...files(svc).flatMap((f) => ['--file', f]), ...env, ...args];
      op.logger.info(`${cmd} ${full.join(' ')}`);
      // compose acts on the same engine as the API calls
      const dockerHost = o.docker_host ? { DOCKER_HOST: o.docker_host } : undefined;
      const r = await ctx.exec(cmd, full, { cwd: svc.project_dir, signal: op.signal, timeoutMs: o.timeout * 1000, env: dockerHost });
      if (r.code !== 0) {
        const tail = `${r.stderr}\n${r.stdout}`.trim().split('\n').slice(-4).join(' | ');
        throw new Error(`${cmd} ${[...pre, ...args].join(' ')} exited ${r.code ?? r.signal}${tail ? `: ${tail}` : ''}`);
      }
      return r;
    };
    /** The project's containers, by compose's labels. */
    const containers = async (svc: ComposeService): Promise<import('dockerode').ContainerInspectInfo[]> => {
      const d = await engine();
      const list = await d.listContainers({ all: true, filters: { label: [`com.docker.compose.project=${project(svc)}`] } });
      return Promise.all(list.map((c) => d.getContainer(c.Id).inspect()));
    };
    /** Bind mounts and named volumes of the project's containers (the folders on this host). */
    const mounts = async (svc: ComposeService): Promise<string[]> => {
      const out = new Set<string>();
      for (const c of await containers(svc)) {
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
    };
    const images = async (svc: ComposeService): Promise<ImageRecord[]> => {
      const d = await engine();
      const out: ImageRecord[] = [];
      for (const c of await containers(svc)) {
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
    };
    const snapshotDir = path.join(ctx.dataDir, 'snapshots');

    return {
      async backupSources(service) {
        const svc = service as ComposeService;
        const paths = files(svc).map((p) => ({ path: p, required: true }));
        paths.push({ path: path.resolve(svc.project_dir, svc.env_file ?? '.env'), required: false });
        for (const m of await mounts(svc)) paths.push({ path: m, required: false });
        return { paths };
      },
      updater: {
        async describeUpdate(service, op) {
          const svc = service as ComposeService;
          const [cmd, pre] = await compose(op); // asks `docker compose version`: changes nothing
          const c = [cmd, ...pre].join(' ');
          let vols = '';
          try {
            vols = (await mounts(svc)).join(', ');
          } catch (e) {
            vols = `(cannot ask the engine: ${(e as Error).message})`;
          }
          return {
            snapshot: `record the image of each container of project ${project(svc)}; stop it, archive its volumes (${vols || 'none'}), start it`,
            update: `${c} pull, then ${c} up -d (recreate what changed)`,
            rollback: 'tag the recorded images back, stop the project, restore its volumes from the archive, recreate the containers',
          };
        },
        async precheck(service, op) {
          const svc = service as ComposeService;
          const problems: string[] = [];
          const cs = await containers(svc);
          if (!cs.length) problems.push(`project ${project(svc)} has no containers: start it (docker compose up -d) before updating it`);
          const vols = await mounts(svc);
          if (vols.length) {
            const du = await ctx.exec('du', ['-sb', '--', ...vols], { timeoutMs: 120_000 });
            const need = du.stdout.split('\n').reduce((n, l) => n + (Number(l.split('\t')[0]) || 0), 0);
            // the snapshot folder may not exist yet (and a dry run must not create it): its nearest existing parent
            let at = snapshotDir;
            while (!fs.existsSync(at)) at = path.dirname(at);
            const st = fs.statfsSync(at);
            const free = st.bavail * st.bsize;
            const want = need * 1.1 + (op.minFreeBytes ?? 0);
            if (free < want)
              problems.push(
                `${snapshotDir} has ${Math.round(free / 1048576)} MiB free; the snapshot needs ${Math.round(want / 1048576)} MiB (the volumes of ${project(svc)} hold ${Math.round(need / 1048576)} MiB, plus update.min_free_mb)`,
              );
          }
          return problems;
        },
        async snapshot(service, name, op) {
          const svc = service as ComposeService;
          const imgs = await images(svc);
          const vols = await mounts(svc);
          let archive: { path: string; size: number; sha256: string } | null = null;
          if (vols.length) {
            fs.mkdirSync(snapshotDir, { recursive: true, mode: 0o700 });
            const running = (await containers(svc))
              .filter((c) => c.State.Running)
              .map((c) => c.Config.Labels?.['com.docker.compose.service'])
              .filter((x): x is string => Boolean(x));
            try {
              // stopped, so that databases are consistent on disk
              await run(svc, ['stop'], op);
              archive = await ctx.archive.create({
                sources: vols,
                dest: path.join(snapshotDir, `${project(svc)}_${name}.tar.zst`),
                signal: op.signal,
              });
              const v = await ctx.archive.verify(archive.path, { size: archive.size, sha256: archive.sha256 }, op.signal);
              if (!v.ok) throw new Error(`the snapshot archive failed verification: ${v.error}`);
            } finally {
              // what ran before runs again, whatever happened (with a time of its own)
              if (running.length)
                await run(svc, ['start', ...[...new Set(running)]], { ...op, signal: AbortSignal.timeout(o.timeout * 1000) });
            }
          }
          return {
            id: name,
            time: new Date().toISOString(),
            description: `${imgs.length} image${imgs.length === 1 ? '' : 's'}, ${vols.length} volume${vols.length === 1 ? '' : 's'}`,
            data: {
              images: imgs,
              volumes: vols,
              archive: archive?.path ?? null,
              sha256: archive?.sha256 ?? null,
              size: archive?.size ?? 0,
            },
          };
        },
        async update(service, op) {
          const svc = service as ComposeService;
          const before = new Map((await images(svc)).map((i) => [i.service, i.imageId]));
          await run(svc, ['pull'], op);
          await run(svc, ['up', '-d', '--remove-orphans'], op);
          const after = await images(svc);
          const changed = after.filter((i) => before.get(i.service) !== i.imageId);
          return {
            changed: changed.length > 0,
            summary: changed.length
              ? `new images for ${changed.map((c) => `${c.service} (${c.ref})`).join(', ')}`
              : 'pulled: every image was up to date',
          };
        },
        async rollback(service, snap, op) {
          const svc = service as ComposeService;
          const data = snap.data as {
            images: ImageRecord[];
            volumes: string[];
            archive: string | null;
            sha256: string | null;
            size: number;
          };
          const d = await engine();
          // the archive first: nothing is touched if it cannot be restored
          if (data.archive) {
            const v = await ctx.archive.verify(data.archive, { size: data.size, sha256: data.sha256 ?? undefined }, op.signal);
            if (!v.ok) throw new Error(`the snapshot archive ${data.archive} is damaged: ${v.error}; nothing was rolled back`);
          }
          // the references in the compose file point at the recorded images again (a reference pinned by digest already does)
          for (const i of data.images) {
            if (i.ref.includes('@')) continue;
            const at = i.ref.lastIndexOf(':');
            const slash = i.ref.lastIndexOf('/');
            const [repo, tag] = at > slash ? [i.ref.slice(0, at), i.ref.slice(at + 1)] : [i.ref, 'latest'];
            await d.getImage(i.imageId).tag({ repo, tag });
          }
          await run(svc, ['stop'], op);
          if (data.archive) {
            // exactly as they were: what the failed update added goes too
            for (const vol of data.volumes) {
              if (SYSTEM_ROOTS.has(path.resolve(vol))) continue;
              if (!fs.existsSync(vol) || !fs.statSync(vol).isDirectory()) continue;
              for (const n of fs.readdirSync(vol)) fs.rmSync(path.join(vol, n), { recursive: true, force: true });
            }
            await ctx.archive.extract(data.archive, op.signal);
          }
          await run(svc, ['up', '-d', '--force-recreate', '--remove-orphans'], op);
        },
        async deleteSnapshot(_service, snap) {
          const a = (snap.data as { archive?: string | null } | undefined)?.archive;
          if (a) fs.rmSync(a, { force: true });
        },
        async isRunning(service) {
          const cs = await containers(service as ComposeService);
          // a container whose health check is still `starting` is not healthy yet
          return (
            cs.length > 0 &&
            cs.every(
              (c) =>
                c.State.Running &&
                !c.State.Restarting &&
                !['unhealthy', 'starting'].includes((c.State as { Health?: { Status?: string } }).Health?.Status ?? ''),
            )
          );
        },
      },
    };
  },
};

export default plugin;
