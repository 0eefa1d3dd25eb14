/**
 * A file replaced atomically, for node_exporter's textfile collector: the text is written to
 * a temporary file in the same folder (named so that the collector, which reads `*.prom`,
 * skips it), fsynced, given mode 0644 and renamed over the target, so that a reader sees the
 * old file or the new one, never half of one.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

/** The temporary name of `file` while it is written: `.<name>.<random>.tmp` beside it. */
export function textfileTemp(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
}

export async function writeTextfile(file: string, body: string): Promise<void> {
  const tmp = textfileTemp(file);
  let handle: fs.FileHandle | null = null;
  try {
    handle = await fs.open(tmp, 'wx', 0o644);
    await handle.writeFile(body, 'utf8');
    // the umask may have taken bits away: node_exporter often runs as another user
    await handle.chmod(0o644);
    await handle.sync();
    await handle.close();
    handle = null;
    await fs.rename(tmp, file);
  } catch (e) {
    await handle?.close().catch(() => {});
    await fs.rm(tmp, { force: true }).catch(() => {});
    throw e;
  }
  // the rename itself survives a crash once the folder is synced (best effort: not every file system allows it)
  const dir = await fs.open(path.dirname(file), 'r').catch(() => null);
  if (dir)
    await dir
      .sync()
      .catch(() => {})
      .finally(() => dir.close().catch(() => {}));
}
