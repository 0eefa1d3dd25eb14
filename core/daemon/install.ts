/**
 * `install systemd|cron` and `uninstall`: the daemon's unit (or the cron file) rendered from
 * templates/ with the real paths of node, the CLI and the config, written only over a file of
 * ours (the marker line), then systemctl when systemd runs. Everything under `root` (/ but in
 * tests). Nothing here prints; the plan says what is written and run.
 */
import { durationSeconds } from '../../lib/duration';
import { monitorSchedule } from '../monitor/schedule';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AutopilotError } from '../../lib/errors';
import { execFile } from '../../lib/exec';
import type { AutopilotConfig } from '../config/types';
import { CODE_ROOT } from '../paths';
import { jobsFromConfig } from './jobs';

export type InstallKind = 'systemd' | 'cron';

export const MARKER = '# Written by homelab-autopilot install: rerun it to change this file, remove it with homelab-autopilot uninstall.';
export const UNIT_NAME = 'homelab-autopilot.service';
/** between the daemon's shutdown_timeout and systemd's SIGKILL: the jobs' grace after SIGTERM, and some more */
export const STOP_MARGIN_S = 60;

export interface InstallOptions {
  kind: InstallKind;
  config: AutopilotConfig;
  configFile: string;
  /** default: root */
  user?: string;
  node?: string;
  cli?: string;
  /** default / (tests: a temporary folder) */
  root?: string;
  force?: boolean;
}

export interface PlannedFile {
  path: string;
  action: 'write' | 'remove' | 'unchanged' | 'absent';
  content?: string;
}

export interface InstallPlan {
  kind: InstallKind;
  files: PlannedFile[];
  /** run in order when systemd runs (systemd only) */
  commands: string[][];
  /** whether the commands can run here (systemd runs) */
  systemd: boolean;
  notes: string[];
}

function codeFile(...parts: string[]): string {
  const candidates = [path.join(CODE_ROOT, '..', ...parts), path.join(CODE_ROOT, ...parts)];
  return candidates.find((f) => fs.existsSync(f)) ?? candidates[0];
}

export function targetFile(kind: InstallKind, root = '/'): string {
  return kind === 'systemd' ? path.join(root, 'etc/systemd/system', UNIT_NAME) : path.join(root, 'etc/cron.d/homelab-autopilot');
}

/** Whether systemd is the init of this system (sd_booted(3)). */
export function systemdRuns(root = '/'): boolean {
  return fs.existsSync(path.join(root, 'run/systemd/system'));
}

/** One word of a unit's command line: quoted when needed; % and $ doubled (specifiers, variables). */
export function systemdWord(w: string): string {
  const s = w.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** One word of a cron line (run by /bin/sh): single-quoted when needed; % escaped (cron makes it a newline). */
export function cronWord(w: string): string {
  const s = /^[A-Za-z0-9_@+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, "'\\''")}'`;
  return s.replace(/%/g, '\\%');
}

function under(p: string, dir: string): boolean {
  const rel = path.relative(dir, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** What the daemon and its jobs write: state, logs, the schema cache, the backup root and every destination. */
export function writablePaths(config: AutopilotConfig): string[] {
  const paths = [
    config.global.state_dir,
    config.global.log_dir,
    '/var/cache/homelab-autopilot',
    config.backup.root,
    ...config.backup.destinations.map((d) => d.path),
    ...(config.metrics?.textfile ? [path.dirname(config.metrics.textfile)] : []),
  ].map((p) => path.resolve(p));
  return [...new Set(paths)];
}

export function renderUnit(o: InstallOptions): string {
  const template = fs.readFileSync(codeFile('templates', 'systemd', UNIT_NAME), 'utf8');
  const rw = writablePaths(o.config);
  const exec = [o.node ?? process.execPath, o.cli ?? codeFile('bin', 'run.js'), 'daemon', '--config', o.configFile];
  const values: Record<string, string> = {
    USER: o.user && o.user !== 'root' ? `User=${o.user}\n` : '',
    EXEC_START: exec.map(systemdWord).join(' '),
    TIMEOUT_STOP: String(o.config.daemon.shutdown_timeout + STOP_MARGIN_S),
    // '-': a folder that does not exist yet does not stop the unit from starting
    READ_WRITE_PATHS: rw.map((p) => systemdWord(`-${p}`)).join(' '),
    PROTECT_HOME: rw.some((p) => under(p, '/home')) ? 'no' : 'read-only',
  };
  return `${MARKER}\n${template.replace(/@([A-Z_]+)@/g, (m, k: string) => values[k] ?? m)}`;
}

/**
 * The cron file: the template's header, then one line per job of `schedules:` (5-field
 * expressions only: cron has no seconds), or the template's nightly backup when none is set.
 */
export function renderCron(o: InstallOptions, notes: string[] = []): string {
  const template = fs.readFileSync(codeFile('templates', 'cron', 'homelab-autopilot'), 'utf8').split('\n');
  // the template's environment lines; its comments describe its own nightly line
  const head = [
    `# /etc/cron.d/homelab-autopilot: the jobs of schedules: in ${o.configFile} (docs/daemon.md)`,
    ...template.filter((l) => /^[A-Z_]+=/.test(l)),
  ];
  const cli = [o.node ?? process.execPath, o.cli ?? codeFile('bin', 'run.js')];
  const user = o.user ?? 'root';
  const jobs = jobsFromConfig(o.config.schedules).filter((j) => {
    const five = j.cron.trim().split(/\s+/).length === 5;
    if (!five) notes.push(`schedules.${j.name} ("${j.cron}") has a seconds field, which cron does not have: left out of the cron file`);
    return five;
  });
  const lines = jobs.map((j) => `${j.cron} ${user} ${[...cli, ...j.argv, '--config', o.configFile].map(cronWord).join(' ')} >/dev/null`);
  // schedules.monitor: a `monitor` pass every interval, in whole minutes (cron's finest step)
  const mon = monitorSchedule(o.config.schedules);
  if (mon) {
    const minutes = Math.max(1, Math.round((mon.interval ?? durationSeconds(o.config.monitoring.interval)) / 60));
    const every = minutes === 1 ? '*' : minutes < 60 ? `*/${minutes}` : '0';
    if (minutes >= 60 && minutes !== 60)
      notes.push(
        `schedules.monitor: every ${minutes} minutes is more than cron's minute field says: the cron file runs the monitor hourly`,
      );
    lines.push(`${every} * * * * ${user} ${[...cli, 'monitor', '--config', o.configFile].map(cronWord).join(' ')} >/dev/null`);
  }
  if (!jobs.length && !mon) {
    lines.push(
      `30 2 * * * ${user} ${[...cli, 'backup', '--all', '--lock-wait', '600', '--config', o.configFile].map(cronWord).join(' ')} >/dev/null`,
    );
    notes.push('no job in schedules: the cron file backs up every service at 02:30');
  } else if (!jobs.length) {
    lines.unshift(
      `30 2 * * * ${user} ${[...cli, 'backup', '--all', '--lock-wait', '600', '--config', o.configFile].map(cronWord).join(' ')} >/dev/null`,
    );
    notes.push('no backup in schedules: the cron file backs up every service at 02:30');
  }
  return `${MARKER}\n${head.join('\n')}\n\n${lines.join('\n')}\n`;
}

function existing(file: string): 'ours' | 'foreign' | 'none' {
  if (!fs.existsSync(file)) return 'none';
  return fs.readFileSync(file, 'utf8').split('\n', 1)[0] === MARKER ? 'ours' : 'foreign';
}

function refuseForeign(file: string, what: string): never {
  throw new AutopilotError('USAGE', `${file} was not written by homelab-autopilot install: not ${what} it`, {
    hint: 'look at it and move it away, or give --force',
  });
}

export function planInstall(o: InstallOptions): InstallPlan {
  const root = o.root ?? '/';
  const file = targetFile(o.kind, root);
  const notes: string[] = [];
  const content = o.kind === 'systemd' ? renderUnit(o) : renderCron(o, notes);
  const was = existing(file);
  if (was === 'foreign' && !o.force) refuseForeign(file, 'overwriting');
  const same = was === 'ours' && fs.readFileSync(file, 'utf8') === content;
  const systemd = o.kind === 'systemd' && systemdRuns(root);
  const commands =
    o.kind === 'systemd'
      ? [
          ['systemctl', 'daemon-reload'],
          ['systemctl', 'enable', '--now', UNIT_NAME],
        ]
      : [];
  if (o.kind === 'systemd' && !systemd) notes.push('systemd is not running here (a container?): run these commands where it is');
  if (same && o.kind === 'systemd')
    commands.splice(1, 1, ['systemctl', 'enable', UNIT_NAME], ['systemctl', 'reload-or-restart', UNIT_NAME]);
  return { kind: o.kind, files: [{ path: file, action: same ? 'unchanged' : 'write', content }], commands, systemd, notes };
}

export function planUninstall(kind: InstallKind, root = '/', force = false): InstallPlan {
  const file = targetFile(kind, root);
  const was = existing(file);
  if (was === 'foreign' && !force) refuseForeign(file, 'removing');
  const systemd = kind === 'systemd' && systemdRuns(root);
  const notes = was === 'none' ? [`${file} is not there: nothing to remove`] : [];
  const commands = kind === 'systemd' && was !== 'none' ? [['systemctl', 'disable', '--now', UNIT_NAME]] : [];
  if (commands.length) commands.push(['systemctl', 'daemon-reload']);
  if (commands.length && !systemd) notes.push('systemd is not running here (a container?): run these commands where it is');
  return { kind, files: [{ path: file, action: was === 'none' ? 'absent' : 'remove' }], commands, systemd, notes };
}

export interface Applied {
  ran: { command: string[]; ok: boolean; output: string }[];
}

async function run(cmd: string[], out: Applied): Promise<boolean> {
  try {
    const r = await execFile(cmd[0], cmd.slice(1), { timeoutMs: 120_000 });
    out.ran.push({ command: cmd, ok: r.code === 0, output: (r.stderr || r.stdout).trim() });
    return r.code === 0;
  } catch (e) {
    out.ran.push({ command: cmd, ok: false, output: (e as Error).message });
    return false;
  }
}

/** Writes (atomically) or removes the files, and runs the commands when systemd runs; stops at the first failing command. */
export async function applyPlan(plan: InstallPlan): Promise<Applied> {
  const out: Applied = { ran: [] };
  // a unit is disabled and stopped before its file goes
  const before = plan.files.some((f) => f.action === 'remove') ? plan.commands.slice(0, 1) : [];
  const after = plan.commands.slice(before.length);
  if (plan.systemd) for (const c of before) if (!(await run(c, out))) return out;
  for (const f of plan.files) {
    if (f.action === 'write') {
      fs.mkdirSync(path.dirname(f.path), { recursive: true });
      const tmp = `${f.path}.tmp-${process.pid}`;
      fs.writeFileSync(tmp, f.content ?? '', { mode: 0o644 });
      fs.renameSync(tmp, f.path);
    } else if (f.action === 'remove') fs.rmSync(f.path, { force: true });
  }
  if (plan.systemd) for (const c of after) if (!(await run(c, out))) return out;
  return out;
}
