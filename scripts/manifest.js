// Writes oclif.manifest.json after a build, so that the CLI does not load every command
// module at start-up to learn their flags (what `oclif manifest` does, without its CLI).
const fs = require('node:fs');
const path = require('node:path');
const { Plugin } = require('@oclif/core');

(async () => {
  const root = path.join(__dirname, '..');
  const plugin = new Plugin({ root, type: 'core', ignoreManifest: true, errorOnManifestCreate: true });
  await plugin.load();
  fs.writeFileSync(path.join(root, 'oclif.manifest.json'), JSON.stringify(plugin.manifest, null, 2) + '\n');
  console.log(`oclif.manifest.json: ${Object.keys(plugin.manifest.commands).length} commands`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
