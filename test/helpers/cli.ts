/** Running the built CLI as a child process, in temporary folders, the way a user would. */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const BIN = path.join(ROOT, 'bin', 'run.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /**
   * Runs the command as if it ran this much later: its wall clock (Date) is moved forward by a
   * preloaded test helper (clock-offset.js); timers and durations are not. Instead of waiting
   * for what state remembers across runs (cooldowns, names with one-second resolution). Keep
   * the offsets of one state folder growing from run to run, as real time does.
   */
  clockOffsetMs?: number;
}

function cliEnv(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  // never pick up the machine's own config
  const env: NodeJS.ProcessEnv = { ...process.env, HOMELAB_AUTOPILOT_CONFIG: '', ...extra };
  delete env.FORCE_COLOR;
  return env;
}

const CLOCK_OFFSET = path.join(__dirname, 'clock-offset.js');

export function startCli(args: string[], opts: CliOptions = {}): ChildProcess {
  const shifted = opts.clockOffsetMs ? ['--require', CLOCK_OFFSET] : [];
  return spawn(process.execPath, [...shifted, BIN, ...args], {
    cwd: opts.cwd ?? os.tmpdir(),
    env: cliEnv(opts.clockOffsetMs ? { ...opts.env, HA_TEST_CLOCK_OFFSET_MS: String(opts.clockOffsetMs) } : opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export function collect(child: ChildProcess, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`CLI did not finish within ${timeoutMs}ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return collect(startCli(args, opts), opts.timeoutMs);
}

/** Parses --json output, failing with the whole output when it is not JSON. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- by default untyped: the tests check the output's shape with expect
export function json<T = any>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`stdout is not JSON (exit ${r.code}):\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
}

const made: string[] = [];

export function tmpDir(prefix = 'ha-test-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}

export function cleanupTmp(): void {
  for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

export function write(file: string, content: string | Buffer, mode?: number): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
  if (mode !== undefined) fs.chmodSync(file, mode);
  return file;
}

/** A config for a files service backing up `paths`, with state, logs and backups under `dir`. */
export function basicConfig(dir: string, extra: { services?: string; backup?: string; global?: string } = {}): string {
  return `global:
  state_dir: ${dir}/state
  log_dir: ${dir}/logs
${extra.global ?? ''}
backup:
  root: ${dir}/backups
${extra.backup ?? ''}
services:
${extra.services ?? ''}
`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
