#!/usr/bin/env node
'use strict';
// Entry point of the homelab-autopilot CLI. `--version` is answered here without loading
// oclif, so that a health check or a packaging script gets its answer at once.
const path = require('node:path');

const argv = process.argv.slice(2);
if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v')) {
  const pkg = require(path.join(__dirname, '..', 'package.json'));
  process.stdout.write(`${pkg.name}/${pkg.version} ${process.platform}-${process.arch} node-${process.version}\n`);
  process.exit(0);
}

// the CLI bundled into one file at build time (scripts/bundle.js): oclif and our commands
// with what they load at start, so that a cold start reads one file, not a few hundred
let cli;
try {
  cli = require('../dist/bin/cli.bundle.js');
} catch (e) {
  if (e && e.code === 'MODULE_NOT_FOUND' && /cli\.bundle\.js/.test(e.message)) {
    process.stderr.write(
      'error: dist/bin/cli.bundle.js is missing: this copy of homelab-autopilot is not built (run `npm run build` in its folder)\n',
    );
    process.exit(70);
  }
  throw e;
}
cli.execute({ dir: __dirname }).catch((err) => {
  process.stderr.write(`error: ${err && err.message ? err.message : String(err)}\n`);
  process.exitCode = process.exitCode || 70;
});
