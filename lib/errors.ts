/**
 * Coded errors and the one table of exit codes.
 *
 * Everything below bin/ throws AutopilotError (or lets the CLI wrap an unexpected
 * error as INTERNAL). The CLI maps the code to an exit code here and nowhere else.
 */

export const EXIT = {
  /** everything asked for succeeded */
  OK: 0,
  /** a job ran and at least one part of it failed (a service backup, a verification) */
  JOB_FAILED: 1,
  /** bad usage, bad configuration, a missing plugin or file the user named */
  USAGE: 2,
  /** another run holds the lock for this job (sysexits EX_TEMPFAIL: try again later) */
  LOCKED: 75,
  /** an unexpected internal error: a bug, please report it (sysexits EX_SOFTWARE) */
  INTERNAL: 70,
  /** interrupted by SIGINT (128 + 2) */
  SIGINT: 130,
  /** interrupted by SIGTERM (128 + 15) */
  SIGTERM: 143,
} as const;

export type ErrorCode =
  | 'CONFIG_NOT_FOUND'
  | 'CONFIG_INVALID'
  | 'SECRET_FAILED'
  | 'USAGE'
  | 'PLUGIN_MISSING'
  | 'PLUGIN_FAILED'
  | 'STATE_FAILED'
  | 'STATE_TOO_NEW'
  | 'LOCKED'
  | 'EXEC_FAILED'
  | 'ARCHIVE_FAILED'
  | 'VERIFY_FAILED'
  | 'SOURCE_MISSING'
  | 'JOB_FAILED'
  /** a plugin's operation failed (the error names the plugin and the operation) */
  | 'PLUGIN_ERROR'
  /** a plugin returned something the contract does not allow (a relative path, no list) */
  | 'PLUGIN_OUTPUT'
  | 'ABORTED'
  | 'TIMEOUT'
  | 'INTERNAL';

const EXIT_BY_CODE: Record<ErrorCode, number> = {
  CONFIG_NOT_FOUND: EXIT.USAGE,
  CONFIG_INVALID: EXIT.USAGE,
  SECRET_FAILED: EXIT.USAGE,
  USAGE: EXIT.USAGE,
  PLUGIN_MISSING: EXIT.USAGE,
  PLUGIN_FAILED: EXIT.USAGE,
  STATE_FAILED: EXIT.JOB_FAILED,
  STATE_TOO_NEW: EXIT.USAGE,
  LOCKED: EXIT.LOCKED,
  EXEC_FAILED: EXIT.JOB_FAILED,
  ARCHIVE_FAILED: EXIT.JOB_FAILED,
  VERIFY_FAILED: EXIT.JOB_FAILED,
  SOURCE_MISSING: EXIT.JOB_FAILED,
  JOB_FAILED: EXIT.JOB_FAILED,
  PLUGIN_ERROR: EXIT.JOB_FAILED,
  PLUGIN_OUTPUT: EXIT.JOB_FAILED,
  ABORTED: EXIT.SIGINT,
  TIMEOUT: EXIT.JOB_FAILED,
  INTERNAL: EXIT.INTERNAL,
};

export interface ErrorOptions {
  /** one line telling the user what to do about it */
  hint?: string;
  /** further lines (for example every config error) shown under the message */
  details?: string[];
  cause?: unknown;
}

export class AutopilotError extends Error {
  readonly code: ErrorCode;
  readonly hint?: string;
  readonly details: string[];

  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AutopilotError';
    this.code = code;
    this.hint = options.hint;
    this.details = options.details ?? [];
  }

  get exitCode(): number {
    return EXIT_BY_CODE[this.code];
  }
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof AutopilotError) return err.exitCode;
  return EXIT.INTERNAL;
}

export function isAbortError(err: unknown): boolean {
  return (
    (err instanceof AutopilotError && err.code === 'ABORTED') ||
    (err instanceof Error && (err.name === 'AbortError' || (err as NodeJS.ErrnoException).code === 'ABORT_ERR'))
  );
}

/** A short, single-line description of any thrown value. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
