import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { createLogger } from '../../lib/log';
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
});
