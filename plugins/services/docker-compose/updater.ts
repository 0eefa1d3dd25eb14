/**
 * Safe updates of a Docker Compose project (the plugin's `updater`):
 * - prepare: pull, and compare the image each reference now names with the one its container
 *   runs: nothing new is "up to date", and nothing is stopped or snapshotted;
 * - snapshot: the image of each container (id, reference, repo digests), kept by a tag of our
 *   own (homelab-autopilot/rollback:…) until the snapshot is removed, so that a `docker image
 *   prune` cannot take it; and an archive of its bind mounts and named volumes, made while the
 *   project is stopped;
 * - update: recreate what changed;
 * - rollback: the volumes restored from the archive, and the previous images tagged back to
 *   the references the compose file names (pulled again by their digest when they are gone);
 *   the containers recreated. The data is restored even when the images cannot be.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type Docker from 'dockerode';
import { load as loadYaml } from 'js-yaml';
import type {
  OperationContext,
  PluginContext,
  ServiceConfig,
  ServiceStart,
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
  /** projects pulled by prepare() in this run (update() does not pull again) */
  private readonly pulled = new Set<string>();

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
      update: `${c} up -d (recreate what changed; the images were pulled before the snapshot)`,
      rollback:
        'stop the project, restore its volumes from the archive, tag the recorded images back (pulled by digest when gone), recreate the containers',
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
    // each image kept by a tag of ours until the snapshot goes: a `docker image prune` leaves it alone
    const d = await this.compose.engine();
    for (const i of imgs) {
      i.keepTag = keepTag(projectName(svc), name, i.service);
      await d.getImage(i.imageId).tag({ repo: KEEP_REPO, tag: i.keepTag.slice(KEEP_REPO.length + 1) });
    }
    const vols = await this.compose.mounts(svc);
    let archive: VolumeArchive | null;
    try {
      archive = vols.length ? await this.archiveVolumes(svc, vols, name, op) : null;
    } catch (e) {
      // no snapshot: its tags go too
      for (const i of imgs)
        if (i.keepTag)
          await d
            .getImage(i.keepTag)
            .remove({ force: true })
            .catch(() => undefined);
      throw e;
    }
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

  async prepare(service: ServiceConfig, op: OperationContext): Promise<UpdateResult> {
    const svc = service as ComposeConfig;
    const running = await this.compose.images(svc);
    await this.compose.run(svc, ['pull'], op);
    this.pulled.add(projectName(svc));
    const d = await this.compose.engine();
    const changed: string[] = [];
    // what the compose files ask for now: a service whose image reference was edited, or that
    // has no container yet, is a change even when every image that runs is the newest of its tag
    for (const [service, image] of Object.entries(await this.wanted(svc, op))) {
      const now = running.find((i) => i.service === service);
      if (!now) changed.push(`${service} (new)`);
      else if (image && image !== now.ref) changed.push(`${service} (${now.ref} -> ${image})`);
    }
    for (const i of running) {
      const now = await d
        .getImage(i.ref)
        .inspect()
        .then((x) => x.Id)
        .catch(() => null);
      if (now !== i.imageId) changed.push(`${i.service} (${i.ref})`);
    }
    return {
      changed: changed.length > 0,
      summary: changed.length
        ? `pulled: new images for ${changed.join(', ')}`
        : `up to date: ${running.length === 1 ? 'the image pulled is the one that runs' : `the ${running.length} images pulled are those that run`}`,
    };
  }

  /** The services of the compose files as they are now, each with the image it names (none when it is built). */
  private async wanted(svc: ComposeConfig, op: OperationContext): Promise<Record<string, string | null>> {
    const r = await this.compose.run(svc, ['config'], op);
    const doc = loadYaml(r.stdout) as { services?: Record<string, { image?: unknown }> } | undefined;
    const out: Record<string, string | null> = {};
    for (const [name, def] of Object.entries(doc?.services ?? {})) out[name] = typeof def?.image === 'string' ? def.image : null;
    return out;
  }

  async update(service: ServiceConfig, op: OperationContext): Promise<UpdateResult> {
    const svc = service as ComposeConfig;
    const before = new Map((await this.compose.images(svc)).map((i) => [i.service, i.imageId]));
    if (!this.pulled.delete(projectName(svc))) await this.compose.run(svc, ['pull'], op);
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
    // the images; a failure here does not stop the data from being restored
    let imageError: Error | null = null;
    try {
      await restoreImages(d, data.images, op);
    } catch (e) {
      imageError = e as Error;
    }
    await this.compose.run(svc, ['stop'], op);
    if (data.archive) {
      // exactly as they were: what the failed update added goes too
      emptyVolumes(data.volumes);
      await this.ctx.archive.extract(data.archive, op.signal);
    }
    if (imageError) {
      // the new images would run on the restored data: the project stays stopped
      throw Object.assign(
        new Error(
          `${data.archive ? 'the volumes were restored, but ' : ''}the previous images could not be brought back: ${imageError.message}; the project is left stopped`,
          { cause: imageError },
        ),
        {
          hint: `pull the image by the digest recorded in the snapshot, tag it as the compose file names it, then run: docker compose up -d`,
        },
      );
    }
    await this.compose.run(svc, ['up', '-d', '--force-recreate', '--remove-orphans'], op);
  }

  async deleteSnapshot(_service: ServiceConfig, snap: SnapshotInfo): Promise<void> {
    const data = snap.data as Partial<SnapshotData> | undefined;
    if (data?.archive) fs.rmSync(data.archive, { force: true });
    const d = await this.compose.engine();
    for (const i of data?.images ?? []) {
      // the tag only (an image that still runs stays, untagged by us)
      if (i.keepTag)
        await d
          .getImage(i.keepTag)
          .remove({ force: true, noprune: false })
          .catch(() => undefined);
    }
  }

  async starts(service: ServiceConfig): Promise<ServiceStart[]> {
    const cs = await this.compose.containers(service as ComposeConfig);
    return cs.map((c) => ({ id: c.Id, startedAt: c.State.StartedAt, restarts: c.RestartCount }));
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

const KEEP_REPO = 'homelab-autopilot/rollback';

/** The tag that keeps one image of a snapshot: homelab-autopilot/rollback:<project>_<snapshot>_<service>. */
function keepTag(project: string, snapshot: string, service: string): string {
  return `${KEEP_REPO}:${`${project}_${snapshot}_${service}`.replace(/[^\w.-]/g, '_').slice(0, 128)}`;
}

/** Pulls an image by a reference (a digest), waiting for the pull to end. */
async function pull(d: Docker, ref: string, op: OperationContext): Promise<void> {
  op.logger.info(`pulling ${ref}`);
  const stream = await d.pull(ref);
  await new Promise<void>((resolve, reject) =>
    d.modem.followProgress(stream, (err: Error | null, out: { error?: string }[]) => {
      const failed = err ?? out.find((x) => x.error);
      if (failed) reject(err ?? new Error(String((failed as { error?: string }).error)));
      else resolve();
    }),
  );
}

/**
 * The references in the compose file point at the recorded images again (a reference pinned by
 * digest already does). An image that is gone (pruned, removed) is pulled again by its digest.
 */
async function restoreImages(d: Docker, images: ImageRecord[], op: OperationContext): Promise<void> {
  const exists = (id: string): Promise<string | null> =>
    d
      .getImage(id)
      .inspect()
      .then((x) => x.Id)
      .catch(() => null);
  for (const i of images) {
    let id = await exists(i.imageId);
    for (const digest of id ? [] : i.repoDigests) {
      try {
        await pull(d, digest, op);
        id = await exists(digest);
        if (id) break;
      } catch (e) {
        op.logger.warn(`could not pull ${digest}: ${(e as Error).message}`);
      }
    }
    if (!id) {
      throw new Error(
        `the image ${i.imageId.slice(0, 19)} of ${i.service} (${i.ref}) is gone${i.repoDigests.length ? ` and could not be pulled again (${i.repoDigests.join(', ')})` : ', and it has no digest to pull it by'}`,
      );
    }
    if (i.ref.includes('@')) continue;
    const at = i.ref.lastIndexOf(':');
    const slash = i.ref.lastIndexOf('/');
    const [repo, tag] = at > slash ? [i.ref.slice(0, at), i.ref.slice(at + 1)] : [i.ref, 'latest'];
    await d.getImage(id).tag({ repo, tag });
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
