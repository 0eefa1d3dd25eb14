/**
 * The monitor's pieces on their own: the state machine, the scheduler loop on an injected
 * clock, the pool bound, rollups and uptimes on a real state database, and the alert rules.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Clock } from '../../lib/async';
import { StateManager, type CheckRow } from '../../lib/state';
import { alertsFor } from '../../core/monitor/alerts';
import { dependencyClosure } from '../../core/monitor/model';
import { loop, runAll } from '../../core/monitor/scheduler';
import { nextHealth, step, type Counters } from '../../core/monitor/states';
import type { MonitorSpec, ProbeResult } from '../../core/monitor/types';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
function openState(): StateManager {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'ha-mon-'));
  dirs.push(d);
  return StateManager.open(d);
}

function spec(subject: string, intervalS = 60, extra: Partial<MonitorSpec> = {}): MonitorSpec {
  return {
    key: `${subject}/check`,
    subject,
    label: 'check',
    type: 'http',
    side: 'internal',
    intervalS,
    timeoutMs: 1000,
    failureThreshold: 3,
    recoveryThreshold: 1,
    dependsOn: [],
    probe: () => Promise.resolve({ ok: true, detail: 'ok', durationMs: 1 }),
    ...extra,
  };
}

/** A clock whose sleep moves time forward at once (after yielding, so that probes run). */
function fakeClock(start = Date.UTC(2026, 0, 1)): Clock & { t: number } {
  const c = {
    t: start,
    now: () => new Date(c.t),
    sleep: async (ms: number, signal?: AbortSignal) => {
      await new Promise((r) => setImmediate(r));
      if (!signal?.aborted) c.t += ms;
    },
  };
  return c;
}

describe('state machine', () => {
  const base: Counters = { health: 'UP', state: 'UP', fails: 0, oks: 5 };
  it('PENDING while failing under the threshold, DOWN at it, UP after recovery_threshold successes', () => {
    let c = base;
    const seen: string[] = [];
    for (const ok of [false, false, false, true, true]) {
      c = step(c, { ok, failureThreshold: 3, recoveryThreshold: 2, maintenance: null, flipsBefore: 0, flapChanges: 5 });
      seen.push(c.state);
    }
    expect(seen).toEqual(['PENDING', 'PENDING', 'DOWN', 'DOWN', 'UP']);
  });
  it('a new check is UP at its first success', () => {
    expect(nextHealth({ health: 'PENDING', state: 'PENDING', fails: 0, oks: 0 }, true, 3, 1).health).toBe('UP');
  });
  it('MAINTENANCE hides the health, which still follows the results', () => {
    const c = step(
      { ...base, fails: 2 },
      { ok: false, failureThreshold: 3, recoveryThreshold: 1, maintenance: 'update', flipsBefore: 0, flapChanges: 5 },
    );
    expect(c).toMatchObject({ state: 'MAINTENANCE', health: 'DOWN' });
  });
  it('FLAPPING when this change makes more than flapChanges', () => {
    const c = step(
      { ...base, fails: 0 },
      { ok: false, failureThreshold: 1, recoveryThreshold: 1, maintenance: null, flipsBefore: 5, flapChanges: 5 },
    );
    expect(c).toMatchObject({ state: 'FLAPPING', health: 'DOWN' });
  });
});

describe('scheduler', () => {
  it('runs each check every interval from one loop, on an injected clock', async () => {
    const clock = fakeClock();
    const counts = new Map<string, number>();
    const specs = [spec('a', 30), spec('b', 60), spec('c', 300)];
    const ac = new AbortController();
    const end = clock.t + 10 * 60_000;
    await loop(specs, ac.signal, {
      limit: 10,
      clock,
      run: (s) =>
        Promise.resolve({ ok: true, detail: 'ok', durationMs: 1 } as ProbeResult).then(
          (r) => (counts.set(s.subject, (counts.get(s.subject) ?? 0) + 1), r),
        ),
      onResult: () => {
        if (clock.t >= end) ac.abort();
      },
    });
    // 10 minutes: every 30 s from t=0 is 20 or 21 runs, every 60 s 10 or 11, every 300 s 2 or 3
    expect(counts.get('a')).toBeGreaterThanOrEqual(20);
    expect(counts.get('a')).toBeLessThanOrEqual(21);
    expect(counts.get('b')).toBeGreaterThanOrEqual(10);
    expect(counts.get('b')).toBeLessThanOrEqual(11);
    expect(counts.get('c')).toBeGreaterThanOrEqual(2);
    expect(counts.get('c')).toBeLessThanOrEqual(3);
  });

  it('never runs more than the pool allows at once, and every check once in a pass', async () => {
    let running = 0;
    let most = 0;
    const specs = Array.from({ length: 40 }, (_, i) => spec(`s${i}`));
    const done: string[] = [];
    await runAll(
      specs,
      7,
      async (s) => {
        running++;
        most = Math.max(most, running);
        await new Promise((r) => setTimeout(r, 5));
        running--;
        return { ok: true, detail: s.subject, durationMs: 5 };
      },
      (s) => done.push(s.subject),
      fakeClock(),
    );
    expect(most).toBe(7);
    expect(done.sort()).toEqual(specs.map((s) => s.subject).sort());
  });
});

describe('rollups and uptime on a real state database', () => {
  it('keeps raw results a day, hourly rows after that, and answers uptimes from them', () => {
    const state = openState();
    const row = state.monitor.ensureCheck({ key: 'web/http', subject: 'web', label: 'http', type: 'http' }, new Date(0).toISOString());
    const start = Date.UTC(2026, 0, 1);
    let prev = { health: row.health, state: row.state };
    const retention = { raw: 86400, hourly: 30 * 86400, daily: 400 * 86400 };
    // 10 days, a result a minute; every 10th result fails
    for (let m = 0; m < 10 * 1440; m++) {
      const at = new Date(start + m * 60_000);
      const ok = m % 10 !== 0;
      state.monitor.batch(() => {
        state.monitor.record(
          row.id,
          { at, ok, ms: ok ? 10 + (m % 7) : 1000, detail: '' },
          { fails: 0, oks: 0, health: 'UP', state: 'UP' },
          prev,
        );
        if (m % 60 === 0) state.monitor.rollup(at, retention);
      });
      prev = { health: 'UP', state: 'UP' };
    }
    const nowS = (start + 10 * 86400_000) / 1000;
    const counts = (sql: string): number =>
      Number(
        (state as unknown as { db: { handle: { prepare(s: string): { pluck(): { get(): unknown } } } } }).db.handle
          .prepare(sql)
          .pluck()
          .get(),
      );
    // raw rows of about the last day only; hourly rows for the rest
    expect(counts('SELECT count(*) FROM monitor_results')).toBeLessThanOrEqual(1500);
    expect(counts("SELECT count(*) FROM monitor_aggregates WHERE period = 'h'")).toBeGreaterThanOrEqual(238);
    expect(counts("SELECT count(*) FROM monitor_aggregates WHERE period = 'd'")).toBeGreaterThanOrEqual(9);
    // 24 h: the last whole hours and what is not rolled up; 7 d: seven whole days and today's part
    const u = state.monitor.uptimes(row.id, nowS);
    expect(u.h24.count).toBeGreaterThanOrEqual(1440 - 2);
    expect(u.h24.count).toBeLessThanOrEqual(1440 + 2);
    expect(u.d7.count).toBeGreaterThanOrEqual(7 * 1440);
    expect(u.d7.count).toBeLessThanOrEqual(8 * 1440);
    for (const w of [u.h24, u.d7, u.d30]) {
      expect(w.ratio).toBeCloseTo(0.9, 2);
      expect(w.p95).toBeGreaterThanOrEqual(15);
      expect(w.p95).toBeLessThanOrEqual(16);
    }
    state.close();
  });
});

describe('alerts', () => {
  const rowOf = (key: string, subject: string, st: CheckRow['state']): CheckRow => ({
    id: 1,
    key,
    subject,
    label: 'check',
    type: 'http',
    state: st,
    health: st === 'DOWN' ? 'DOWN' : 'UP',
    since: '',
    fails: 0,
    oks: 0,
    lastAt: null,
    lastOk: null,
    lastMs: null,
    lastDetail: 'status 503',
    lastValue: null,
    lastWarning: null,
    lastOkAt: null,
    seenAt: '',
  });

  it('one alert per incident, none for children of a DOWN parent, then their own once the parent is back', () => {
    const state = openState();
    const specs = [spec('router'), spec('web', 60, { dependsOn: ['router'] }), spec('db', 60, { dependsOn: ['web'] })];
    const closure = dependencyClosure(specs);
    expect(closure.get('db')!.sort()).toEqual(['router', 'web']);
    const rows = (r: string, w: string, d: string): Map<string, CheckRow> =>
      new Map([
        ['router/check', rowOf('router/check', 'router', r as CheckRow['state'])],
        ['web/check', rowOf('web/check', 'web', w as CheckRow['state'])],
        ['db/check', rowOf('db/check', 'db', d as CheckRow['state'])],
      ]);
    const at = (n: number): Date => new Date(Date.UTC(2026, 0, 1, 0, n));
    const input = (r: Map<string, CheckRow>, n: number) => ({ specs, rows: r, closure, now: at(n), repeatSeconds: 3600 });
    const first = alertsFor(state, input(rows('DOWN', 'DOWN', 'DOWN'), 0));
    expect(first.map((e) => `${e.event}:${e.subject}`)).toEqual(['service_down:router']);
    expect(first[0].text).toMatch(/Takes along: web \(down\), db \(down\)/);
    expect(alertsFor(state, input(rows('DOWN', 'DOWN', 'DOWN'), 1))).toEqual([]);
    const back = alertsFor(state, input(rows('UP', 'DOWN', 'UP'), 2));
    // web's own check has not answered since the router came back: not yet an outage of its own
    expect(back.map((e) => `${e.event}:${e.subject}`)).toEqual(['service_recovered:router']);
    const again = rows('UP', 'DOWN', 'UP');
    again.set('web/check', { ...again.get('web/check')!, lastAt: at(3).toISOString() });
    expect(alertsFor(state, input(again, 3)).map((e) => `${e.event}:${e.subject}`)).toEqual(['service_down:web']);
    // db recovered without ever being alerted: no recovery message for it
    expect(alertsFor(state, input(rows('UP', 'UP', 'UP'), 4)).map((e) => `${e.event}:${e.subject}`)).toEqual(['service_recovered:web']);
    state.close();
  });

  it('a warning is raised when it appears, and a recovery is sent when it goes', () => {
    const state = openState();
    const specs = [spec('web', 60, { key: 'web/tls', label: 'tls web.lan:443', type: 'tls', side: 'certificate' })];
    const closure = dependencyClosure(specs);
    const row = (warning: string | null): Map<string, CheckRow> =>
      new Map([['web/tls', { ...rowOf('web/tls', 'web', 'UP'), lastWarning: warning, lastDetail: 'valid for 5 more days' }]]);
    const ev = (warning: string | null, n: number) =>
      alertsFor(state, { specs, rows: row(warning), closure, now: new Date(Date.UTC(2026, 0, 1, 0, n)), repeatSeconds: 3600 });
    expect(ev('the certificate expires in 5 days', 0).map((e) => `${e.event}:${e.severity}`)).toEqual(['certificate_expiring:warning']);
    expect(ev('the certificate expires in 5 days', 1)).toEqual([]);
    expect(ev(null, 2).map((e) => `${e.event}:${e.severity}`)).toEqual(['certificate_renewed:success']);
    expect(ev(null, 3)).toEqual([]);
    state.close();
  });

  it('maintenance neither ends an open incident nor lets a failing parent under our own work raise its children', () => {
    const state = openState();
    const specs = [spec('router'), spec('web', 60, { dependsOn: ['router'] })];
    const closure = dependencyClosure(specs);
    const at = (n: number): Date => new Date(Date.UTC(2026, 0, 1, 0, n));
    const two = (r: CheckRow, w: CheckRow): Map<string, CheckRow> =>
      new Map([
        ['router/check', r],
        ['web/check', w],
      ]);
    const ev = (r: CheckRow, w: CheckRow, n: number): string[] =>
      alertsFor(state, { specs, rows: two(r, w), closure, now: at(n), repeatSeconds: 3600 }).map((e) => `${e.event}:${e.subject}`);
    expect(ev(rowOf('router/check', 'router', 'UP'), rowOf('web/check', 'web', 'DOWN'), 0)).toEqual(['service_down:web']);
    // web put into maintenance to be fixed: no "up again"
    expect(ev(rowOf('router/check', 'router', 'UP'), { ...rowOf('web/check', 'web', 'MAINTENANCE'), health: 'DOWN' }, 1)).toEqual([]);
    expect(ev(rowOf('router/check', 'router', 'UP'), rowOf('web/check', 'web', 'UP'), 2)).toEqual(['service_recovered:web']);
    // the router under an update (MAINTENANCE) whose check fails: web's failures are its, not web's own
    const routerWorked = { ...rowOf('router/check', 'router', 'MAINTENANCE'), health: 'DOWN' as const };
    expect(ev(routerWorked, rowOf('web/check', 'web', 'DOWN'), 3)).toEqual([]);
    state.close();
  });
});
