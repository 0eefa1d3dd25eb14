/**
 * Small images for the Docker tests, made here with `docker import` of a static busybox root
 * (nothing is pulled from the internet), pushed to the registry on 127.0.0.1:5000 that the
 * test setup starts.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export const REGISTRY = '127.0.0.1:5000';

// eslint-disable-next-line @typescript-eslint/no-require-imports -- plain JavaScript shared with jest's global setup (no allowJs here): typed by hand
export const { startDocker } = require('../setup/docker.js') as { startDocker: () => Promise<void> };

export function sh(cmd: string, args: string[], opts: { cwd?: string; input?: string } = {}): string {
  return execFileSync(cmd, args, { cwd: opts.cwd, input: opts.input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

/**
 * An image whose start script writes to /data and serves /www on 8080; a broken one damages
 * /data and exits; one with `crashAfterSeconds` serves, then exits 1 that many seconds after
 * it started. `label` marks the image (LABEL autopilot-test=…), so that a test can prune its own
 * images only, on an engine others use too.
 */
export function buildImage(tag: string, version: string, broken = false, o: { label?: string; crashAfterSeconds?: number } = {}): void {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ha-img-'));
  try {
    fs.mkdirSync(path.join(root, 'bin'));
    fs.mkdirSync(path.join(root, 'www'));
    fs.mkdirSync(path.join(root, 'data'));
    fs.mkdirSync(path.join(root, 'tmp'));
    fs.copyFileSync('/bin/busybox', path.join(root, 'bin', 'busybox'));
    fs.chmodSync(path.join(root, 'bin', 'busybox'), 0o755);
    for (const a of ['sh', 'httpd', 'cat', 'echo', 'mkdir', 'sleep', 'ls']) fs.symlinkSync('busybox', path.join(root, 'bin', a));
    fs.writeFileSync(path.join(root, 'www', 'index.html'), `${version}\n`);
    fs.writeFileSync(
      path.join(root, 'start.sh'),
      broken
        ? `#!/bin/sh\necho "${version} corrupted it" > /data/important\necho "${version} was here" > /data/${version}-junk\nexit 1\n`
        : o.crashAfterSeconds
          ? `#!/bin/sh\necho "written by ${version}" >> /data/history\nhttpd -p 8080 -h /www\nsleep ${o.crashAfterSeconds}\nexit 1\n`
          : `#!/bin/sh\necho "written by ${version}" >> /data/history\n[ -f /data/important ] || echo "precious data" > /data/important\nexec httpd -f -p 8080 -h /www\n`,
    );
    const tarFile = `${root}.tar`;
    execFileSync('tar', ['-C', root, '-cf', tarFile, '.']);
    try {
      const label = o.label ? ['-c', `LABEL autopilot-test=${o.label}`] : [];
      execFileSync('docker', ['import', '-c', 'CMD ["/bin/sh","/start.sh"]', ...label, tarFile, tag], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
    } finally {
      fs.rmSync(tarFile, { force: true });
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

/** Makes `ref` in the registry point at `local`; the local tag is removed again, so that only a pull brings it here. */
export function publish(local: string, ref: string): void {
  sh('docker', ['tag', local, ref]);
  sh('docker', ['push', ref]);
  sh('docker', ['rmi', ref]);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export async function httpText(url: string): Promise<string | null> {
  try {
    // no kept-alive socket left behind to hold the test process open
    const r = await fetch(url, { signal: AbortSignal.timeout(2000), headers: { connection: 'close' } });
    return (await r.text()).trim();
  } catch {
    return null;
  }
}

export async function waitFor<T>(fn: () => Promise<T | null> | T | null, ms = 20_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 250));
  }
}
