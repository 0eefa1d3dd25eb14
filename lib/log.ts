/**
 * Logging: winston to stderr (human lines, or JSON for machines) and to a rotated file.
 * Every line passes through the secret mask. Engines and plugins get child loggers
 * whose label prefixes their lines. stderr may have a level of its own (a cron job's stderr
 * gets warnings and errors only, the file everything), and its lines are written above a
 * progress line (lib/status-line.ts), never into it.
 */
import { stampText } from './time';
import { stderrStatus, type StatusLine } from './status-line';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as Winston from 'winston';
import { mask, maskDeep } from './mask';
import { makeDirSync } from './fsx';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type LogFormat = 'human' | 'json';

export interface Logger {
  error(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  info(message: string, meta?: Record<string, unknown>): void;
  debug(message: string, meta?: Record<string, unknown>): void;
  /** A logger whose lines carry `label` (for example `backup` or `plugin:files`). */
  child(label: string): Logger;
}

export interface LoggerOptions {
  /** the level of the log file, and of stderr unless stderrLevel says otherwise */
  level: LogLevel;
  /** the level of the lines on stderr (default: level) */
  stderrLevel?: LogLevel;
  format: LogFormat;
  /** folder for homelab-autopilot.log; undefined for no file */
  logDir?: string;
  /** rotate the file at this size (bytes) */
  maxSize?: number;
  /** rotated files kept */
  maxFiles?: number;
  /** colours on stderr (default: when stderr is a terminal) */
  color?: boolean;
  /** where stderr lines go (tests) */
  stderr?: NodeJS.WritableStream;
  /** the status line log lines are written above (default: process.stderr's, when stderr is process.stderr) */
  status?: StatusLine;
}

const LEVELS: LogLevel[] = ['error', 'warn', 'info', 'debug'];

/** The quieter of two levels (error is the quietest). */
export function quieter(a: LogLevel, b: LogLevel): LogLevel {
  return LEVELS[Math.min(LEVELS.indexOf(a), LEVELS.indexOf(b))];
}

/**
 * The level of stderr: an explicit --log-level wins; otherwise the configured level on a
 * terminal, and at most warnings when stderr is not one (cron mails what a job writes there,
 * so a good night writes nothing; the log file keeps the configured level).
 */
export function stderrLevelFor(configured: LogLevel, explicit: LogLevel | undefined, isTTY: boolean): LogLevel {
  if (explicit) return explicit;
  return isTTY ? configured : quieter(configured, 'warn');
}

const COLORS: Record<string, string> = { error: '\x1b[31m', warn: '\x1b[33m', info: '\x1b[36m', debug: '\x1b[90m' };

const stamp = (d = new Date()): string => stampText(d);

function metaText(info: Record<string | symbol, unknown>): string {
  const skip = new Set(['level', 'message', 'label', 'timestamp']);
  const parts: string[] = [];
  for (const [k, v] of Object.entries(info)) {
    if (skip.has(k) || v === undefined) continue;
    parts.push(`${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  }
  return parts.length ? ' ' + parts.join(' ') : '';
}

class WinstonLogger implements Logger {
  constructor(
    private readonly w: Winston.Logger,
    private readonly label?: string,
  ) {}
  private log(level: LogLevel, message: string, meta?: Record<string, unknown>): void {
    this.w.log({ level, message, ...(meta ?? {}), ...(this.label ? { label: this.label } : {}) });
  }
  error(m: string, meta?: Record<string, unknown>): void {
    this.log('error', m, meta);
  }
  warn(m: string, meta?: Record<string, unknown>): void {
    this.log('warn', m, meta);
  }
  info(m: string, meta?: Record<string, unknown>): void {
    this.log('info', m, meta);
  }
  debug(m: string, meta?: Record<string, unknown>): void {
    this.log('debug', m, meta);
  }
  child(label: string): Logger {
    return new WinstonLogger(this.w, this.label ? `${this.label}:${label}` : label);
  }
}

export interface CreatedLogger {
  logger: Logger;
  /** flushes and closes the transports (a function property: it may be destructured) */
  close: () => Promise<void>;
}

/**
 * Creates the logger. winston itself is loaded on the first line logged, so that a command
 * that has nothing to say (config validate on a good config, --help) never pays for it.
 */
export function createLogger(options: LoggerOptions): CreatedLogger {
  let built: { logger: Logger; close(): Promise<void> } | null = null;
  const result: CreatedLogger = {
    logger: null as unknown as Logger,
    close: () => (built ? built.close() : Promise.resolve()),
  };
  const get = (): Logger => {
    if (!built) {
      built = buildWinston(options);
    }
    return built.logger;
  };
  const lazy = (label?: string): Logger => ({
    error: (m, meta) => (label ? get().child(label) : get()).error(m, meta),
    warn: (m, meta) => (label ? get().child(label) : get()).warn(m, meta),
    info: (m, meta) => (label ? get().child(label) : get()).info(m, meta),
    debug: (m, meta) => (label ? get().child(label) : get()).debug(m, meta),
    child: (l) => lazy(label ? `${label}:${l}` : l),
  });
  result.logger = lazy();
  return result;
}

function buildWinston(options: LoggerOptions): { logger: Logger; close(): Promise<void> } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- winston is loaded on the first line logged, not at start-up
  const winston = require('winston') as typeof Winston;
  const { format } = winston;
  const masking = format((info) => {
    info.message = mask(String(info.message));
    for (const key of Object.keys(info)) {
      if (key === 'level' || key === 'message') continue;
      (info as Record<string, unknown>)[key] = maskDeep((info as Record<string, unknown>)[key]);
    }
    return info;
  });
  const color = options.color ?? Boolean(((options.stderr ?? process.stderr) as NodeJS.WriteStream).isTTY);
  const human = (withColor: boolean): Winston.Logform.Format =>
    format.printf((info) => {
      const lvl = info.level.padEnd(5);
      const label = info.label ? `[${typeof info.label === 'string' ? info.label : JSON.stringify(info.label)}] ` : '';
      const line = `${stamp()} ${withColor ? COLORS[info.level] + lvl + '\x1b[0m' : lvl} ${label}${String(info.message)}${metaText(info)}`;
      return line;
    });

  const stderrLevel = options.stderrLevel ?? options.level;
  const transports: Winston.transport[] = [
    stderrTransport({
      stream: options.stderr ?? process.stderr,
      status: options.status ?? (options.stderr ? undefined : stderrStatus),
      level: stderrLevel,
      format: options.format === 'json' ? format.combine(format.timestamp(), format.json()) : human(color),
    }),
  ];
  let fileProblem: string | undefined;
  if (options.logDir) {
    try {
      makeDirSync(options.logDir);
      fs.accessSync(options.logDir, fs.constants.W_OK);
      transports.push(
        rotatingFileTransport({
          file: path.join(options.logDir, 'homelab-autopilot.log'),
          maxSize: options.maxSize ?? 10 * 1024 * 1024,
          maxFiles: options.maxFiles ?? 5,
          level: options.level,
          format: format.combine(format.timestamp(), format.json()),
        }),
      );
    } catch (e) {
      fileProblem = `cannot write logs to ${options.logDir}: ${(e as Error).message}; logging to stderr only (set global.log_dir to a writable folder)`;
    }
  }
  // the logger passes what the most talkative transport wants; each transport keeps its own level
  const level = LEVELS[Math.max(LEVELS.indexOf(options.level), LEVELS.indexOf(stderrLevel))];
  const w = winston.createLogger({ level, format: masking(), transports, exitOnError: false });
  const logger = new WinstonLogger(w);
  if (fileProblem) logger.warn(fileProblem);
  return {
    logger,
    close: () =>
      new Promise<void>((resolve) => {
        // the file transport writes synchronously; only the stderr stream may need a moment
        w.close();
        setImmediate(resolve);
      }),
  };
}

const MESSAGE = Symbol.for('message');

/** stderr lines, written above the status line (a progress line) when there is one. */
function stderrTransport(opts: {
  stream: NodeJS.WritableStream;
  status?: StatusLine;
  level: LogLevel;
  format: Winston.Logform.Format;
}): Winston.transport {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded with winston, on the first line logged
  const Transport = require('winston-transport') as typeof import('winston-transport');
  class StderrLines extends Transport {
    override log(info: Record<string | symbol, unknown>, next: () => void): void {
      const line = `${String(info[MESSAGE])}\n`;
      if (opts.status) opts.status.writeAbove(line);
      else opts.stream.write(line);
      next();
    }
  }
  return new StderrLines({ level: opts.level, format: opts.format });
}

/**
 * A winston transport that appends each line synchronously (nothing is lost when the
 * process ends right after a line) and rotates by size the way logrotate names files:
 * homelab-autopilot.log, .log.1, .log.2, … keeping maxFiles files in all.
 */
function rotatingFileTransport(opts: {
  file: string;
  maxSize: number;
  maxFiles: number;
  level: LogLevel;
  format: Winston.Logform.Format;
}): Winston.transport {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded with winston, only when there is a log file
  const Transport = require('winston-transport') as typeof import('winston-transport');
  let size = fs.existsSync(opts.file) ? fs.statSync(opts.file).size : 0;
  const rotate = (): void => {
    for (let i = opts.maxFiles - 1; i >= 1; i--) {
      const from = i === 1 ? opts.file : `${opts.file}.${i - 1}`;
      const to = `${opts.file}.${i}`;
      if (fs.existsSync(from)) fs.renameSync(from, to);
    }
    if (opts.maxFiles <= 1) fs.rmSync(opts.file, { force: true });
    size = 0;
  };
  class RotatingFile extends Transport {
    override log(info: Record<string | symbol, unknown>, next: () => void): void {
      const line = `${String(info[MESSAGE])}\n`;
      const bytes = Buffer.byteLength(line);
      try {
        if (size > 0 && size + bytes > opts.maxSize) rotate();
        fs.appendFileSync(opts.file, line, { mode: 0o640 });
        size += bytes;
      } catch {
        // a full or vanished log disk must never fail a backup
      }
      next();
    }
  }
  return new RotatingFile({ level: opts.level, format: opts.format });
}

/** A logger that drops everything (library use, tests). */
export const silentLogger: Logger = {
  error() {},
  warn() {},
  info() {},
  debug() {},
  child() {
    return silentLogger;
  },
};
