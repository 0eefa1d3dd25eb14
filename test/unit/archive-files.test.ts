/**
 * tar's --transform for a member stored under another name (storeAs), run by GNU tar itself on
 * names with the characters its expressions treat specially.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tarSelection } from '../../lib/archive-files';
import { cleanupTmp, tmpDir } from '../helpers/cli';

afterAll(cleanupTmp);

describe('storeAs', () => {
  it.each(['a|b', 'a&b', 'a#b,c', 'a.b*[c]', 'with space'])('stores %s/f.db under the other name, and nothing else renamed', (name) => {
    const dir = path.join(tmpDir(), name);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'f.db'), 'copy');
    fs.writeFileSync(path.join(dir, 'other'), 'x');
    const as = path.join(path.dirname(dir), 'npm|data', 'database.sqlite');
    const args = tarSelection([dir], [], [{ path: path.join(dir, 'f.db'), as }]);
    const listing = execFileSync('sh', ['-c', 'tar -cf - "$@" | tar -tf -', 'tar', ...args], { encoding: 'utf8' })
      .trim()
      .split('\n');
    const rel = (p: string): string => p.replace(/^\/+/, '');
    expect(listing).toContain(rel(as));
    expect(listing).toContain(rel(path.join(dir, 'other')));
    expect(listing.filter((l) => l.includes('f.db'))).toEqual([]);
  });
});
