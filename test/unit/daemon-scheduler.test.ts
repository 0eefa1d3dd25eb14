/** The daemon's scheduler and services over a fake clock: no real time passes, no process starts. */
import type { JobEnd, JobProcess, StartJob } from '../../core/daemon/child';
import { jobsFromConfig } from '../../core/daemon/jobs';
import { parseCron } from '../../core/daemon/cron-time';
import { lastRunKey, missedRun, Scheduler, type KvLike } from '../../core/daemon/scheduler';
import { Supervisor } from '../../core/daemon/services';
import type { Logger } from '../../lib/log';
import { FakeTimerClock } from '../helpers/fake-timer-clock';

interface FakeRun {
  argv: string[];
  signals: NodeJS.Signals[];
  end(e: Partial<JobEnd>): void;
}

function fakeJobs(opts: { endOn?: NodeJS.Signals[] } = {}): { start: StartJob; runs: FakeRun[] } {
  const runs: FakeRun[] = [];
  const start: StartJob = (argv) => {
    let end!: (e: JobEnd) => void;
    const done = new Promise<JobEnd>((r) => (end = r));
    const run: FakeRun = { argv, signals: [], end: (e) => end({ code: null, signal: null, ...e }) };
    runs.push(run);
    const proc: JobProcess = {
      pid: 1000 + runs.length,
      kill: (sig) => {
        run.signals.push(sig);
        if ((opts.endOn ?? ['SIGKILL']).includes(sig)) run.end({ signal: sig });
      },
      done,
    };
    return proc;
  };
  return { start, runs };
}

function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const l = (level: string) => (m: string) => void lines.push(`${level} ${m}`);
  const logger = { lines, error: l('error'), warn: l('warn'), info: l('info'), debug: l('debug'), child: () => logger };
  return logger;
}

function memoryKv(init: Record<string, unknown> = {}): KvLike & { data: Record<string, unknown> } {
  const data = { ...init };
  return { data, get: <T>(k: string, f?: T) => (k in data ? (data[k] as T) : f), set: (k, v) => void (data[k] = v) };
}

describe('missedRun (catch_up)', () => {
  const daily = parseCron('0 2 * * *', 'UTC');
  test('a run missed last night runs once', () => {
    expect(missedRun(daily, new Date('2026-03-08T02:00:00Z'), new Date('2026-03-10T09:00:00Z'))?.toISOString()).toBe(
      '2026-03-10T02:00:00.000Z',
    );
  });
  test('nothing was missed when the last run is after the last scheduled time', () => {
    expect(missedRun(daily, new Date('2026-03-10T02:00:01Z'), new Date('2026-03-10T09:00:00Z'))).toBeNull();
  });
  test('a job that never ran under the daemon is not caught up', () => {
    expect(missedRun(daily, undefined, new Date('2026-03-10T09:00:00Z'))).toBeNull();
  });
});

describe('Scheduler', () => {
  test('runs each job at its times, as the CLI with its arguments, and keeps the start in state', async () => {
    const clock = new FakeTimerClock('2026-03-10T01:59:00Z');
    const { start, runs } = fakeJobs();
    const kv = memoryKv();
    const s = new Scheduler({ clock, logger: recordingLogger(), startJob: start, store: kv });
    s.start(jobsFromConfig({ catch_up: true, timezone: 'UTC', backup: '0 2 * * *', update: { cron: '0 3 * * 0', args: ['web'] } }), 'UTC');
    expect(s.status().map((j) => [j.name, j.nextRun])).toEqual([
      ['backup', '2026-03-10T02:00:00.000Z'],
      ['update', '2026-03-15T03:00:00.000Z'],
    ]);
    expect(clock.pending).toBe(1); // one timer, for the earliest job
    await clock.advance(60_000);
    expect(runs.map((r) => r.argv)).toEqual([['backup', '--all']]);
    expect(kv.data[lastRunKey('backup')]).toBe('2026-03-10T02:00:00.000Z');
    await clock.advance(60_000);
    runs[0].end({ code: 0 });
    await clock.advance(0);
    const b = s.status()[0];
    expect(b.last).toMatchObject({ start: '2026-03-10T02:00:00.000Z', end: '2026-03-10T02:01:00.000Z', exitCode: 0, durationMs: 60_000 });
    expect(b.nextRun).toBe('2026-03-11T02:00:00.000Z');
    await clock.advanceTo('2026-03-15T03:00:00Z');
    // the run of the 11th never ends here: those of the 12th to the 15th are skipped
    expect(runs.map((r) => r.argv.join(' '))).toEqual(['backup --all', 'backup --all', 'update web']);
    expect(s.status().map((j) => [j.name, j.runs, j.skipped])).toEqual([
      ['backup', 2, 4],
      ['update', 1, 0],
    ]);
  });

  test('a run due while the previous one still runs is skipped, not queued', async () => {
    const clock = new FakeTimerClock('2026-03-10T10:00:00Z');
    const { start, runs } = fakeJobs();
    const log = recordingLogger();
    const s = new Scheduler({ clock, logger: log, startJob: start, store: null });
    s.start(jobsFromConfig({ catch_up: true, backup: '*/2 * * * * *' }), 'UTC');
    await clock.advance(2000);
    expect(runs).toHaveLength(1);
    await clock.advance(6000); // three more times due
    expect(runs).toHaveLength(1);
    expect(s.status()[0].skipped).toBe(3);
    expect(log.lines.filter((l) => /skipped the schedule run/.test(l))).toHaveLength(3);
    runs[0].end({ code: 0 });
    await clock.advance(2000);
    expect(runs).toHaveLength(2);
  });

  test('a job past its timeout gets SIGTERM, then SIGKILL after the grace', async () => {
    const clock = new FakeTimerClock('2026-03-10T10:00:00Z');
    const { start, runs } = fakeJobs({ endOn: ['SIGKILL'] });
    const log = recordingLogger();
    const s = new Scheduler({ clock, logger: log, startJob: start, store: null, killGraceMs: 10_000 });
    s.start(jobsFromConfig({ catch_up: true, backup: { cron: '0 11 * * *', timeout: '30m' } }), 'UTC');
    await clock.advanceTo('2026-03-10T11:29:59Z');
    expect(runs[0].signals).toEqual([]);
    await clock.advance(1000);
    expect(runs[0].signals).toEqual(['SIGTERM']);
    await clock.advance(10_000);
    expect(runs[0].signals).toEqual(['SIGTERM', 'SIGKILL']);
    expect(s.status()[0].last).toMatchObject({ signal: 'SIGKILL', stoppedBy: 'timeout', durationMs: 1_810_000 });
    expect(s.status()[0].failures).toBe(1);
    expect(log.lines.some((l) => /job backup ended: killed by SIGKILL after 1810.0s \(stopped by the timeout\)/.test(l))).toBe(true);
  });

  test('a job that ends in time after SIGTERM gets no SIGKILL', async () => {
    const clock = new FakeTimerClock('2026-03-10T10:59:00Z');
    const { start, runs } = fakeJobs({ endOn: ['SIGTERM'] });
    const s = new Scheduler({ clock, logger: recordingLogger(), startJob: start, store: null, killGraceMs: 10_000 });
    s.start(jobsFromConfig({ catch_up: true, backup: { cron: '0 11 * * *', timeout: 60 } }), 'UTC');
    await clock.advance(60_000 + 60_000 + 20_000);
    expect(runs[0].signals).toEqual(['SIGTERM']);
  });

  test('catch_up at start: a missed run runs once; caught-up runs are not repeated', async () => {
    const clock = new FakeTimerClock('2026-03-10T09:00:00Z');
    const { start, runs } = fakeJobs();
    const kv = memoryKv({ [lastRunKey('backup')]: '2026-03-07T02:00:00.000Z', [lastRunKey('update')]: '2026-03-10T03:00:00.000Z' });
    const s = new Scheduler({ clock, logger: recordingLogger(), startJob: start, store: kv });
    const caught = s.start(jobsFromConfig({ catch_up: true, backup: '0 2 * * *', update: '0 3 * * *' }), 'UTC');
    expect(caught).toEqual(['backup']);
    expect(runs.map((r) => r.argv[0])).toEqual(['backup']);
    runs[0].end({ code: 0 });
    await clock.advance(1000);
    const again = new Scheduler({ clock, logger: recordingLogger(), startJob: start, store: kv });
    expect(again.start(jobsFromConfig({ catch_up: true, backup: '0 2 * * *' }), 'UTC')).toEqual([]);
    again.stop();
  });

  test('catch_up: false (per job or in the section) runs nothing at start', () => {
    const clock = new FakeTimerClock('2026-03-10T09:00:00Z');
    const { start, runs } = fakeJobs();
    const kv = memoryKv({ [lastRunKey('backup')]: '2026-03-01T02:00:00.000Z', [lastRunKey('update')]: '2026-03-01T02:00:00.000Z' });
    const s = new Scheduler({ clock, logger: recordingLogger(), startJob: start, store: kv });
    s.start(jobsFromConfig({ catch_up: false, backup: '0 2 * * *', update: { cron: '0 3 * * *', catch_up: false } }), 'UTC');
    expect(runs).toHaveLength(0);
    s.stop();
  });

  test('a job that cannot start is recorded as failed; the scheduler goes on', async () => {
    const clock = new FakeTimerClock('2026-03-10T10:00:00Z');
    const s = new Scheduler({
      clock,
      logger: recordingLogger(),
      startJob: () => {
        throw new Error('spawn ENOMEM');
      },
      store: null,
    });
    s.start(jobsFromConfig({ catch_up: true, backup: '* * * * *' }), 'UTC');
    await clock.advance(120_000);
    expect(s.status()[0]).toMatchObject({ runs: 2, failures: 2, running: false, last: { error: 'spawn ENOMEM' } });
  });

  test('drain: the deadline, then SIGTERM, then SIGKILL; clean when the job ends on SIGTERM', async () => {
    const clock = new FakeTimerClock('2026-03-10T10:00:00Z');
    const { start, runs } = fakeJobs({ endOn: ['SIGTERM'] });
    const s = new Scheduler({ clock, logger: recordingLogger(), startJob: start, store: null, killGraceMs: 5000 });
    s.start(jobsFromConfig({ catch_up: true, backup: '* * * * *' }), 'UTC');
    await clock.advance(60_000);
    s.stop();
    expect(clock.pending).toBe(0);
    const drained = s.drain(300_000);
    await clock.advance(299_000);
    expect(runs[0].signals).toEqual([]);
    await clock.advance(1000);
    expect(runs[0].signals).toEqual(['SIGTERM']);
    await expect(drained).resolves.toEqual({ clean: true, signalled: ['2026-03-10T10:01:00.000Z'] });
  });

  test('drain: a job that ignores SIGTERM is killed and the drain is not clean', async () => {
    const clock = new FakeTimerClock('2026-03-10T10:00:00Z');
    const { start, runs } = fakeJobs({ endOn: ['SIGKILL'] });
    const s = new Scheduler({ clock, logger: recordingLogger(), startJob: start, store: null, killGraceMs: 5000 });
    s.start(jobsFromConfig({ catch_up: true, backup: '* * * * *' }), 'UTC');
    await clock.advance(60_000);
    s.stop();
    const drained = s.drain(1000);
    await clock.advance(7000);
    expect(runs[0].signals).toEqual(['SIGTERM', 'SIGKILL']);
    await expect(drained).resolves.toMatchObject({ clean: false });
  });

  test('replace (a reload) keeps a running job and uses the new times', async () => {
    const clock = new FakeTimerClock('2026-03-10T10:00:00Z');
    const { start, runs } = fakeJobs();
    const s = new Scheduler({ clock, logger: recordingLogger(), startJob: start, store: null });
    s.start(jobsFromConfig({ catch_up: true, backup: '* * * * *' }), 'UTC');
    await clock.advance(60_000);
    s.replace(jobsFromConfig({ catch_up: true, backup: '0 12 * * *' }), 'UTC');
    expect(s.status()[0]).toMatchObject({ running: true, cron: '0 12 * * *', nextRun: '2026-03-10T12:00:00.000Z' });
    await clock.advance(3600_000);
    expect(runs).toHaveLength(1);
    expect(s.status()[0].skipped).toBe(0);
  });
});

describe('Supervisor', () => {
  test('a service that throws is started again after a growing back-off, and stops on stop()', async () => {
    const clock = new FakeTimerClock('2026-03-10T10:00:00Z');
    const starts: number[] = [];
    const sup = new Supervisor({ clock, logger: recordingLogger(), backoffMs: 1000, maxBackoffMs: 4000 });
    sup.start([
      {
        name: 'monitor',
        run: (signal) => {
          starts.push(clock.now().getTime());
          if (starts.length < 5) return Promise.reject(new Error('boom'));
          return new Promise((r) => signal.addEventListener('abort', () => r(), { once: true }));
        },
      },
    ]);
    await clock.advance(20_000);
    const t0 = Date.parse('2026-03-10T10:00:00Z');
    expect(starts.map((t) => t - t0)).toEqual([0, 1000, 3000, 7000, 11_000]);
    expect(sup.status()).toEqual([{ name: 'monitor', running: true, restarts: 4, lastError: 'failed: boom' }]);
    await sup.stop();
    expect(starts).toHaveLength(5);
  });
});
