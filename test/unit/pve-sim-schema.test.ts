import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cleanupTmp, ROOT, tmpDir, write } from '../helpers/cli';

afterAll(cleanupTmp);

/** loadSchema() of a copy of the simulator's schema.js placed at <base>/repo/test/pve-sim/. */
function loadFrom(base: string): { ok: boolean; file: string; note?: string } {
  const copy = path.join(base, 'repo', 'test', 'pve-sim', 'schema.js');
  fs.mkdirSync(path.dirname(copy), { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'test', 'pve-sim', 'schema.js'), copy);
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.PVE_APIDATA;
  const r = spawnSync(process.execPath, ['-e', `process.stdout.write(JSON.stringify(require(${JSON.stringify(copy)}).loadSchema()))`], {
    encoding: 'utf8',
    env,
  });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as { ok: boolean; file: string; note?: string };
}

describe('the PVE simulator finds its API schema at ../shared beside the repository only', () => {
  it('reads ../shared/pve-apidata.json relative to the repository it sits in', () => {
    const base = tmpDir();
    const tree = [{ path: '/version', text: 'version', info: { GET: { method: 'GET', parameters: { properties: {} } } } }];
    write(path.join(base, 'shared', 'pve-apidata.json'), JSON.stringify(tree));
    expect(loadFrom(base)).toMatchObject({ ok: true, file: path.join(base, 'shared', 'pve-apidata.json') });
  });

  it('without it, says where it looked (no fixed absolute path)', () => {
    const base = tmpDir();
    const res = loadFrom(base);
    expect(res).toMatchObject({ ok: false, file: path.join(base, 'shared', 'pve-apidata.json') });
    expect(res.note).toContain(path.join(base, 'shared', 'pve-apidata.json'));
  });
});
