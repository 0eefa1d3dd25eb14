/**
 * What the schema cannot say about `monitoring:`, `schedules:` and `daemon:`: names that
 * depends_on and maintenance windows refer to must exist, dependencies must not go round in a
 * circle, cron expressions must parse, regular expressions must compile, and an endpoint on
 * any address but loopback needs a token. Each problem names its place in the file.
 */
import type { Locator } from './errors';
import { formatLocation } from './source';
import type { AutopilotConfig } from './types';

type Path = (string | number)[];

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** node-cron's own parser, loaded only when the file has an expression (it is not needed to start most commands). */
function cronProblem(expr: string): string | null {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use
  const cron = require('node-cron') as { validate(e: string): boolean };
  return cron.validate(expr) ? null : 'not a valid cron expression (minute hour day month weekday, e.g. "0 2 * * *")';
}

export function monitoringErrors(config: AutopilotConfig, locator: Locator): string[] {
  const out: string[] = [];
  const at = (p: Path): string =>
    `${formatLocation(locator(p))}: ${p.map((x, i) => (typeof x === 'number' ? `[${x}]` : i ? `.${x}` : x)).join('')}`;
  const services = Array.isArray(config.services) ? config.services : [];
  const targets = Array.isArray(config.monitoring?.targets) ? config.monitoring.targets : [];
  const names = new Map<string, Path>();
  services.forEach((s, i) => typeof s?.name === 'string' && names.set(s.name, ['services', i, 'name']));
  targets.forEach((t, i) => {
    if (typeof t?.name !== 'string') return;
    const prev = names.get(t.name);
    if (prev)
      out.push(
        `${at(['monitoring', 'targets', i, 'name'])}: '${t.name}' is already the name of ${prev.slice(0, 2).join('[')}]; choose another name`,
      );
    else names.set(t.name, ['monitoring', 'targets', i, 'name']);
  });
  const deps = new Map<string, string[]>();
  const entries: [Path, { name?: unknown; depends_on?: unknown; health_checks?: unknown }][] = [
    ...services.map((s, i): [Path, typeof s] => [['services', i], s]),
    ...targets.map((t, i): [Path, typeof t] => [['monitoring', 'targets', i], t]),
  ];
  for (const [p, e] of entries) {
    if (!e || typeof e.name !== 'string') continue;
    const list = Array.isArray(e.depends_on) ? (e.depends_on as string[]) : [];
    list.forEach((d, j) => {
      if (d === e.name) out.push(`${at([...p, 'depends_on', j])}: '${e.name}' cannot depend on itself`);
      else if (!names.has(d))
        out.push(
          `${at([...p, 'depends_on', j])}: '${d}' is neither a service nor a monitoring target; name one of: ${[...names.keys()].join(', ') || '(none)'}`,
        );
    });
    deps.set(
      e.name,
      list.filter((d) => names.has(d) && d !== e.name),
    );
    if (p[0] === 'monitoring') out.push(...regexErrors(e.health_checks, [...p, 'health_checks'], at));
  }
  out.push(...cycleErrors(deps, names, at));
  (Array.isArray(config.monitoring?.maintenance) ? config.monitoring.maintenance : []).forEach((w, i) => {
    if (typeof w?.cron === 'string') {
      const why = cronProblem(w.cron);
      if (why) out.push(`${at(['monitoring', 'maintenance', i, 'cron'])}: ${why}`);
    }
    (Array.isArray(w?.services) ? w.services : []).forEach((s, j) => {
      if (!names.has(s))
        out.push(`${at(['monitoring', 'maintenance', i, 'services', j])}: '${s}' is neither a service nor a monitoring target`);
    });
  });
  const schedules = (config.schedules ?? {}) as unknown as Record<string, unknown>;
  for (const job of ['backup', 'update', 'restore_test']) {
    const v = schedules[job];
    const expr = typeof v === 'string' ? v : v && typeof v === 'object' ? (v as { cron?: unknown }).cron : undefined;
    const p: Path = typeof v === 'string' ? ['schedules', job] : ['schedules', job, 'cron'];
    if (typeof expr === 'string') {
      const why = cronProblem(expr);
      if (why) out.push(`${at(p)}: ${why}`);
    } else if (v && typeof v === 'object' && (v as { enabled?: unknown }).enabled !== false)
      out.push(`${at(['schedules', job])}: needs a cron expression (cron: "0 2 * * *"), or enabled: false`);
  }
  const rt = schedules.restore_test as { enabled?: unknown } | string | undefined;
  if (rt !== undefined && !(typeof rt === 'object' && rt.enabled === false))
    out.push(
      `${at(['schedules', 'restore_test'])}: restore tests are not in this version yet; remove schedules.restore_test (or set enabled: false)`,
    );
  if (typeof schedules.timezone === 'string') {
    try {
      new Intl.DateTimeFormat('en', { timeZone: schedules.timezone });
    } catch {
      out.push(`${at(['schedules', 'timezone'])}: '${schedules.timezone}' is not a time zone this system knows (e.g. Europe/Berlin, UTC)`);
    }
  }
  const d = config.daemon;
  if (d && typeof d.listen === 'string' && !isLoopback(d.listen) && d.port !== 0) {
    const raw = d as unknown as Record<string, unknown>;
    if (raw.token === undefined && raw.token_file === undefined && raw.token_command === undefined)
      out.push(
        `${at(['daemon', 'listen'])}: ${d.listen} is not a loopback address, so the endpoint needs a bearer token: set daemon.token_file (or listen on 127.0.0.1)`,
      );
  }
  return out;
}

function regexErrors(checks: unknown, p: Path, at: (p: Path) => string): string[] {
  if (!Array.isArray(checks)) return [];
  return checks.flatMap((c: { body_matches?: unknown }, j) => {
    if (typeof c?.body_matches !== 'string') return [];
    try {
      new RegExp(c.body_matches);
      return [];
    } catch (e) {
      return [
        `${at([...p, j, 'body_matches'])}: not a valid regular expression: ${(e as Error).message.replace(/^Invalid regular expression: /, '')}`,
      ];
    }
  });
}

/** A dependency circle is reported once, at the first name on it. */
function cycleErrors(deps: Map<string, string[]>, names: Map<string, Path>, at: (p: Path) => string): string[] {
  const out: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): void => {
    if (state.get(n) === 'done') return;
    if (state.get(n) === 'open') {
      const loop = [...stack.slice(stack.indexOf(n)), n];
      const where = names.get(loop[0]) as Path;
      out.push(`${at([...where.slice(0, -1), 'depends_on'])}: dependencies go round in a circle: ${loop.join(' -> ')}; remove one of them`);
      return;
    }
    state.set(n, 'open');
    stack.push(n);
    for (const d of deps.get(n) ?? []) visit(d);
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of deps.keys()) visit(n);
  return out;
}
