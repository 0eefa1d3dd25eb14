import { parseTarLine, TarTally, unescapeTarName } from '../../lib/archive-restore';

describe("GNU tar's verbose listing", () => {
  it('parses files, links and escaped names (LC_ALL=C) back to their bytes', () => {
    const f = parseTarLine('-rw-r--r-- root/root         2 2026-12-02 16:23 d/\\303\\251 b');
    expect(f).toMatchObject({ type: '-', size: 2 });
    expect(f?.name.toString('utf8')).toBe('d/é b');
    expect(parseTarLine('-rw-r--r-- root/root 1 2026-12-02 16:23 d/n\\nl')?.name.toString()).toBe('d/n\nl');
    expect(parseTarLine('-rw-r--r-- root/root 1 2026-12-02 16:23 d/back\\\\slash')?.name.toString()).toBe('d/back\\slash');
    expect(parseTarLine('lrwxrwxrwx root/root 0 2026-12-02 16:23 d/link -> a b')?.name.toString()).toBe('d/link');
    expect(parseTarLine('hrw-r--r-- root/root 0 2026-12-02 16:23 d/hard link to d/x')).toMatchObject({ type: 'h' });
    expect(parseTarLine('crw-rw-rw- root/root 1,3 2026-12-02 16:23 dev/null')).toMatchObject({ type: 'c', size: 0 });
    expect(parseTarLine('tar: Removing leading / from member names')).toBeNull();
    expect(unescapeTarName('a\\tb')).toEqual(Buffer.from('a\tb'));
  });

  it('tallies files, bytes and the top-level names', () => {
    const t = new TarTally();
    for (const l of [
      'drwxr-xr-x root/root 0 2026-12-02 16:23 srv/photos/',
      '-rw-r--r-- root/root 5 2026-12-02 16:23 srv/photos/a',
      'drwxr-xr-x root/root 0 2026-12-02 16:23 srv/photos/sub/',
      '-rw-r--r-- root/root 7 2026-12-02 16:23 srv/photos/sub/b',
      '-rw-r--r-- root/root 3 2026-12-02 16:23 etc/hosts',
    ])
      t.add(parseTarLine(l)!);
    expect({ entries: t.entries, files: t.files, bytes: t.bytes, roots: t.roots }).toEqual({
      entries: 5,
      files: 3,
      bytes: 15,
      roots: ['srv/photos', 'etc/hosts'],
    });
  });
});
