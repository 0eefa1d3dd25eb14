import * as fs from 'node:fs';
import * as path from 'node:path';
import { basicConfig, cleanupTmp, json, ROOT, runCli, tmpDir, write } from '../helpers/cli';

afterAll(cleanupTmp);

const good = (name: string, extra = ''): string => `module.exports = {
  name: '${name}', kind: 'service', version: '1.2.3', apiVersion: '^1.0.0',
  serviceSchema: { properties: { src: { type: 'string', 'x-path': true } }, required: ['src'] },
  ${extra}
  create(ctx) { return { backupSources(s) { return { paths: [{ path: s.src, required: true }] }; } }; },
};
`;

interface Rec {
  name: string;
  kind: string | null;
  source: string;
  status: string;
  reason: string | null;
  file: string;
}

describe('plugins.d: bad plugins are reported and skipped, the good ones load and run', () => {
  let dir: string;
  let cfg: string;
  beforeAll(() => {
    dir = tmpDir();
    const pd = path.join(dir, 'plugins.d');
    write(path.join(pd, 'good-service.js'), good('good'));
    write(path.join(pd, 'syntax-error.js'), "module.exports = { name: 'broken', kind: 'service' ,, };\n");
    write(
      path.join(pd, 'throws-on-create.js'),
      good('thrower').replace('create(ctx) {', "create(ctx) { throw new Error('cannot reach the API');"),
    );
    write(path.join(pd, 'wrong-api.js'), good('future').replace("apiVersion: '^1.0.0'", "apiVersion: '^2.0.0'"));
    write(path.join(pd, 'duplicate-name.js'), good('files'));
    write(
      path.join(pd, 'bad-options.js'),
      good('opinionated', "optionsSchema: { properties: { level: { type: 'integer' } }, required: ['level'] },"),
    );
    write(path.join(pd, 'bad-schema.js'), good('badschema', "optionsSchema: { properties: { level: { type: 'integr' } } },"));
    write(path.join(pd, 'not-a-plugin.js'), 'module.exports = 42;\n');
    write(path.join(pd, 'writable.js'), good('writable'), 0o666);
    write(path.join(pd, 'not-root.js'), good('notroot'));
    fs.chownSync(path.join(pd, 'not-root.js'), 65534, 65534);
    write(path.join(pd, 'esm.mjs'), good('esm').replace('module.exports =', 'export default'));
    write(path.join(pd, 'folder-plugin/package.json'), JSON.stringify({ name: 'folder-plugin', main: 'lib/main.js' }));
    write(path.join(pd, 'folder-plugin/lib/main.js'), good('folder'));
    write(path.join(pd, 'README.txt'), 'not code, ignored');
    write(path.join(pd, 'escapes/package.json'), JSON.stringify({ main: '../../outside.js' }));
    write(path.join(dir, 'outside.js'), good('outside'));
    write(path.join(pd, 'refs.js'), good('refs').replace('serviceSchema: {', "serviceSchema: { definitions: { p: { type: 'string' } },"));
    write(path.join(dir, 'elsewhere/linked.js'), good('linked'), 0o666);
    fs.symlinkSync(path.join(dir, 'elsewhere/linked.js'), path.join(pd, 'linked.js'));
    write(path.join(dir, 'data/f.txt'), 'hello');
    cfg = write(
      path.join(dir, 'ha.yaml'),
      basicConfig(dir, {
        services: [
          '  - name: uses-good\n    type: good\n    src: ./data',
          '  - name: uses-esm\n    type: esm\n    src: ./data',
          '  - name: uses-folder\n    type: folder\n    src: ./data',
          '  - name: uses-files\n    type: files\n    paths: [./data]',
        ].join('\n'),
      }) + 'plugins:\n  opinionated:\n    level: high\n',
    );
  });

  it('plugins list names every failure with its file and reason', async () => {
    const r = await runCli(['plugins', 'list', '--json', '--config', cfg]);
    expect(r.code).toBe(0);
    const recs = json<Rec[]>(r);
    const by = (n: string): Rec | undefined => recs.find((x) => x.name === n && (n !== 'files' || x.source === 'plugins.d'));
    for (const n of ['good', 'esm', 'folder']) expect(by(n)).toMatchObject({ status: 'loaded', source: 'plugins.d', kind: 'service' });
    expect(recs.find((x) => x.name === 'files' && x.source === 'built-in')).toMatchObject({ status: 'loaded' });
    expect(recs.find((x) => x.name === 'host')).toMatchObject({ status: 'loaded', source: 'built-in' });
    expect(by('syntax-error')).toMatchObject({ status: 'failed', reason: expect.stringContaining('syntax error') });
    expect(by('thrower')).toMatchObject({ status: 'failed', reason: 'create() failed: cannot reach the API' });
    expect(by('future')).toMatchObject({
      status: 'failed',
      reason: expect.stringContaining('needs plugin API ^2.0.0, but this homelab-autopilot provides 1.5.0'),
    });
    expect(by('files')).toMatchObject({
      status: 'failed',
      reason: expect.stringMatching(/^duplicate name: 'files' is already provided by .*dist\/plugins\/services\/files$/),
    });
    expect(by('opinionated')).toMatchObject({ status: 'failed', reason: expect.stringContaining('bad options: ') });
    expect(by('opinionated')?.reason).toMatch(/ha\.yaml:\d+:\d+: plugins\.opinionated\.level: must be integer \(got string "high"\)/);
    expect(by('badschema')).toMatchObject({
      status: 'failed',
      reason: expect.stringContaining('optionsSchema is not a valid JSON schema'),
    });
    expect(by('not-a-plugin')).toMatchObject({ status: 'failed', reason: expect.stringContaining('exports no plugin definition') });
    expect(by('writable')).toMatchObject({
      status: 'failed',
      reason: expect.stringMatching(/refused: file .*writable\.js is writable by group or others \(mode 666\): run chmod go-w/),
    });
    expect(by('not-root')).toMatchObject({
      status: 'failed',
      reason: expect.stringMatching(/refused: file .*not-root\.js is owned by uid 65534, not root: run chown root:root/),
    });
    expect(recs.some((x) => x.file.endsWith('README.txt'))).toBe(false);
    expect(by('escapes')).toMatchObject({ status: 'failed', reason: expect.stringContaining('points outside the plugin folder') });
    expect(recs.some((x) => x.name === 'outside')).toBe(false);
    expect(by('refs')).toMatchObject({ status: 'failed', reason: expect.stringContaining('serviceSchema must be self-contained') });
    expect(by('linked')).toMatchObject({
      status: 'failed',
      reason: expect.stringMatching(/refused: file .*elsewhere\/linked\.js is writable by group or others/),
    });
  });

  it('the human listing shows the same, and the failures are logged as warnings', async () => {
    const r = await runCli(['plugins', 'list', '--config', cfg]);
    expect(r.stdout).toMatch(/^good\s+service\s+1\.2\.3\s+plugins\.d\s+loaded/m);
    expect(r.stdout).toMatch(
      /^thrower\s+service\s+1\.2\.3\s+plugins\.d\s+failed\s+.*throws-on-create\.js: create\(\) failed: cannot reach the API/m,
    );
    expect(r.stderr).toMatch(/warn .*plugin thrower \(.*throws-on-create\.js\) was not loaded: create\(\) failed/);
  });

  it('backup --all runs every service whose plugin loaded', async () => {
    const r = await runCli(['backup', '--all', '--json', '--config', cfg]);
    expect(r.code).toBe(0);
    const report = json(r);
    expect(report.services.map((s: { service: string; status: string }) => [s.service, s.status])).toEqual([
      ['uses-good', 'success'],
      ['uses-esm', 'success'],
      ['uses-folder', 'success'],
      ['uses-files', 'success'],
    ]);
  });

  it('a service whose plugin failed fails alone, saying why and what is installed', async () => {
    const cfg2 = write(path.join(dir, 'ha2.yaml'), fs.readFileSync(cfg, 'utf8').replace('type: esm', 'type: thrower'));
    const r = await runCli(['backup', '--all', '--json', '--config', cfg2]);
    expect(r.code).toBe(1);
    const s = json(r).services.find((x: { service: string }) => x.service === 'uses-esm');
    expect(s.status).toBe('failed');
    expect(s.error).toContain("needs the service plugin 'thrower', which failed to load: create() failed: cannot reach the API");
    const v = await runCli(['config', 'validate', '--config', cfg2]);
    expect(v.code).toBe(2);
    expect(v.stderr).toMatch(/ha2\.yaml:\d+:\d+: services\.uses-esm\.type: the service plugin 'thrower' failed to load/);
  });

  it('the shipped examples in examples/plugins.d all load', async () => {
    const r = await runCli(['plugins', 'list', '--json', '--config', path.join(ROOT, 'examples', 'quickstart.yaml')]);
    const recs = json<Rec[]>(r);
    expect(recs.filter((x) => x.source === 'plugins.d').map((x) => [x.name, x.kind, x.status])).toEqual([
      ['dump', 'service', 'loaded'],
      ['jsonl-notify', 'notification', 'loaded'],
      ['systemd-units', 'hypervisor', 'loaded'],
    ]);
  });
});
