import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as Validators from '../../core/config/validators';
import { cleanupTmp, tmpDir } from '../helpers/cli';

afterAll(cleanupTmp);

/** A fresh copy of the module (its in-memory map empty), as a new process would load it. */
function fresh(): typeof Validators {
  let mod: typeof Validators | undefined;
  jest.isolateModules(() => {
    mod = jest.requireActual<typeof Validators>('../../core/config/validators');
  });
  return mod!;
}

const schema = {
  type: 'object',
  properties: { path: { type: 'string', minLength: 1 }, level: { type: 'integer', minimum: 1, maximum: 19, default: 3 } },
  required: ['path'],
  additionalProperties: false,
};

describe('validators compiled at run time (a plugins.d plugin schema)', () => {
  const saved = process.env.HOMELAB_AUTOPILOT_CACHE_DIR;
  afterEach(() => {
    if (saved === undefined) delete process.env.HOMELAB_AUTOPILOT_CACHE_DIR;
    else process.env.HOMELAB_AUTOPILOT_CACHE_DIR = saved;
  });

  it('are kept in the cache folder, private, and the next start uses the kept code', () => {
    const root = tmpDir();
    process.env.HOMELAB_AUTOPILOT_CACHE_DIR = root;
    const first = fresh();
    const v = first.getValidator(schema);
    const data: Record<string, unknown> = { path: '/srv' };
    expect(v(data)).toBe(true);
    expect(data.level).toBe(3); // defaults applied, as with the precompiled validators
    expect(v({ path: '', extra: 1 })).toBe(false);
    expect(v.errors?.map((e) => e.keyword).sort()).toEqual(['additionalProperties', 'minLength']);

    const dir = first.validatorCacheDir()!;
    expect(dir).toBe(path.join(root, 'validators'));
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    const files = fs.readdirSync(dir);
    expect(files).toHaveLength(1);
    const file = path.join(dir, files[0]);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);

    // the kept code, loaded by a new start, validates the same way
    const again = fresh().getValidator(schema);
    const d2: Record<string, unknown> = { path: '/srv' };
    expect(again(d2)).toBe(true);
    expect(d2.level).toBe(3);
    expect(again({ path: 3 })).toBe(false);

    // and it is really the file that answers: a file whose validator refuses everything is used
    fs.writeFileSync(file, 'exports.validate = function v() { v.errors = [{ keyword: "cached" }]; return false; };\n', { mode: 0o600 });
    const marked = fresh().getValidator(schema);
    expect(marked({ path: '/srv' })).toBe(false);
    expect(marked.errors?.[0].keyword).toBe('cached');
  });

  it('ignore a cached file that others can write, in a folder another user owns, or a damaged one, and compile again', () => {
    const root = tmpDir();
    process.env.HOMELAB_AUTOPILOT_CACHE_DIR = root;
    fresh().getValidator(schema);
    const dir = path.join(root, 'validators');
    const file = path.join(dir, fs.readdirSync(dir)[0]);
    fs.writeFileSync(file, 'exports.validate = function () { return false; };\n');
    fs.chmodSync(file, 0o666);
    expect(fresh().getValidator(schema)({ path: '/srv' })).toBe(true);
    // compiling again wrote the file anew, private
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);

    // as root, a folder above it that another user owns could swap it: refused the same way as for a plugin
    if (process.getuid?.() === 0) {
      fs.writeFileSync(file, 'exports.validate = function () { return false; };\n', { mode: 0o600 });
      fs.chownSync(dir, 1000, 1000);
      expect(fresh().getValidator(schema)({ path: '/srv' })).toBe(true);
      fs.chownSync(dir, 0, 0);
    }

    fs.writeFileSync(file, 'this is not javascript {');
    expect(fresh().getValidator(schema)({ path: '/srv' })).toBe(true);
    expect(fs.readFileSync(file, 'utf8')).toMatch(/^\/\/ compiled by homelab-autopilot/);
  });

  it('are not kept when the cache is switched off, and an invalid schema is refused, not kept', () => {
    process.env.HOMELAB_AUTOPILOT_CACHE_DIR = '';
    const mod = fresh();
    expect(mod.validatorCacheDir()).toBeNull();
    expect(mod.getValidator(schema)({ path: '/x' })).toBe(true);

    const root = tmpDir();
    process.env.HOMELAB_AUTOPILOT_CACHE_DIR = root;
    const m2 = fresh();
    expect(() => m2.getValidator({ type: 'object', properties: { a: { type: 'no-such-type' } } })).toThrow(/schema is invalid/);
    expect(fs.existsSync(path.join(root, 'validators'))).toBe(false);
    // the same module can still compile a good schema afterwards
    expect(m2.getValidator(schema)({ path: '/x' })).toBe(true);
  });
});
