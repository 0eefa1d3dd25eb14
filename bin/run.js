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

// the execute entry alone: loading the whole of @oclif/core (help, ux, …) costs ~25 ms more at every start
require('@oclif/core/execute')
  .execute({ dir: __dirname })
  .catch((err) => {
    process.stderr.write(`error: ${err && err.message ? err.message : String(err)}\n`);
    process.exitCode = process.exitCode || 70;
  });
