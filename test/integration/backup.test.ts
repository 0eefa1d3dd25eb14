import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { basicConfig, cleanupTmp, json, ROOT, runCli, tmpDir, write } from '../helpers/cli';

afterAll(cleanupTmp);

const archivesIn = (dir: string): string[] =>
  fs.existsSync(dir)
    ? fs
        .readdirSync(dir)
        .filter((f) => /\.tar\.(zst|gz)$/.test(f) && !f.startsWith('.'))
        .sort()
    : [];

function fingerprint(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    if (!fs.existsSync(d)) return;
    for (const n of fs.readdirSync(d)) {
      const f = path.join(d, n);
      const st = fs.lstatSync(f);
      if (st.isDirectory()) walk(f);
      // SQLite's -wal/-shm coordination files may appear when the database is read: they hold no data
      else if (!/\.db-(wal|shm)$/.test(n))
        out[path.relative(dir, f)] = `${st.size}:${st.mtimeMs}:${createHash('sha256').update(fs.readFileSync(f)).digest('hex')}`;
    }
  };
  walk(dir);
  return out;
}

describe('backup --all', () => {
  it('goes on past a failed service, prints a summary, records everything and exits 1', async () => {
    const dir = tmpDir();
    write(path.join(dir, 'a/file.txt'), 'a');
    write(path.join(dir, 'c/file.txt'), 'c');
    write(
      path.join(dir, 'ha.yaml'),
      basicConfig(dir, {
        services: [
          '  - name: alpha\n    type: files\n    paths: [./a]',
          '  - name: broken\n    type: files\n    paths: [./does-not-exist]',
          '  - name: needs-plugin\n    type: nosuch',
          '  - name: gamma\n    type: files\n    paths: [./c]',
          '  - name: off\n    type: files\n    enabled: false\n    paths: [./c]',
        ].join('\n'),
      }),
    );
    const r = await runCli(['backup', '--all', '--config', path.join(dir, 'ha.yaml')]);
    expect(r.code).toBe(1);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^SERVICE\s+RESULT\s+SIZE\s+DURATION\s+LOCATION$/);
    expect(r.stdout).toMatch(/^alpha\s+ok\s+\d+ B\s+\S+\s+.*alpha_\d{8}_\d{6}\.tar\.zst$/m);
    expect(r.stdout).toMatch(/^broken\s+failed\s+-\s+\S+\s+.*does-not-exist does not exist$/m);
    expect(r.stdout).toMatch(/^needs-plugin\s+failed\s+.*needs the service plugin 'nosuch', which is not installed$/m);
    expect(r.stdout).toMatch(/^gamma\s+ok\s+/m);
    expect(r.stdout).not.toMatch(/^off\s/m);
    expect(r.stdout).toContain('2 of 4 services FAILED');
    expect(r.stdout).toContain('hint: installed service plugins: caddy, docker-compose, files, host, nginx-proxy-manager');
    expect(archivesIn(path.join(dir, 'backups/alpha'))).toHaveLength(1);
    expect(archivesIn(path.join(dir, 'backups/gamma'))).toHaveLength(1);

    const h = json(await runCli(['history', '--json', '--config', path.join(dir, 'ha.yaml')]));
    expect(h[0]).toMatchObject({ kind: 'backup', target: 'all', status: 'failed', dryRun: false });
    expect(h[0].summary.failed).toEqual(['broken', 'needs-plugin']);
    expect(h[0].children.map((c: { target: string; status: string }) => [c.target, c.status])).toEqual([
      ['alpha', 'success'],
      ['broken', 'failed'],
      ['needs-plugin', 'failed'],
      ['gamma', 'success'],
    ]);
    const list = json(await runCli(['backups', 'list', '--json', '--config', path.join(dir, 'ha.yaml')]));
    expect(list.map((a: { service: string }) => a.service).sort()).toEqual(['alpha', 'gamma']);
    expect(list[0]).toMatchObject({
      destination: 'primary',
      present: true,
      verifyStatus: 'ok',
      verifyDetail: expect.stringMatching(/^\d+ entries$/),
    });
    expect(list[0]).not.toHaveProperty('verifyResult');
  });

  it('names unknown services and refuses names with --all', async () => {
    const dir = tmpDir();
    write(path.join(dir, 'ha.yaml'), basicConfig(dir, { services: '  - name: alpha\n    type: files\n    paths: [/etc/hostname]' }));
    const r = await runCli(['backup', 'nope', '--config', path.join(dir, 'ha.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("no service named 'nope' in the configuration");
    expect(r.stderr).toContain('configured services: alpha');
    const r2 = await runCli(['backup', '--config', path.join(dir, 'ha.yaml')]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain('name the services to back up, or give --all');
  });
});

describe('retention', () => {
  it('prunes with keep-last on every destination, never a protected archive nor a file it did not make', async () => {
    const dir = tmpDir();
    write(path.join(dir, 'src/f.txt'), 'data');
    write(path.join(dir, 'backups/svc/svc_notes.txt'), 'a file of the owner, not ours');
    write(path.join(dir, 'backups/svc/svc_20200101_000000.tar.zst'), 'looks like ours, but state never recorded it');
    write(
      path.join(dir, 'ha.yaml'),
      basicConfig(dir, {
        backup: `  retention:\n    keep_last: 2\n  destinations:\n    - name: nas\n      path: ${dir}/nas`,
        services: '  - name: svc\n    type: files\n    paths: [./src]',
      }),
    );
    const cfg = path.join(dir, 'ha.yaml');
    const first = json(await runCli(['backup', 'svc', '--json', '--config', cfg]));
    const firstId = json(await runCli(['backups', 'list', '--json', '--config', cfg])).find(
      (a: { destination: string }) => a.destination === 'primary',
    ).id;
    expect((await runCli(['backups', 'protect', String(firstId), '--config', cfg])).code).toBe(0);
    for (let i = 0; i < 3; i++) expect((await runCli(['backup', 'svc', '--config', cfg])).code).toBe(0);
    const primary = archivesIn(path.join(dir, 'backups/svc'));
    // the protected first one, the two newest, and the unrecorded look-alike
    expect(primary).toHaveLength(4);
    expect(primary).toContain(path.basename(first.services[0].archive.path));
    expect(primary).toContain('svc_20200101_000000.tar.zst');
    expect(fs.existsSync(path.join(dir, 'backups/svc/svc_notes.txt'))).toBe(true);
    expect(archivesIn(path.join(dir, 'nas/svc'))).toHaveLength(2);
    const all = json(await runCli(['backups', 'list', '--all', '--json', '--config', cfg]));
    const pruned = all.filter((a: { deletedAt: string | null }) => a.deletedAt);
    expect(pruned).toHaveLength(3); // one on primary (the unprotected second), two on nas
  });

  it('--dry-run shows what would be archived, copied and pruned, and writes nothing', async () => {
    const dir = tmpDir();
    write(path.join(dir, 'src/a.txt'), 'aaaa');
    write(path.join(dir, 'src/b.txt'), 'bbbbbbbb');
    write(
      path.join(dir, 'ha.yaml'),
      basicConfig(dir, {
        backup: `  retention:\n    keep_last: 1\n  destinations:\n    - name: nas\n      path: ${dir}/nas`,
        services: '  - name: svc\n    type: files\n    paths: [./src]',
      }),
    );
    const cfg = path.join(dir, 'ha.yaml');
    // a fresh machine: a dry run creates nothing at all
    const fresh = await runCli(['backup', '--all', '--dry-run', '--config', cfg]);
    expect(fresh.code).toBe(0);
    expect(fs.readdirSync(dir).sort()).toEqual(['ha.yaml', 'src']);
    expect(fresh.stdout).toContain('dry run: nothing is written');
    expect(fresh.stdout).toContain('svc (files): 2 files, 12 B before compression');

    expect((await runCli(['backup', '--all', '--config', cfg])).code).toBe(0);
    const before = {
      ...fingerprint(path.join(dir, 'state')),
      ...fingerprint(path.join(dir, 'backups')),
      ...fingerprint(path.join(dir, 'nas')),
    };
    const r = await runCli(['backup', '--all', '--dry-run', '--config', cfg]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/into\s+.*backups\/svc\/svc_\d{8}_\d{6}(-\d+)?\.tar\.zst/);
    expect(r.stdout).toMatch(/copy to nas: .*nas\/svc\/svc_/);
    expect(r.stdout).toMatch(/prune\s+.*backups\/svc\/svc_.*\(primary: outside every keep-\* window\)/);
    const after = {
      ...fingerprint(path.join(dir, 'state')),
      ...fingerprint(path.join(dir, 'backups')),
      ...fingerprint(path.join(dir, 'nas')),
    };
    expect(after).toEqual(before);
    const j = json(await runCli(['backup', '--all', '--dry-run', '--json', '--config', cfg]));
    expect(j).toMatchObject({ dryRun: true, ok: true, runId: null });
    expect(j.services[0].plan).toMatchObject({ files: 2, bytes: 12, prune: [{ destination: 'primary' }, { destination: 'nas' }] });
  });
});

describe('secrets', () => {
  it('are resolved from files and commands, used, and masked in config show, logs and output', async () => {
    const dir = tmpDir();
    const secret = 'correct-horse-battery-staple';
    write(path.join(dir, 'secrets/db'), secret + '\n', 0o600);
    write(path.join(dir, 'secrets/loose'), 'another-secret-value\n', 0o644);
    write(
      path.join(dir, 'ha.yaml'),
      basicConfig(dir, {
        global: `  plugins_dir: ${ROOT}/examples/plugins.d\n  log_level: debug`,
        services: [
          '  - name: db',
          '    type: dump',
          `    dump_dir: ${dir}/dump`,
          `    dump_command: [sh, -c, 'test "$DUMP_PASSWORD" = "${secret}" && echo dumped > "$DUMP_DIR/db.sql"']`,
          '    password_command: [cat, ./secrets/db]',
          '  - name: db2',
          '    type: dump',
          `    dump_dir: ${dir}/dump2`,
          `    dump_command: [sh, -c, 'echo "$DUMP_PASSWORD" >&2; exit 3']`,
          '    password_file: ./secrets/loose',
        ].join('\n'),
      }),
    );
    const cfg = path.join(dir, 'ha.yaml');
    const show = await runCli(['config', 'show', '--config', cfg]);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain('password: "********"');
    expect(show.stdout).not.toContain(secret);
    expect(show.stderr).toMatch(/secrets\/loose is readable or writable by group or others \(mode 644\): run chmod 600/);

    const r = await runCli(['backup', '--all', '--config', cfg]);
    expect(r.code).toBe(1); // db2's dump command fails on purpose, printing its password
    expect(r.stdout).toMatch(/^db\s+ok/m);
    expect(fs.readFileSync(path.join(dir, 'dump/db.sql'), 'utf8')).toBe('dumped\n');
    const everything = r.stdout + r.stderr + fs.readFileSync(path.join(dir, 'logs/homelab-autopilot.log'), 'utf8');
    expect(everything).not.toContain(secret);
    expect(everything).not.toContain('another-secret-value');
    expect(everything).toContain('********');
  });
});

describe('edge cases a homelab meets', () => {
  it('a source that is a symbolic link is archived as what it points to', async () => {
    const dir = tmpDir();
    write(path.join(dir, 'disk/photo.jpg'), 'jpeg bytes');
    fs.symlinkSync(path.join(dir, 'disk'), path.join(dir, 'photos'));
    write(path.join(dir, 'ha.yaml'), basicConfig(dir, { services: `  - name: photos\n    type: files\n    paths: [${dir}/photos]` }));
    const r = await runCli(['backup', '--all', '--json', '--config', path.join(dir, 'ha.yaml')]);
    expect(r.code).toBe(0);
    const svc = json(r).services[0];
    expect(svc.warnings[0]).toContain('is a symbolic link: archiving');
    const listing = execFileSync('tar', ['--zstd', '-tf', svc.archive.path]).toString();
    expect(listing).toContain('disk/photo.jpg');
  });

  it('a service that takes longer than its timeout fails alone, and the next one runs', async () => {
    const dir = tmpDir();
    write(path.join(dir, 'data/f'), 'x');
    write(
      path.join(dir, 'ha.yaml'),
      basicConfig(dir, {
        global: `  plugins_dir: ${ROOT}/examples/plugins.d`,
        services: `  - name: stuck\n    type: dump\n    timeout: 1\n    dump_dir: ${dir}/dump\n    dump_command: [sleep, "30"]\n  - name: fine\n    type: files\n    paths: [./data]`,
      }),
    );
    const t0 = Date.now();
    const r = await runCli(['backup', '--all', '--json', '--config', path.join(dir, 'ha.yaml')]);
    // not held up by the stuck dump: `sleep 30` would take 30s; the run takes about 2s, and 20s leaves room for a loaded machine
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(r.code).toBe(1);
    const [stuck, fine] = json(r).services;
    expect(stuck).toMatchObject({ status: 'failed', error: 'the backup did not finish within 1s' });
    expect(fine.status).toBe('success');
  });

  it('a file that changes while it is read makes tar try again, then it is kept with a warning', async () => {
    const dir = tmpDir();
    // big enough that tar takes a while over it, so the writer always lands a line while it reads
    write(path.join(dir, 'live/growing.log'), 'start\n'.repeat(8 * 1024 * 1024));
    write(path.join(dir, 'ha.yaml'), basicConfig(dir, { services: '  - name: live\n    type: files\n    paths: [./live]' }));
    // a writer that never stops, like a busy database or log
    const writer = spawn('sh', ['-c', `while :; do echo line >> ${dir}/live/growing.log; done`], {
      stdio: 'ignore',
    });
    const size = (): number => fs.statSync(path.join(dir, 'live/growing.log')).size;
    const first = size();
    for (let i = 0; i < 200 && size() === first; i++) await new Promise((r) => setTimeout(r, 10));
    try {
      const r = await runCli(['backup', '--all', '--json', '--config', path.join(dir, 'ha.yaml')]);
      expect(r.code).toBe(0);
      const svc = json(r).services[0];
      expect(svc.status).toBe('success');
      expect(svc.warnings.join('\n')).toMatch(/some files kept changing while they were archived \(3 attempts\)/);
      expect(r.stderr.match(/making the archive again/g)).toHaveLength(2);
    } finally {
      writer.kill('SIGKILL');
    }
  });

  it('a dry run writes no log file either', async () => {
    const dir = tmpDir();
    write(
      path.join(dir, 'ha.yaml'),
      basicConfig(dir, { services: '  - name: h\n    type: files\n    paths: [/etc/hostname, /nonexistent-optional]' }).replace(
        'paths: [/etc/hostname, /nonexistent-optional]',
        'paths: [/etc/hostname]',
      ),
    );
    const r = await runCli(['backup', '--all', '--dry-run', '--log-level', 'debug', '--config', path.join(dir, 'ha.yaml')]);
    expect(r.code).toBe(0);
    expect(fs.existsSync(path.join(dir, 'logs'))).toBe(false);
  });
});

describe('the state database after a run', () => {
  it('passes an integrity check and holds no lock', async () => {
    const dir = tmpDir();
    write(path.join(dir, 'ha.yaml'), basicConfig(dir, { services: '  - name: h\n    type: files\n    paths: [/etc/hostname]' }));
    expect((await runCli(['backup', '--all', '--config', path.join(dir, 'ha.yaml')])).code).toBe(0);
    const db = new Database(path.join(dir, 'state/state.db'), { readonly: true });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(db.prepare('SELECT COUNT(*) AS n FROM locks').get()).toEqual({ n: 0 });
    db.close();
  });
});
