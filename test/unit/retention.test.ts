import { computePrune, isoWeek, type KeepOptions, type PruneCandidate } from '../../lib/retention';

process.env.TZ = 'UTC';

const at = (iso: string, protectedFlag = false): PruneCandidate => ({ id: iso, time: new Date(iso), protected: protectedFlag });
const kept = (c: PruneCandidate[], o: KeepOptions, pinned?: Map<string, string>): string[] =>
  computePrune(c, o, pinned)
    .filter((d) => d.mark !== 'remove')
    .map((d) => d.id)
    .sort();

describe('retention with Proxmox Backup Server prune semantics', () => {
  it('keeps everything when no keep option is set', () => {
    const c = [at('2026-01-01T00:00:00Z'), at('2026-01-02T00:00:00Z')];
    expect(computePrune(c, {}).map((d) => d.mark)).toEqual(['keep', 'keep']);
  });

  it('keep-last keeps the newest N', () => {
    const c = ['01', '02', '03', '04', '05'].map((d) => at(`2026-01-${d}T02:00:00Z`));
    expect(kept(c, { keep_last: 3 })).toEqual(['2026-01-03T02:00:00Z', '2026-01-04T02:00:00Z', '2026-01-05T02:00:00Z']);
  });

  it('keep-daily keeps the newest backup of each of the last N days that have one', () => {
    const c = [
      '2026-01-01T10:00:00Z',
      '2026-01-01T18:00:00Z',
      '2026-01-02T12:00:00Z',
      '2026-01-03T09:00:00Z',
      '2026-01-03T21:00:00Z',
      '2026-01-04T08:00:00Z',
    ].map((s) => at(s));
    expect(kept(c, { keep_daily: 3 })).toEqual(['2026-01-02T12:00:00Z', '2026-01-03T21:00:00Z', '2026-01-04T08:00:00Z']);
  });

  it('a later option only considers periods older than what earlier options kept (keep-last then keep-daily)', () => {
    const c = [
      '2026-01-01T10:00:00Z',
      '2026-01-01T18:00:00Z',
      '2026-01-02T12:00:00Z',
      '2026-01-03T09:00:00Z',
      '2026-01-03T21:00:00Z',
      '2026-01-04T08:00:00Z',
    ].map((s) => at(s));
    // keep-last 2 keeps 01-04 08:00 and 01-03 21:00; keep-daily 2 skips those days and keeps 01-02 and 01-01 18:00
    expect(kept(c, { keep_last: 2, keep_daily: 2 })).toEqual([
      '2026-01-01T18:00:00Z',
      '2026-01-02T12:00:00Z',
      '2026-01-03T21:00:00Z',
      '2026-01-04T08:00:00Z',
    ]);
  });

  it('keep-hourly keeps the newest of each hour and stops after N hours', () => {
    const c = ['2026-05-01T10:05:00Z', '2026-05-01T10:45:00Z', '2026-05-01T11:10:00Z', '2026-05-01T11:50:00Z', '2026-05-01T12:00:00Z'].map(
      (s) => at(s),
    );
    expect(kept(c, { keep_hourly: 2 })).toEqual(['2026-05-01T11:50:00Z', '2026-05-01T12:00:00Z']);
  });

  it('keep-weekly uses ISO weeks across the end of a year', () => {
    expect(isoWeek(new Date('2027-01-01T12:00:00Z'))).toEqual({ year: 2026, week: 53 });
    expect(isoWeek(new Date('2027-01-04T12:00:00Z'))).toEqual({ year: 2027, week: 1 });
    expect(isoWeek(new Date('2024-12-30T12:00:00Z'))).toEqual({ year: 2025, week: 1 });
    const c = ['2026-12-28T12:00:00Z', '2027-01-01T12:00:00Z', '2027-01-04T12:00:00Z'].map((s) => at(s));
    expect(kept(c, { keep_weekly: 2 })).toEqual(['2027-01-01T12:00:00Z', '2027-01-04T12:00:00Z']);
  });

  it('keep-monthly skips months without backups (gaps) and keeps the newest of each month', () => {
    const c = ['2026-01-05T00:00:00Z', '2026-01-20T00:00:00Z', '2026-03-01T00:00:00Z', '2026-06-10T00:00:00Z', '2026-06-11T00:00:00Z'].map(
      (s) => at(s),
    );
    expect(kept(c, { keep_monthly: 3 })).toEqual(['2026-01-20T00:00:00Z', '2026-03-01T00:00:00Z', '2026-06-11T00:00:00Z']);
  });

  it('keep-yearly keeps the newest of each year', () => {
    const c = ['2023-06-01T00:00:00Z', '2024-01-01T00:00:00Z', '2024-12-01T00:00:00Z', '2025-03-01T00:00:00Z'].map((s) => at(s));
    expect(kept(c, { keep_yearly: 2 })).toEqual(['2024-12-01T00:00:00Z', '2025-03-01T00:00:00Z']);
  });

  it('never removes a protected backup, and a protected backup does not count against a limit', () => {
    const c = [
      at('2026-01-04T00:00:00Z', true),
      at('2026-01-03T00:00:00Z'),
      at('2026-01-02T00:00:00Z'),
      at('2026-01-01T00:00:00Z', true),
      at('2025-12-31T00:00:00Z'),
    ];
    const d = computePrune(c, { keep_last: 2 });
    expect(d.map((x) => [x.id.slice(0, 10), x.mark])).toEqual([
      ['2026-01-04', 'protected'],
      ['2026-01-03', 'keep'],
      ['2026-01-02', 'keep'],
      ['2026-01-01', 'protected'],
      ['2025-12-31', 'remove'],
    ]);
  });

  it('keeps a pinned backup (the newest verified one) whatever the options say', () => {
    const c = ['2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z', '2026-01-03T00:00:00Z'].map((s) => at(s));
    expect(kept(c, { keep_last: 1 }, new Map([['2026-01-01T00:00:00Z', 'newest verified backup']]))).toEqual([
      '2026-01-01T00:00:00Z',
      '2026-01-03T00:00:00Z',
    ]);
  });

  it('applies the whole policy in order on a mixed history', () => {
    const c = [
      '2024-07-01T03:00:00Z', // yearly 2024
      '2025-11-15T03:00:00Z', // monthly 2025-11
      '2025-12-20T03:00:00Z', // monthly 2025-12 / weekly 2025-W51
      '2026-01-05T03:00:00Z', // weekly 2026-W02
      '2026-01-06T03:00:00Z', // weekly 2026-W02 (newer)
      '2026-01-10T03:00:00Z', // daily
      '2026-01-11T03:00:00Z', // daily
      '2026-01-11T15:00:00Z', // last
      '2026-01-12T03:00:00Z', // last
    ].map((s) => at(s));
    const d = computePrune(c, { keep_last: 2, keep_daily: 2, keep_weekly: 2, keep_monthly: 2, keep_yearly: 2 });
    const byId = Object.fromEntries(d.map((x) => [x.id.slice(0, 13), x.mark === 'remove' ? 'remove' : x.reason]));
    expect(byId).toEqual({
      '2026-01-12T03': 'keep-last',
      '2026-01-11T15': 'keep-last',
      '2026-01-11T03': 'remove', // its day is covered by keep-last
      '2026-01-10T03': 'keep-daily',
      '2026-01-06T03': 'keep-daily',
      '2026-01-05T03': 'remove', // same ISO week as 01-06 (2026-W02), which keep-daily kept
      '2025-12-20T03': 'keep-weekly',
      '2025-11-15T03': 'keep-weekly',
      '2024-07-01T03': 'keep-monthly',
    });
  });

  it('periods are local time: a daylight-saving change does not split a day', () => {
    process.env.TZ = 'Europe/Berlin';
    try {
      // 01:30 CET and 03:30 CEST on the day clocks go forward, one local day
      const c = [at('2026-03-29T00:30:00Z'), at('2026-03-29T01:30:00Z'), at('2026-03-28T22:59:00Z')];
      expect(kept(c, { keep_daily: 2 })).toEqual(['2026-03-28T22:59:00Z', '2026-03-29T01:30:00Z']);
    } finally {
      process.env.TZ = 'UTC';
    }
  });

  describe('on generated histories, a single option keeps the newest backup of each of the N newest periods', () => {
    // a history from hourly to yearly spacing with gaps and several backups a day
    function history(seed: number): PruneCandidate[] {
      let x = seed;
      const rnd = (): number => (x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      const out: PruneCandidate[] = [];
      let t = Date.parse('2026-06-30T23:00:00Z');
      for (let i = 0; i < 600; i++) {
        const r = rnd();
        const step =
          r < 0.4
            ? 3600e3 * (1 + Math.floor(rnd() * 3))
            : r < 0.8
              ? 86400e3 * (1 + Math.floor(rnd() * 2))
              : r < 0.95
                ? 86400e3 * 9
                : 86400e3 * 70;
        t -= step;
        out.push(at(new Date(t).toISOString()));
      }
      return out;
    }
    const keys: Record<string, (d: Date) => string> = {
      keep_hourly: (d) => d.toISOString().slice(0, 13),
      keep_daily: (d) => d.toISOString().slice(0, 10),
      keep_weekly: (d) => {
        const w = isoWeek(d);
        return `${w.year}-${w.week}`;
      },
      keep_monthly: (d) => d.toISOString().slice(0, 7),
      keep_yearly: (d) => d.toISOString().slice(0, 4),
    };
    for (const [opt, key] of Object.entries(keys)) {
      for (const n of [1, 5, 30]) {
        it(`${opt.replace('_', '-')} ${n}`, () => {
          const h = history(n * 7 + opt.length);
          const newestPerPeriod = new Map<string, PruneCandidate>();
          for (const c of h) {
            const k = key(c.time);
            const prev = newestPerPeriod.get(k);
            if (!prev || prev.time < c.time) newestPerPeriod.set(k, c);
          }
          const expected = [...newestPerPeriod.values()]
            .sort((a, b) => b.time.getTime() - a.time.getTime())
            .slice(0, n)
            .map((c) => c.id)
            .sort();
          expect(kept(h, { [opt]: n })).toEqual(expected);
        });
      }
    }
  });
});
