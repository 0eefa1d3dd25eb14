/**
 * Safe updates of a Docker Compose project (the plugin's `updater`):
 * - snapshot: the image of each container (id, reference, repo digests), and an archive of
 *   its bind mounts and named volumes, made while the project is stopped;
 * - update: pull, then recreate what changed;
 * - rollback: the previous images tagged back to the references the compose file names, the
 *   volumes restored from the archive, the containers recreated.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type Docker from 'dockerode';
import type {
  OperationContext,
  PluginContext,
  ServiceConfig,
  ServiceUpdater,
  SnapshotInfo,
  UpdateResult,
} from '../../../core/plugins/contract';
import { SYSTEM_ROOTS, projectName, type Compose, type ComposeConfig, type ImageRecord } from './compose';

/** What a snapshot keeps (SnapshotInfo.data, in state). */
type SnapshotData = {
  images: ImageRecord[];
  volumes: string[];
  archive: string | null;
  sha256: string | null;
  size: number;
};

type VolumeArchive = { path: string; size: number; sha256: string };

const MIB = 1048576;
const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;

export class ComposeUpdater implements ServiceUpdater {
  /** where the volume archives of snapshots go */
  private readonly snapshotDir: string;

  constructor(
    private readonly ctx: PluginContext,
    private readonly compose: Compose,
  ) {
    this.snapshotDir = path.join(ctx.dataDir, 'snapshots');
  }

  async describeUpdate(service: ServiceConfig, op: OperationContext): Promise<{ snapshot: string; update: string; rollback: string }> {
    const svc = service as ComposeConfig;
    const [cmd, pre] = await this.compose.command(op); // asks `docker compose version`: changes nothing
    const c = [cmd, ...pre].join(' ');
    let vols = '';
    try {
      vols = (await this.compose.mounts(svc)).join(', ');
    } catch (e) {
      vols = `(cannot ask the engine: ${(e as Error).message})`;
    }
    return {
      snapshot: `record the image of each container of project ${projectName(svc)}; stop it, archive its volumes (${vols || 'none'}), start it`,
      update: `${c} pull, then ${c} up -d (recreate what changed)`,
      rollback: 'tag the recorded images back, stop the project, restore its volumes from the archive, recreate the containers',
    };
  }

  async precheck(service: ServiceConfig, op: OperationContext & { minFreeBytes?: number }): Promise<string[]> {
    const svc = service as ComposeConfig;
    const problems: string[] = [];
    const cs = await this.compose.containers(svc);
    if (!cs.length) problems.push(`project ${projectName(svc)} has no containers: start it (docker compose up -d) before updating it`);
    const vols = await this.compose.mounts(svc);
    if (vols.length) {
      const problem = await this.spaceProblem(svc, vols, op.minFreeBytes ?? 0);
      if (problem) problems.push(problem);
    }
    return problems;
  }

  async snapshot(service: ServiceConfig, name: string, op: OperationContext): Promise<SnapshotInfo> {
    const svc = service as ComposeConfig;
    const imgs = await this.compose.images(svc);
    const vols = await this.compose.mounts(svc);
    const archive = vols.length ? await this.archiveVolumes(svc, vols, name, op) : null;
    const data: SnapshotData = {
      images: imgs,
      volumes: vols,
      archive: archive?.path ?? null,
      sha256: archive?.sha256 ?? null,
      size: archive?.size ?? 0,
    };
    return {
      id: name,
      time: new Date().toISOString(),
      description: `${plural(imgs.length, 'image')}, ${plural(vols.length, 'volume')}`,
      data,
    };
  }

  async update(service: ServiceConfig, op: OperationContext): Promise<UpdateResult> {
    const svc = service as ComposeConfig;
    const before = new Map((await this.compose.images(svc)).map((i) => [i.service, i.imageId]));
    await this.compose.run(svc, ['pull'], op);
    await this.compose.run(svc, ['up', '-d', '--remove-orphans'], op);
    const after = await this.compose.images(svc);
    const changed = after.filter((i) => before.get(i.service) !== i.imageId);
    return {
      changed: changed.length > 0,
      summary: changed.length
        ? `new images for ${changed.map((c) => `${c.service} (${c.ref})`).join(', ')}`
        : 'pulled: every image was up to date',
    };
  }

  async rollback(service: ServiceConfig, snap: SnapshotInfo, op: OperationContext): Promise<void> {
    const svc = service as ComposeConfig;
    const data = snap.data as SnapshotData;
    const d = await this.compose.engine();
    // the archive first: nothing is touched if it cannot be restored
    if (data.archive) {
      const v = await this.ctx.archive.verify(data.archive, { size: data.size, sha256: data.sha256 ?? undefined }, op.signal);
      if (!v.ok) throw new Error(`the snapshot archive ${data.archive} is damaged: ${v.error}; nothing was rolled back`);
    }
    await tagBack(d, data.images);
    await this.compose.run(svc, ['stop'], op);
    if (data.archive) {
      // exactly as they were: what the failed update added goes too
      emptyVolumes(data.volumes);
      await this.ctx.archive.extract(data.archive, op.signal);
    }
    await this.compose.run(svc, ['up', '-d', '--force-recreate', '--remove-orphans'], op);
  }

  async deleteSnapshot(_service: ServiceConfig, snap: SnapshotInfo): Promise<void> {
    const a = (snap.data as { archive?: string | null } | undefined)?.archive;
    if (a) fs.rmSync(a, { force: true });
  }

  async isRunning(service: ServiceConfig): Promise<boolean> {
    const cs = await this.compose.containers(service as ComposeConfig);
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
  }

  /** Whether the snapshot folder lacks room for an archive of `vols` (their size + 10%, plus update.min_free_mb). */
  private async spaceProblem(svc: ComposeConfig, vols: string[], minFreeBytes: number): Promise<string | null> {
    const du = await this.ctx.exec('du', ['-sb', '--', ...vols], { timeoutMs: 120_000 });
    const need = du.stdout.split('\n').reduce((n, l) => n + (Number(l.split('\t')[0]) || 0), 0);
    // the snapshot folder may not exist yet (and a dry run must not create it): its nearest existing parent
    let at = this.snapshotDir;
    while (!fs.existsSync(at)) at = path.dirname(at);
    const st = fs.statfsSync(at);
    const free = st.bavail * st.bsize;
    const want = need * 1.1 + minFreeBytes;
    return free < want
      ? `${this.snapshotDir} has ${Math.round(free / MIB)} MiB free; the snapshot needs ${Math.round(want / MIB)} MiB (the volumes of ${projectName(svc)} hold ${Math.round(need / MIB)} MiB, plus update.min_free_mb)`
      : null;
  }

  /** The project stopped (so that databases are consistent on disk), its volumes archived and verified, and what ran started again. */
  private async archiveVolumes(svc: ComposeConfig, vols: string[], name: string, op: OperationContext): Promise<VolumeArchive> {
    fs.mkdirSync(this.snapshotDir, { recursive: true, mode: 0o700 });
    const running = (await this.compose.containers(svc))
      .filter((c) => c.State.Running)
      .map((c) => c.Config.Labels?.['com.docker.compose.service'])
      .filter((x): x is string => Boolean(x));
    try {
      await this.compose.run(svc, ['stop'], op);
      const archive = await this.ctx.archive.create({
        sources: vols,
        dest: path.join(this.snapshotDir, `${projectName(svc)}_${name}.tar.zst`),
        signal: op.signal,
      });
      const v = await this.ctx.archive.verify(archive.path, { size: archive.size, sha256: archive.sha256 }, op.signal);
      if (!v.ok) throw new Error(`the snapshot archive failed verification: ${v.error}`);
      return archive;
    } finally {
      // what ran before runs again, whatever happened (with a time of its own)
      if (running.length)
        await this.compose.run(svc, ['start', ...[...new Set(running)]], {
          ...op,
          signal: AbortSignal.timeout(this.compose.options.timeout * 1000),
        });
    }
  }
}

/** The references in the compose file point at the recorded images again (a reference pinned by digest already does). */
async function tagBack(d: Docker, images: ImageRecord[]): Promise<void> {
  for (const i of images) {
    if (i.ref.includes('@')) continue;
    const at = i.ref.lastIndexOf(':');
    const slash = i.ref.lastIndexOf('/');
    const [repo, tag] = at > slash ? [i.ref.slice(0, at), i.ref.slice(at + 1)] : [i.ref, 'latest'];
    await d.getImage(i.imageId).tag({ repo, tag });
  }
}

/** Empties each volume folder (never a system folder), so that the archive restores it exactly. */
function emptyVolumes(volumes: string[]): void {
  for (const vol of volumes) {
    if (SYSTEM_ROOTS.has(path.resolve(vol))) continue;
    if (!fs.existsSync(vol) || !fs.statSync(vol).isDirectory()) continue;
    for (const n of fs.readdirSync(vol)) fs.rmSync(path.join(vol, n), { recursive: true, force: true });
  }
}
