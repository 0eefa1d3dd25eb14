/**
 * The base of every command: the shared flags, the app opened once from the config,
 * signal handling, and the one place where errors become messages and exit codes.
 * Commands parse, call one engine, and return a typed result; with --json that result
 * is exactly what goes to stdout.
 */
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';
import type { Interfaces } from '@oclif/core';
import type { App, AppNeeds, StateMode } from '../core/app';
import type { GlobalConfig } from '../core/config/types';
import type { JobHooks, JobKind } from '../core/metrics';
import { AutopilotError, EXIT, describeError, exitCodeFor } from '../lib/errors';
import type { CreatedLogger } from '../lib/log';
import { critical } from '../lib/critical';
import { mask, maskDeep } from '../lib/mask';
import { stderrStatus } from '../lib/status-line';
import { usageError } from './usage';

/** oclif's FlagOutput / ArgOutput (not exported by name) */
type Parsed = { [name: string]: unknown };

/** The flag of the commands a schedule runs (backup, update, monitor): `--no-ping` for a run by hand. */
export const jobFlags = {
  'no-ping': Flags.boolean({ summary: "Do not ping the job's dead-man switch (schedules.<job>.ping_url): a run by hand." }),
};

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>;

export abstract class BaseCommand<T extends typeof Command> extends Command {
  static override enableJsonFlag = true;

  static override baseFlags = {
    config: Flags.string({
      char: 'c',
      summary:
        'Config file (default: $HOMELAB_AUTOPILOT_CONFIG, /etc/homelab-autopilot/homelab-autopilot.yaml, then a search from the working directory).',
      helpGroup: 'GLOBAL',
    }),
    'log-level': Flags.option({
      options: ['error', 'warn', 'info', 'debug'] as const,
      summary:
        'Log level on stderr and in the log file (default: global.log_level; on a stderr that is not a terminal, such as cron, at most warn).',
      helpGroup: 'GLOBAL',
    })(),
    'log-format': Flags.option({
      options: ['human', 'json'] as const,
      summary: 'Log line format on stderr (default: global.log_format).',
      helpGroup: 'GLOBAL',
    })(),
  };

  /** Commands that change something also log to the log file; read-only ones log to stderr only. */
  protected static writesLogFile = false;

  /** A service's stderr is its log (the journal): it gets global.log_level even when it is not a terminal. */
  protected static stderrIsTheLog = false;
  /**
   * Commands run very often (monitor from cron every minute, status) open state without the
   * quick check of the whole file (about 0.2 s for 128 MB): damage then shows when a page is read.
   */
  protected static lightStateCheck = false;

  /** Whether this invocation writes the log file (a --dry-run writes nothing). */
  protected writesLogFile(): boolean {
    return (this.constructor as typeof BaseCommand).writesLogFile && !(this.flags as Record<string, unknown>)['dry-run'];
  }

  protected flags!: BaseFlags<T>;
  protected controller = new AbortController();
  private createdLogger: CreatedLogger | null = null;
  private app: App | null = null;
  private job: JobHooks | null = null;
  private signalName: NodeJS.Signals | null = null;
  private readonly onSignal = (sig: NodeJS.Signals): void => {
    if (this.signalName) {
      const busy = critical.active();
      if (busy) {
        // stopping now would leave the service half-restored
        process.stderr.write(
          `\n${sig} received again, but ${busy} is in progress and stopping it now would leave things half done; it ends on its own time-out (kill -9 forces it)\n`,
        );
        return;
      }
      // a second signal: stop now
      process.exit(sig === 'SIGINT' ? EXIT.SIGINT : EXIT.SIGTERM);
    }
    this.signalName = sig;
    stderrStatus.clear();
    process.stderr.write(`\n${sig} received: stopping after cleaning up (send it again to stop at once)\n`);
    this.controller.abort();
  };

  /** Every parse error is a usage error: exit 2, with the whole reason. */
  protected override async parse<F extends Parsed, B extends Parsed, A extends Parsed>(
    options?: Interfaces.Input<F, B, A>,
    argv?: string[],
  ): Promise<Interfaces.ParserOutput<F, B, A>> {
    try {
      return await super.parse(options, argv);
    } catch (e) {
      this.parsed = true; // it was parsed: the arguments were wrong (oclif would warn that parse() was never called)
      throw usageError(e, this.config.bin, this.id);
    }
  }

  public override async init(): Promise<void> {
    await super.init();
    const { flags } = await this.parse({
      flags: this.ctor.flags,
      baseFlags: (this.ctor as typeof BaseCommand).baseFlags,
      enableJsonFlag: true,
      args: this.ctor.args,
      strict: this.ctor.strict,
    });
    this.flags = flags as BaseFlags<T>;
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
  }

  /**
   * Opens the config, logger, state and (unless `needs` says otherwise) the plugins with their
   * secrets. A command that only reads state passes `{ plugins: false, secrets: false }`.
   */
  protected async openApp(state: StateMode, needs?: AppNeeds): Promise<App> {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on use, so that --help and --version do not pay for the engines
    const { openApp } = require('../core/app') as typeof import('../core/app');
    const app = await openApp({
      configPath: this.flags.config,
      signal: this.controller.signal,
      state,
      needs,
      fullStateCheck: !(this.constructor as typeof BaseCommand).lightStateCheck,
      makeLogger: (g: GlobalConfig) => this.makeLogger(g),
    });
    this.app = app;
    return app;
  }

  private makeLogger(g: GlobalConfig): CreatedLogger['logger'] {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- winston is loaded with the logger, not at start-up
    const { createLogger, stderrLevelFor } = require('../lib/log') as typeof import('../lib/log');
    const explicit = this.flags['log-level'];
    this.createdLogger = createLogger({
      level: explicit ?? g.log_level,
      // not on a terminal (cron, a pipe): warnings and errors only, unless --log-level says otherwise
      stderrLevel: (this.constructor as typeof BaseCommand).stderrIsTheLog
        ? (explicit ?? g.log_level)
        : stderrLevelFor(g.log_level, explicit, Boolean(process.stderr.isTTY)),
      format: this.flags['log-format'] ?? g.log_format,
      logDir: this.writesLogFile() ? g.log_dir : undefined,
      maxSize: g.log_max_size_mb * 1024 * 1024,
      maxFiles: g.log_max_files,
    });
    return this.createdLogger.logger;
  }

  /**
   * This run is a job a schedule runs (backup, update, monitor, restore_test): its dead-man
   * switch is pinged now (start), and when the command ends, whatever its exit code, the end
   * ping is sent and the metrics textfile written (in finally()). Neither can fail the job.
   * Nothing happens for a --dry-run.
   */
  protected beginJob(kind: JobKind, app: App): void {
    const flags = this.flags as Record<string, unknown>;
    if (flags['dry-run'] || this.job) return;
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded by the commands that run jobs only
    const { beginJob } = require('../core/metrics/job') as typeof import('../core/metrics/job');
    this.job = beginJob({ config: app.loaded.config, state: app.state, logger: app.logger }, kind, { ping: !flags['no-ping'] });
  }

  /** The exit code of an interrupted run. */
  protected get interruptedExit(): number {
    return this.signalName === 'SIGTERM' ? EXIT.SIGTERM : EXIT.SIGINT;
  }

  /** --json prints the command's result, with every secret masked. */
  public override toSuccessJson(result: unknown): unknown {
    return maskDeep(result);
  }

  /** Human output goes to stdout unless --json is given. */
  protected out(text: string): void {
    if (!this.jsonEnabled()) process.stdout.write(mask(text) + (text.endsWith('\n') ? '' : '\n'));
  }

  protected override async catch(err: Error & { exitCode?: number; oclif?: { exit?: number } }): Promise<unknown> {
    // oclif's own exit request (this.exit) is not an error
    if (err.oclif?.exit !== undefined && err.message.startsWith('EEXIT')) {
      process.exitCode = err.oclif.exit;
      return;
    }
    let code: number;
    let payload: { code: string; message: string; hint?: string; details?: string[] };
    if (err instanceof AutopilotError) {
      code = err.code === 'ABORTED' ? this.interruptedExit : err.exitCode;
      payload = { code: err.code, message: mask(err.message), hint: err.hint, details: err.details.map(mask) };
    } else if (
      err.oclif ||
      (err as { code?: string }).code === 'EEXIT' ||
      /Unexpected argument|Nonexistent flag|Expected --|Missing required/i.test(err.message)
    ) {
      code = EXIT.USAGE;
      payload = {
        code: 'USAGE',
        message: mask(err.message.split('\n')[0]),
        hint: `see ${this.config.bin} ${this.id?.replace(/:/g, ' ') ?? ''} --help`.replace(/\s+--help/, ' --help'),
      };
    } else {
      code = exitCodeFor(err);
      payload = {
        code: 'INTERNAL',
        message: mask(describeError(err)),
        hint: 'this is a bug: run again with --log-level debug and report the output',
      };
      if (this.flags?.['log-level'] === 'debug') process.stderr.write(mask(err.stack ?? '') + '\n');
    }
    stderrStatus.clear(); // a progress line must not run into the error
    if (this.jsonEnabled()) {
      process.stdout.write(JSON.stringify({ error: payload }, null, 2) + '\n');
    } else {
      const lines = [`error: ${payload.message}`, ...(payload.details ?? []).map((d) => `  ${d}`)];
      if (payload.hint) lines.push(`hint: ${payload.hint}`);
      process.stderr.write(lines.join('\n') + '\n');
    }
    process.exitCode = code;
    return undefined;
  }

  protected override async finally(err: Error | undefined): Promise<unknown> {
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    // the exit code is decided: run() set it, or catch() did for an error
    const code = typeof process.exitCode === 'number' ? process.exitCode : Number(process.exitCode ?? (err ? EXIT.INTERNAL : EXIT.OK));
    await this.job?.finish(Number.isFinite(code) ? code : EXIT.INTERNAL);
    try {
      await this.app?.close();
    } catch {
      /* closing state after a failure must not hide the failure */
    }
    await this.createdLogger?.close();
    return super.finally(err);
  }
}
