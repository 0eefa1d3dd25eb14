import * as path from 'node:path';

/**
 * The folder that holds bin/, core/, lib/ and plugins/ (dist/ once built). Worked out from
 * this file's folder, which is one level down, as is the bundled CLI
 * (dist/bin/cli.bundle.js): the answer is the same from the bundle and from the modules.
 */
export const CODE_ROOT = path.resolve(__dirname, '..');
