// Writes oclif.manifest.json after a build, so that the CLI does not load every command
// module at start-up to learn their flags (what `oclif manifest` does, without its CLI).
// The commands come from bin/cli.ts's explicit list; the build fails when that list and the
// files in bin/commands/ disagree (a command written but not listed would be missing).
const fs = require('node:fs');
const path = require('node:path');
const { Plugin } = require('@oclif/core');

(async () => {
  const root = path.join(__dirname, '..');
  const plugin = new Plugin({ root, type: 'core', ignoreManifest: true, errorOnManifestCreate: true });
  await plugin.load();
  const dir = path.join(root, 'dist', 'bin', 'commands');
  const files = fs
    .readdirSync(dir, { recursive: true })
    .filter((f) => f.endsWith('.js'))
    .map((f) => f.slice(0, -3).split(path.sep).join(':'))
    .sort();
  const listed = Object.keys(plugin.manifest.commands).sort();
  if (files.join() !== listed.join()) {
    throw new Error(
      `bin/cli.ts lists the commands ${listed.join(', ')}, but bin/commands/ holds ${files.join(', ')}: make COMMANDS match the files`,
    );
  }
  fs.writeFileSync(path.join(root, 'oclif.manifest.json'), JSON.stringify(plugin.manifest, null, 2) + '\n');
  console.log(`oclif.manifest.json: ${Object.keys(plugin.manifest.commands).length} commands`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
