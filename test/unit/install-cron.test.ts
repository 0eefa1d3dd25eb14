/** The cron file `install cron` writes: a line per five-field job, the monitor every interval, notes for what cron cannot do. */
import { renderCron } from '../../core/daemon/install';
import type { AutopilotConfig } from '../../core/config/types';

function config(schedules: Record<string, unknown>, interval: number | string = 60): AutopilotConfig {
  return { schedules: { catch_up: true, ...schedules }, monitoring: { interval } } as unknown as AutopilotConfig;
}

const base = { kind: 'cron' as const, configFile: '/etc/homelab-autopilot/config.yaml', node: '/usr/bin/node', cli: '/opt/ha/bin/run.js' };

describe('install cron', () => {
  it('leaves out a job with a seconds field, and says so; runs the monitor every interval', () => {
    const notes: string[] = [];
    const text = renderCron({ ...base, config: config({ backup: '*/5 * * * * *', monitor: '2m' }) }, notes);
    expect(notes).toContain('schedules.backup ("*/5 * * * * *") has a seconds field, which cron does not have: left out of the cron file');
    expect(text).toContain(
      '\n*/2 * * * * root /usr/bin/node /opt/ha/bin/run.js monitor --config /etc/homelab-autopilot/config.yaml >/dev/null',
    );
    // no backup cron can run: the nightly one of the template
    expect(text).toContain('\n30 2 * * * root /usr/bin/node /opt/ha/bin/run.js backup --all --lock-wait 600 --config');
  });

  it('runs the monitor every minute by default, and not at all when schedules.monitor is off', () => {
    expect(renderCron({ ...base, config: config({ backup: '0 3 * * *', monitor: true }) })).toMatch(
      /\n\* \* \* \* \* root \S+ \S+ monitor /,
    );
    const off = renderCron({ ...base, config: config({ backup: '0 3 * * *', monitor: { enabled: false } }) });
    expect(off).not.toContain(' monitor ');
    expect(off).toContain('\n0 3 * * * root /usr/bin/node /opt/ha/bin/run.js backup --all --config');
  });
});
