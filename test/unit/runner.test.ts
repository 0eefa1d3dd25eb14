/**
 * The lifecycle runner (core/steps/runner.ts) on small step tables: order, failure, undo
 * (newest first, only of what changed, stopped by a failing undo), steps that always run,
 * cancellation between steps, own time-outs that a cancel does not cut short, the dry run
 * from the same table, and the run_steps records in a real state database.
 */
import * as path from 'node:path';
import { planSteps, runSteps, type RunOptions, type Step } from '../../core/steps/runner';
import { AutopilotError } from '../../lib/errors';
import { silentLogger } from '../../lib/log';
import { StateManager } from '../../lib/state';
import { cleanupTmp, tmpDir } from '../helpers/cli';

afterAll(cleanupTmp);

interface Ctx {
  log: string[];
}

/** A step that logs its id and does what `behave` says. */
function step(id: string, behave: Partial<Step<Ctx>> & { fail?: Error; unhealthy?: boolean } = {}): Step<Ctx> {
  const { fail, unhealthy, ...rest } = behave;
  return {
    id,
    title: `the ${id}`,
    describe: () => `would ${id}`,
    async run(ctx) {
      ctx.log.push(id);
      if (fail !== undefined) throw fail;
      return unhealthy ? { ok: false, detail: `${id} found it unhealthy` } : { detail: `${id} done` };
    },
    ...rest,
  };
}

const options = (o: Partial<RunOptions> = {}): RunOptions => ({
  signal: new AbortController().signal,
  ownTimeoutMs: 5000,
  record: null,
  logger: silentLogger,
  subject: 'web',
  ...o,
});

describe('the lifecycle runner', () => {
  it('runs the steps in order and reports each one', async () => {
    const ctx: Ctx = { log: [] };
    const r = await runSteps([step('a'), step('b'), step('c')], ctx, options());
    expect(ctx.log).toEqual(['a', 'b', 'c']);
    expect(r.failure).toBeNull();
    expect(r.undo.status).toBe('none');
    expect(r.steps.map((s) => `${s.step}:${s.status}:${s.detail}`)).toEqual(['a:success:a done', 'b:success:b done', 'c:success:c done']);
  });

  it('stops at the first failure and undoes what changed, newest first', async () => {
    const ctx: Ctx = { log: [] };
    const table = [
      step('snapshot', { undo: [step('drop-snapshot')] }),
      step('precheck', { readOnly: true, undo: [step('never')] }),
      step('update', { undo: [step('rollback'), step('revalidate')] }),
      step('validate', { readOnly: true, unhealthy: true, failMessage: (d) => `validation failed: ${d}` }),
      step('cleanup'),
    ];
    const r = await runSteps(table, ctx, options());
    expect(ctx.log).toEqual(['snapshot', 'precheck', 'update', 'validate', 'rollback', 'revalidate', 'drop-snapshot']);
    expect(r.failure?.step).toBe('validate');
    expect((r.failure?.error as Error).message).toBe('validation failed: validate found it unhealthy');
    expect(r.undo.status).toBe('done');
    expect(r.steps.map((s) => `${s.step}:${s.status}`)).toEqual([
      'snapshot:success',
      'precheck:success',
      'update:success',
      'validate:failed',
      'rollback:success',
      'revalidate:success',
      'drop-snapshot:success',
    ]);
  });

  it('does not undo a step that failed saying nothing changed', async () => {
    const ctx: Ctx = { log: [] };
    const nothing = Object.assign(new Error('ssh: connect to host 10.0.0.1 port 22: Connection refused'), { changed: false });
    const r = await runSteps([step('update', { fail: nothing, undo: [step('rollback')] })], ctx, options());
    expect(ctx.log).toEqual(['update']);
    expect(r.failure).toMatchObject({ step: 'update', changed: false });
    expect(r.undo.status).toBe('none');
  });

  it('a failing undo stops the undo and is reported with its error', async () => {
    const ctx: Ctx = { log: [] };
    const table = [
      step('first', { undo: [step('undo-first')] }),
      step('second', { undo: [step('undo-second', { fail: new Error('the snapshot is gone') })] }),
      step('third', { fail: new Error('broken') }),
    ];
    const r = await runSteps(table, ctx, options());
    expect(ctx.log).toEqual(['first', 'second', 'third', 'undo-second']);
    expect(r.undo.status).toBe('failed');
    expect((r.undo.error as Error).message).toBe('the snapshot is gone');
  });

  it('an optional step that fails becomes a warning and the run goes on', async () => {
    const ctx: Ctx = { log: [] };
    const r = await runSteps([step('a'), step('cleanup', { optional: true, fail: new Error('busy') }), step('b')], ctx, options());
    expect(ctx.log).toEqual(['a', 'cleanup', 'b']);
    expect(r.failure).toBeNull();
    expect(r.warnings).toEqual(['cleanup: busy']);
  });

  it('runs `always` steps last, after a failure too, once the run is settled', async () => {
    const ctx: Ctx = { log: [] };
    const seen: (string | null)[] = [];
    const table = [
      step('after', { when: 'always' }),
      step('before'),
      step('archive', { fail: new AutopilotError('ARCHIVE_FAILED', 'disk full') }),
      step('prune'),
    ];
    const r = await runSteps(table, ctx, options({ settled: (f) => seen.push(f?.step ?? null) }));
    expect(ctx.log).toEqual(['before', 'archive', 'after']);
    expect(seen).toEqual(['archive']);
    expect(r.failure?.step).toBe('archive');
  });

  it('starts no further step once the run is cancelled, and undoes what ran under time-outs of its own', async () => {
    const ctx: Ctx = { log: [] };
    const cancel = new AbortController();
    let undoSignal: AbortSignal | null = null;
    const table = [
      step('update', {
        undo: [
          {
            ...step('rollback'),
            async run(c, scope) {
              undoSignal = scope.signal;
              c.log.push('rollback');
              return { detail: 'back' };
            },
          },
        ],
      }),
      {
        ...step('validate'),
        async run(c: Ctx) {
          c.log.push('validate');
          cancel.abort();
          return { detail: 'cancelled right after' };
        },
      },
      step('cleanup'),
    ];
    const r = await runSteps(table, ctx, options({ signal: cancel.signal }));
    expect(ctx.log).toEqual(['update', 'validate', 'rollback']);
    expect(r.failure).toMatchObject({ step: 'cleanup' });
    expect((r.failure?.error as AutopilotError).code).toBe('ABORTED');
    // the rollback ran under its own time-out, not the cancelled signal
    expect(undoSignal).not.toBeNull();
    expect((undoSignal as unknown as AbortSignal).aborted).toBe(false);
    expect(r.undo.status).toBe('done');
  });

  it('records every step in run_steps with its status and masked detail', async () => {
    const state = StateManager.open(path.join(tmpDir(), 'state'));
    try {
      const runId = state.startRun('update', 'web');
      await runSteps(
        [step('snapshot'), step('update', { fail: new Error('exit 100') })],
        { log: [] },
        options({ record: { state, runId } }),
      );
      expect(state.listSteps(runId).map((s) => `${s.step}:${s.status}:${s.detail}`)).toEqual([
        'snapshot:success:snapshot done',
        'update:failed:exit 100',
      ]);
    } finally {
      state.close();
    }
  });

  it('prints the dry run from the same table: main steps, then the undo steps', async () => {
    const table = [
      step('precheck', { readOnly: true, describe: () => ({ ok: false, detail: 'would stop here: unhealthy' }) }),
      step('update', { undo: [step('rollback'), step('revalidate')] }),
      step('hook', { applies: () => false }),
    ];
    const ctx: Ctx = { log: [] };
    const plan = await planSteps(table, ctx, { signal: new AbortController().signal });
    expect(ctx.log).toEqual([]);
    expect(plan.map((s) => `${s.step}:${s.status}:${s.detail}`)).toEqual([
      'precheck:failed:would stop here: unhealthy',
      'update:planned:would update',
      'rollback:planned:would rollback',
      'revalidate:planned:would revalidate',
    ]);
  });
});
