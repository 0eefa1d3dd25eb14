import * as Args from '@oclif/core/args';
import * as Flags from '@oclif/core/flags';
import type { RestorePoint, RestoreProgress, RestoreReport } from '../../core/restore/engine';
import { EXIT } from '../../lib/errors';
import { stderrStatus } from '../../lib/status-line';
import { BaseCommand } from '../base';
import { formatBytes, formatDuration, localTime, stepLine, table } from '../render';

type Engine = typeof import('../../core/restore/engine');

export default class Restore extends BaseCommand<typeof Restore> {
  protected static override writesLogFile = true;
  static override summary = 'Restore a file archive of a service (files, host) into a folder, or over its original paths.';
  static override description = `Takes the newest verified archive whose file is present (or the one --archive or --at names, at the destination --from names), verifies it against its recorded sha256 and decompresses it in full before anything is touched, then extracts it: into --to FOLDER (created; members keep their paths, so /srv/photos/a.jpg lands in FOLDER/srv/photos/a.jpg), or with --in-place --yes over the original paths, after a safety archive of what is there now (<service>_pre-restore_… in backup.root; put back if the extraction fails). Last, every file the archive lists is checked to be there with its size. See docs/restore.md.

Exit codes: 0 restored, 1 verification, extraction or check failed, 2 bad usage (unknown service, a type restore does not handle yet, a folder that is not empty, no such archive), 75 a backup run holds the lock, 130/143 interrupted.`;
  static override examples = [
    { description: 'What can be restored', command: '<%= config.bin %> restore photos --list' },
    { description: 'The newest verified archive into a folder', command: '<%= config.bin %> restore photos --to /tmp/photos-restore' },
    {
      description: 'As it was on a day, from the NAS copy',
      command: '<%= config.bin %> restore photos --at 2026-11-20 --from nas --to /tmp/r',
    },
    { description: 'Over the original paths', command: '<%= config.bin %> restore photos --in-place --yes' },
  ];
  static override args = { service: Args.string({ required: true, description: 'the service (a name from the config)' }) };
  static override flags = {
    list: Flags.boolean({ char: 'l', summary: 'List what can be restored (every destination, newest first); restore nothing.' }),
    archive: Flags.integer({ min: 1, helpValue: 'ID', summary: 'The archive to restore, by its id (restore SERVICE --list).' }),
    at: Flags.string({
      helpValue: 'TIME',
      summary: 'The newest verified archive made at or before TIME (2026-11-22, "2026-11-22 14:30").',
    }),
    from: Flags.string({
      helpValue: 'DESTINATION',
      summary: 'Take the archive at this destination (primary, or a backup.destinations name).',
    }),
    to: Flags.string({ helpValue: 'FOLDER', summary: 'Restore into this folder (created; refused when not empty, unless --force).' }),
    'in-place': Flags.boolean({
      summary: 'Restore over the original paths (needs --yes; a safety archive of what is there is written first).',
    }),
    yes: Flags.boolean({ char: 'y', summary: 'Confirm --in-place.' }),
    force: Flags.boolean({ summary: 'Restore into a folder that is not empty (files of the same name are replaced).' }),
    'dry-run': Flags.boolean({ char: 'n', summary: 'Say which archive, where and how big; change nothing.' }),
  };

  async run(): Promise<RestoreReport | RestorePoint[]> {
    const { args, flags } = await this.parse(Restore);
    const dryRun = Boolean(flags['dry-run']);
    const readOnly = dryRun || flags.list;
    const app = await this.openApp(readOnly ? 'ro' : 'rw', { plugins: false, secrets: false });
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded when a restore runs
    const engine = require('../../core/restore/engine') as Engine;
    const deps = { config: app.loaded.config, state: app.state, logger: app.logger, signal: this.controller.signal };
    if (flags.list) {
      const points = engine.listRestorable(deps, args.service);
      this.out(points.length ? renderList(points) : `no archives recorded for ${args.service}`);
      return points;
    }
    const tty = !this.jsonEnabled() && process.stderr.isTTY;
    const r = await engine.restoreService(
      {
        ...deps,
        onProgress: tty ? progressRenderer() : undefined,
        onStep: this.jsonEnabled() || dryRun ? undefined : (service, s) => stderrStatus.writeAbove(stepLine(service, s)),
      },
      {
        service: args.service,
        archive: flags.archive,
        at: flags.at,
        from: flags.from,
        to: flags.to,
        inPlace: flags['in-place'],
        yes: flags.yes,
        force: flags.force,
        dryRun,
      },
    );
    stderrStatus.clear();
    if (r.status === 'interrupted') process.exitCode = this.interruptedExit;
    else if (r.status === 'failed') process.exitCode = r.code === 'LOCKED' ? EXIT.LOCKED : EXIT.JOB_FAILED;
    this.out(render(r));
    return r;
  }
}

/** One line redrawn in place on a terminal's stderr, at most every 200 ms. */
function progressRenderer(): (p: RestoreProgress) => void {
  let last = 0;
  return (p) => {
    const now = Date.now();
    if (now - last < 200) return;
    last = now;
    if (p.phase === 'verify')
      stderrStatus.show(
        `${p.service}: verifying ${formatBytes(p.bytes)} of ${formatBytes(p.total)} (${Math.floor((p.bytes / (p.total || 1)) * 100)} %)`,
      );
    else if (p.phase === 'safety') stderrStatus.show(`${p.service}: safety archive, ${formatBytes(p.bytes)} written`);
    else stderrStatus.show(`${p.service}: extracting, ${p.entries} of ${p.total} entries`);
  };
}

function renderList(points: RestorePoint[]): string {
  return table(
    ['ID', 'CREATED', 'DESTINATION', 'SIZE', 'VERIFIED', 'STATE', 'KIND', 'LOCATION'],
    points.map((p) => [
      p.id,
      localTime(p.createdAt),
      p.destination,
      formatBytes(p.size),
      p.verifyStatus === 'failed' ? 'FAILED' : (p.verifyStatus ?? 'no'),
      p.present ? 'present' : 'MISSING',
      p.kind,
      p.location,
    ]),
  );
}

function render(r: RestoreReport): string {
  const a = r.archive;
  const what = `archive ${a.id} (${a.destination}, ${localTime(a.createdAt)}, ${formatBytes(a.size)}): ${a.location}`;
  if (r.dryRun) {
    const lines = ['dry run: nothing is changed', '', `${r.service} (${r.type}): ${what}`, `  ${r.reason}`, `  into ${r.target}`];
    r.steps.forEach((st, i) => lines.push(`  ${i + 1}. ${st.step.padEnd(9)} ${st.detail}`));
    return lines.join('\n');
  }
  const lines =
    r.status === 'success'
      ? [
          `${r.service}: restored ${what}`,
          `  into ${r.target}: ${r.files} files, ${formatBytes(r.bytes)} (${formatDuration(r.durationMs)})`,
        ]
      : [`${r.service}: RESTORE ${r.status === 'interrupted' ? 'INTERRUPTED' : 'FAILED'}: ${r.error ?? ''}`, `  ${what}`];
  if (r.safety) lines.push(`  safety archive of what was there before: ${r.safety.path}`);
  if (r.undo === 'done') lines.push('  the safety archive was put back');
  if (r.hint) lines.push(`  hint: ${r.hint}`);
  return lines.join('\n');
}
