import * as path from 'node:path';

/**
 * The folder that holds bin/, core/, lib/ and plugins/ (dist/ once built). Worked out from
 * this file's folder, which is one level down, as is the bundled CLI
 * (dist/bin/cli.bundle.js): the answer is the same from the bundle and from the modules.
 */
export const CODE_ROOT = path.resolve(__dirname, '..');

let version: string | null = null;
/** homelab-autopilot's own version (package.json beside dist/, or beside the sources under ts-jest). */
export function hostVersion(): string {
  if (version === null) {
    const fs = require('node:fs') as typeof import('node:fs'); // eslint-disable-line @typescript-eslint/no-require-imports -- read once, on demand
    const candidates = [path.join(CODE_ROOT, '..', 'package.json'), path.join(CODE_ROOT, 'package.json')];
    const file = candidates.find((f) => fs.existsSync(f));
    version = file ? String((JSON.parse(fs.readFileSync(file, 'utf8')) as { version?: string }).version ?? '0.0.0') : '0.0.0';
  }
  return version;
}
