// Bundles the CLI (dist/bin/cli.js: oclif's execute and every command, with the core and
// library modules and the packages they load) into one file, dist/bin/cli.bundle.js, which
// bin/run.js starts. A start then reads one file instead of a few hundred, which is what a
// cron job starting from a cold page cache waits for. Modules required lazily stay lazy:
// esbuild keeps each CommonJS module behind its own initialiser.
//
// Left outside the bundle: the LAZY packages below, better-sqlite3 (its native addon is
// found relative to its own package), typescript (only cosmiconfig's optional .ts config
// loader asks for it, and it is not a run-time dependency), the built-in plugins (discovered
// as files, like plugins.d) and the precompiled validators (loaded by path when needed).
const path = require('node:path');
const esbuild = require('esbuild');

// Packages that a usual run never loads (they are required lazily, when needed): left in
// node_modules, so that every start does not have to parse them. ajv compiles the schemas of
// plugins.d plugins (the built-ins' are precompiled); semver checks plugins.d plugins'
// versions; yaml finds line:col for an error message and writes `config show`; cosmiconfig
// searches for a config file that was not named.
const LAZY = ['ajv', 'semver', 'yaml', 'cosmiconfig', 'prom-client'];

const dist = path.join(__dirname, '..', 'dist');
const outfile = path.join(dist, 'bin', 'cli.bundle.js');

esbuild
  .build({
    entryPoints: [path.join(dist, 'bin', 'cli.js')],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    external: ['better-sqlite3', 'typescript', ...LAZY],
    logLevel: 'warning',
    legalComments: 'inline',
  })
  .then(() => console.log(`bundled the CLI into ${path.relative(process.cwd(), outfile)}`))
  .catch(() => process.exit(1));
