import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { createLogger, stderrLevelFor } from '../../lib/log';
import { StatusLine } from '../../lib/status-line';
import { clearSecrets, registerSecret } from '../../lib/mask';
import { cleanupTmp, tmpDir } from '../helpers/cli';

afterAll(cleanupTmp);
afterEach(clearSecrets);

describe('logging', () => {
  it('never loads winston when nothing is logged', async () => {
    const { close } = createLogger({ level: 'info', format: 'human' });
    await close();
    expect(Object.keys(require.cache).some((k) => k.includes(`${path.sep}winston${path.sep}`))).toBe(false);
  });
  it('writes labelled lines to stderr and JSON lines to a rotated file, secrets masked in both', async () => {
    const dir = tmpDir();
    const stderr = new PassThrough();
    let err = '';
    stderr.on('data', (d: Buffer) => (err += d.toString()));
    registerSecret('hunter2-password');
    const { logger, close } = createLogger({
      level: 'info',
      format: 'human',
      logDir: dir,
      maxSize: 4000,
      maxFiles: 3,
      stderr,
      color: false,
    });
    const child = logger.child('backup').child('web');
    for (let i = 0; i < 100; i++) child.info(`line ${i} with hunter2-password inside`);
    logger.debug('not shown at info');
    await close();
    expect(err).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d info  \[backup:web\] line 0 with \*\*\*\*\*\*\*\* inside$/m);
    expect(err).not.toContain('hunter2');
    expect(err).not.toContain('not shown');
    const files = fs.readdirSync(dir).sort();
    expect(files).toEqual(['homelab-autopilot.log', 'homelab-autopilot.log.1', 'homelab-autopilot.log.2']); // rotated by size, 3 kept
    expect(files.length).toBeLessThanOrEqual(3);
    const all = files.map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).join('');
    expect(all).not.toContain('hunter2');
    const last = JSON.parse(fs.readFileSync(path.join(dir, 'homelab-autopilot.log'), 'utf8').trim().split('\n').pop() as string);
    expect(last).toMatchObject({ level: 'info', label: 'backup:web', message: 'line 99 with ******** inside' });
  });

  it('stderr may be quieter than the file: warnings and errors there, everything in the file', async () => {
    const dir = tmpDir();
    const stderr = new PassThrough();
    let err = '';
    stderr.on('data', (d: Buffer) => (err += d.toString()));
    const { logger, close } = createLogger({ level: 'info', stderrLevel: 'warn', format: 'human', logDir: dir, stderr, color: false });
    logger.info('archiving /srv');
    logger.warn('a file changed');
    logger.error('it failed');
    logger.debug('detail');
    await close();
    expect(err).not.toContain('archiving');
    expect(err).toMatch(/warn  a file changed\n.*error it failed\n$/);
    const file = fs.readFileSync(path.join(dir, 'homelab-autopilot.log'), 'utf8');
    expect(
      file
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { message: string }).message),
    ).toEqual(['archiving /srv', 'a file changed', 'it failed']);
  });

  it('the level of stderr: --log-level wins; else the configured one on a terminal, at most warn elsewhere', () => {
    expect(stderrLevelFor('info', undefined, false)).toBe('warn');
    expect(stderrLevelFor('debug', undefined, false)).toBe('warn');
    expect(stderrLevelFor('error', undefined, false)).toBe('error');
    expect(stderrLevelFor('info', undefined, true)).toBe('info');
    expect(stderrLevelFor('info', 'info', false)).toBe('info');
    expect(stderrLevelFor('info', 'debug', false)).toBe('debug');
  });

  it('writes log lines above a progress line, never into it', async () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (d: Buffer) => (text += d.toString()));
    const status = new StatusLine(out);
    const { logger, close } = createLogger({ level: 'info', format: 'human', stderr: out, status, color: false });
    status.show('[1/1] web: 4.0 MiB written');
    logger.warn('a file changed');
    status.clear();
    logger.info('done');
    await close();
    expect(text).toMatch(
      /^\r\x1b\[K\[1\/1\] web: 4\.0 MiB written\r\x1b\[K\S+ \S+ warn  a file changed\n\[1\/1\] web: 4\.0 MiB written\r\x1b\[K\S+ \S+ info  done\n$/,
    );
  });
});
