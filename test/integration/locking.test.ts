import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { basicConfig, cleanupTmp, collect, json, ROOT, runCli, sleep, startCli, tmpDir, write } from '../helpers/cli';
import { slowToCompress } from '../helpers/tree';

afterAll(cleanupTmp);

const looksComplete = (f: string): boolean => /^[a-z-]+_\d{8}_\d{6}(-\d+)?\.tar\.zst$/.test(f);

/** A service whose backup takes a few seconds: the example dump plugin runs `sleep` first. */
function slowConfig(dir: string, seconds: number): string {
  write(path.join(dir, 'data/f.txt'), 'x');
  return write(
    path.join(dir, 'ha.yaml'),
    basicConfig(dir, {
      global: `  plugins_dir: ${ROOT}/examples/plugins.d`,
      services: `  - name: slow\n    type: dump\n    dump_dir: ${dir}/dump\n    dump_command: [sleep, "${seconds}"]\n    paths: [./data]\n  - name: quick\n    type: files\n    paths: [./data]`,
    }),
  );
}

async function waitFor(cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await sleep(50);
  }
}

/** Processes working for a run in `dir`: tar naming a path in it, or a compressor writing a file in it. */
function processesIn(dir: string): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      const out = fs.readlinkSync(`/proc/${pid}/fd/1`);
      if ((cmd[0] === 'tar' || cmd[0] === 'zstd') && (cmd.some((a) => a.includes(dir.slice(1))) || out.startsWith(dir)))
        found.push(`${pid} ${cmd.join(' ')}`);
    } catch {
      /* gone, or not ours to read */
    }
  }
  return found;
}

function lockHeld(dir: string): boolean {
  const f = path.join(dir, 'state/state.db');
  if (!fs.existsSync(f)) return false;
  const db = new Database(f, { readonly: true, timeout: 5000 });
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM locks').get() as { n: number }).n > 0;
  } catch {
    return false;
  } finally {
    db.close();
  }
}

describe('two overlapping backup runs', () => {
  it('started together: one runs, the other exits 75 naming the holder, and nothing is corrupted', async () => {
    const dir = tmpDir();
    const cfg = slowConfig(dir, 2);
    const [a, b] = await Promise.all([
      collect(startCli(['backup', '--all', '--config', cfg])),
      collect(startCli(['backup', '--all', '--config', cfg])),
    ]);
    const codes = [a.code, b.code].sort();
    // on a mismatch, say what each run printed
    if (codes.join(',') !== '0,75')
      throw new Error(`exit codes ${a.code} and ${b.code}\n--- first:\n${a.stdout}${a.stderr}\n--- second:\n${b.stdout}${b.stderr}`);
    expect(codes).toEqual([0, 75]);
    const loser = a.code === 75 ? a : b;
    expect(loser.stderr).toMatch(/error: another run holds the 'backup' lock: pid \d+ on .+ since .+ \(backup --all\)/);
    expect(loser.stderr).toContain('hint: wait for it to finish, or give --lock-wait SECONDS');
    const db = new Database(path.join(dir, 'state/state.db'), { readonly: true });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(db.prepare('SELECT COUNT(*) AS n FROM runs WHERE parent_id IS NULL').get()).toEqual({ n: 1 });
    expect(db.prepare("SELECT COUNT(*) AS n FROM runs WHERE status != 'success'").get()).toEqual({ n: 0 });
    expect(db.prepare('SELECT COUNT(*) AS n FROM locks').get()).toEqual({ n: 0 });
    db.close();
    expect(fs.readdirSync(path.join(dir, 'backups/slow')).filter(looksComplete)).toHaveLength(1);
    expect(fs.readdirSync(path.join(dir, 'backups/slow')).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  it('with --lock-wait the second waits for the first and then runs', async () => {
    const dir = tmpDir();
    const cfg = slowConfig(dir, 2);
    const first = collect(startCli(['backup', '--all', '--config', cfg]));
    await waitFor(() => lockHeld(dir));
    const second = await runCli(['backup', '--all', '--lock-wait', '30', '--json', '--config', cfg]);
    const firstResult = await first;
    expect(firstResult.code).toBe(0);
    expect(second.code).toBe(0);
    expect(json(second).services.every((s: { status: string }) => s.status === 'success')).toBe(true);
    expect(fs.readdirSync(path.join(dir, 'backups/slow')).filter(looksComplete)).toHaveLength(2);
  });
});

describe('a run killed with SIGKILL in the middle of an archive', () => {
  it('leaves no archive that looks complete nor tar or zstd working on, and the next run cleans up and succeeds', async () => {
    const dir = tmpDir();
    // zstd -19 needs many seconds for it: time to be caught in the middle, and to see that
    // tar and zstd do not go on once we are gone (zstd writes the file itself and holds much
    // of its input in its buffers: no broken pipe of ours would stop it)
    fs.writeFileSync(path.join(dir, 'big.dat'), slowToCompress(24 << 20));
    const cfg = write(
      path.join(dir, 'ha.yaml'),
      basicConfig(dir, { backup: '  compression_level: 19', services: '  - name: big\n    type: files\n    paths: [./big.dat]' }),
    );
    const child = startCli(['backup', '--all', '--config', cfg]);
    const done = collect(child);
    const svcDir = path.join(dir, 'backups/big');
    const partialWritten = (): boolean => {
      try {
        return fs.readdirSync(svcDir).some((f) => f.includes('.partial-') && fs.statSync(path.join(svcDir, f)).size > 0);
      } catch {
        return false;
      }
    };
    await waitFor(partialWritten, 30_000);
    // zstd at work (so that the check below means something; tar may have handed it all its input already)
    expect(processesIn(dir).filter((p) => / zstd /.test(p))).toHaveLength(1);
    child.kill('SIGKILL');
    expect((await done).code).toBeNull(); // killed, it never finished
    await waitFor(() => processesIn(dir).length === 0, 10_000); // the kernel ends them with us (setpriv --pdeathsig)
    const leftovers = fs.readdirSync(svcDir);
    expect(leftovers.filter(looksComplete)).toEqual([]);
    expect(leftovers.every((f) => /^\.big_\d{8}_\d{6}\.tar\.zst\.partial-.+-\d+$/.test(f))).toBe(true);
    expect(lockHeld(dir)).toBe(true); // the dead process still "holds" it

    fs.writeFileSync(cfg, fs.readFileSync(cfg, 'utf8').replace('compression_level: 19', 'compression_level: 1'));
    const next = await runCli(['backup', '--all', '--log-level', 'info', '--config', cfg]); // info: the partial file removed
    expect(next.code).toBe(0);
    expect(next.stderr).toMatch(/took over the backup lock from pid \d+, which no longer runs/);
    expect(next.stderr).toMatch(/2 earlier runs were left unfinished by a process that died; recorded as interrupted/);
    expect(next.stderr).toMatch(/removed .*\.partial-.+-\d+, left unfinished by an earlier run that was killed/);
    const after = fs.readdirSync(svcDir);
    expect(after.filter(looksComplete)).toHaveLength(1);
    expect(after.filter((f) => f.startsWith('.'))).toEqual([]);
    const h = json(await runCli(['history', '--json', '--config', cfg]));
    expect(h.map((r: { status: string }) => r.status)).toEqual(['success', 'interrupted']);
  });
});
