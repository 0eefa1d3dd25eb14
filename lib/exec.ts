/**
 * Running external commands: never through a shell, always with an argument array,
 * a timeout and an AbortSignal. Output is captured up to a bound.
 */
import { spawn } from 'node:child_process';
import { AutopilotError } from './errors';
import { mask } from './mask';

export interface ExecOptions {
  signal?: AbortSignal;
  /** milliseconds; 0 for none */
  timeoutMs?: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
  /** bytes of stdout and of stderr kept (default 1 MiB each) */
  maxOutput?: number;
}

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command and resolves with its output whatever its exit code; rejects only when it cannot run, times out or is aborted. */
export function execFile(cmd: string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  const maxOutput = options.maxOutput ?? 1024 * 1024;
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(new AutopilotError('ABORTED', `${cmd} was not started: the operation was cancelled`));
      return;
    }
    const child = spawn(cmd, [...args], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      shell: false,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    let settled = false;
    let timedOut = false;
    let aborted = false;

    const onAbort = (): void => {
      aborted = true;
      child.kill('SIGTERM');
      setTimeout(() => child.exitCode === null && child.kill('SIGKILL'), 5000).unref();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const timer =
      options.timeoutMs && options.timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            child.kill('SIGTERM');
            setTimeout(() => child.kill('SIGKILL'), 2000).unref();
          }, options.timeoutMs)
        : undefined;

    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      fn();
    };

    child.stdout.on('data', (chunk: Buffer) => {
      if (outLen < maxOutput) out.push(chunk);
      outLen += chunk.length;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (errLen < maxOutput) err.push(chunk);
      errLen += chunk.length;
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      finish(() =>
        reject(
          new AutopilotError('EXEC_FAILED', e.code === 'ENOENT' ? `command not found: ${cmd}` : `could not run ${cmd}: ${e.message}`, {
            cause: e,
            hint: e.code === 'ENOENT' ? `install ${cmd} or check PATH` : undefined,
          }),
        ),
      );
    });
    child.on('close', (code, sig) => {
      finish(() => {
        if (aborted) {
          reject(new AutopilotError('ABORTED', `${cmd} was cancelled`));
        } else if (timedOut) {
          reject(new AutopilotError('TIMEOUT', `${cmd} did not finish within ${Math.round((options.timeoutMs ?? 0) / 1000)}s`));
        } else {
          resolve({
            code,
            signal: sig,
            stdout: Buffer.concat(out).toString('utf8'),
            stderr: Buffer.concat(err).toString('utf8'),
          });
        }
      });
    });
    child.stdin.on('error', () => {
      /* the command may exit without reading its input */
    });
    if (options.input !== undefined) child.stdin.end(options.input);
    else child.stdin.end();
  });
}

/** Runs a command and returns its stdout; a non-zero exit becomes an EXEC_FAILED error carrying its stderr. */
export async function execChecked(cmd: string, args: readonly string[], options: ExecOptions = {}): Promise<string> {
  const res = await execFile(cmd, args, options);
  if (res.code !== 0) {
    const why = res.stderr.trim().split('\n').slice(-5).join(' | ') || `exit code ${res.code ?? res.signal}`;
    throw new AutopilotError('EXEC_FAILED', mask(`${cmd} failed: ${why}`));
  }
  return res.stdout;
}

/**
 * Splits a command line into words the way a POSIX shell would for plain words and
 * quotes, without expanding anything (no variables, globs, pipes or redirections).
 * Used for `*_command` settings given as one string.
 */
export function splitCommandLine(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote === "'") {
      if (c === "'") quote = null;
      else cur += c;
      continue;
    }
    if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '\\' && i + 1 < line.length && '"\\$`'.includes(line[i + 1])) cur += line[++i];
      else cur += c;
      continue;
    }
    if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      cur += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else if ('|&;<>'.includes(c)) {
      throw new Error(`shell operator '${c}' is not supported: commands run without a shell; wrap a pipeline in a script`);
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw new Error('unterminated quote');
  if (inWord) words.push(cur);
  return words;
}

/** Names that reach a command line (service names, destinations) must be plain. */
export const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function assertSafeName(kind: string, name: string): void {
  if (!SAFE_NAME.test(name)) {
    throw new AutopilotError(
      'USAGE',
      `invalid ${kind} name '${name}': use letters, digits, '.', '_' and '-' (at most 64, starting with a letter or digit)`,
    );
  }
}
