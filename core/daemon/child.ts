/**
 * A job as a child process of this same CLI: node, the CLI's entry and the job's arguments with
 * the daemon's --config, in a process group of its own (a Ctrl-C on the daemon's terminal reaches
 * the daemon only, which gives the job its deadline first). Its output goes to the daemon's log,
 * line by line. A job that crashes ends its own process, never the daemon.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CODE_ROOT } from '../paths';

export interface JobEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** set when the process could not be started */
  error?: string;
}

export interface JobProcess {
  pid?: number;
  kill(signal: NodeJS.Signals): void;
  done: Promise<JobEnd>;
}

/** Starts one run; `onLine` gets each line of its output. */
export type StartJob = (argv: string[], onLine: (stream: 'stdout' | 'stderr', line: string) => void) => JobProcess;

/** The CLI's entry point (bin/run.js) beside the built code, or beside the sources under ts-jest. */
export function cliEntry(): string {
  const candidates = [path.join(CODE_ROOT, '..', 'bin', 'run.js'), path.join(CODE_ROOT, 'bin', 'run.js')];
  return candidates.find((f) => fs.existsSync(f)) ?? candidates[0];
}

export interface CliJobOptions {
  node?: string;
  entry?: string;
  configFile: string;
  /** added after the job's own (the daemon's --log-level and --log-format) */
  extraArgs?: string[];
  env?: NodeJS.ProcessEnv;
}

function lines(stream: NodeJS.ReadableStream | null, each: (line: string) => void): void {
  let rest = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk: string) => {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop() ?? '';
    for (const l of parts) if (l.trim()) each(l.replace(/\r$/, ''));
  });
  stream?.on('end', () => rest.trim() && each(rest));
}

export function cliJobStarter(opts: CliJobOptions): StartJob {
  const node = opts.node ?? process.execPath;
  const entry = opts.entry ?? cliEntry();
  return (argv, onLine) => {
    const child = spawn(node, [entry, ...argv, '--config', opts.configFile, ...(opts.extraArgs ?? [])], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      detached: true,
      shell: false,
    });
    lines(child.stdout, (l) => onLine('stdout', l));
    lines(child.stderr, (l) => onLine('stderr', l));
    const done = new Promise<JobEnd>((resolve) => {
      child.on('error', (e) => resolve({ code: null, signal: null, error: e.message }));
      child.on('close', (code, signal) => resolve({ code, signal }));
    });
    return {
      pid: child.pid,
      kill: (sig) => {
        if (child.exitCode === null && child.signalCode === null) child.kill(sig);
      },
      done,
    };
  };
}
