import * as fs from 'node:fs';
import * as path from 'node:path';
import { runCli } from '../helpers/cli';

/**
 * The corpus of bad configs: each folder under test/fixtures/configs holds a
 * homelab-autopilot.yaml (and sometimes services.d/) and an expect.json naming the exit
 * code and the error lines (file:line:col: path: message) that must be reported.
 */
const CORPUS = path.join(__dirname, '..', 'fixtures', 'configs');
const cases = fs.readdirSync(CORPUS).filter((d) => fs.existsSync(path.join(CORPUS, d, 'expect.json')));

interface Expect {
  exit: number;
  errors: string[];
  absent?: string[];
}

describe('bad configs are reported with file, line, column and a clear message', () => {
  it('has a corpus to check', () => {
    expect(cases.length).toBeGreaterThanOrEqual(12);
  });

  for (const name of cases) {
    it(`${name}: config validate exits non-zero and names every problem`, async () => {
      const dir = path.join(CORPUS, name);
      const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expect.json'), 'utf8')) as Expect;
      const r = await runCli(['config', 'validate', '--config', path.join(dir, 'homelab-autopilot.yaml')], { cwd: dir });
      const stderr = r.stderr.split(dir + path.sep).join('');
      expect(r.code).toBe(expected.exit);
      for (const line of expected.errors) expect(stderr).toContain(line);
      expect(stderr).not.toMatch(/\n\s+at .+:\d+:\d+\)?\n/); // never a stack trace
      for (const secret of expected.absent ?? []) expect(r.stdout + r.stderr).not.toContain(secret);

      // the same errors as JSON, on stdout
      const j = await runCli(['config', 'validate', '--json', '--config', path.join(dir, 'homelab-autopilot.yaml')], { cwd: dir });
      expect(j.code).toBe(expected.exit);
      const body = JSON.parse(j.stdout) as { error: { code: string; message: string; details: string[] } };
      const all = [body.error.message, ...body.error.details]
        .join('\n')
        .split(dir + path.sep)
        .join('');
      for (const line of expected.errors) expect(all).toContain(line);
    });
  }

  it('backup refuses to run on a bad config, with the same errors and exit code 2', async () => {
    const dir = path.join(CORPUS, 'unknown-keys');
    const r = await runCli(['backup', '--all', '--config', path.join(dir, 'homelab-autopilot.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("global.log_levl: unknown key 'log_levl' (did you mean 'log_level'?)");
  });

  it('a config file that does not exist is named', async () => {
    const r = await runCli(['config', 'validate', '--config', '/nonexistent/ha.yaml']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('config file /nonexistent/ha.yaml (from --config) does not exist');
  });
});
