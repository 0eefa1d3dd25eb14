'use strict';
// Worker tasks (notes §5): UPIDs, a growing log, the final TASK line, exitstatus as
// PVE's read_status derives it from the last log line, and interruption (DELETE).

class TaskError extends Error {} // ends with "TASK ERROR: <message>"
class UnexpectedExit extends Error {} // worker exits without a TASK line -> 'unexpected status'
class Interrupted extends Error {
  constructor() {
    super('received interrupt');
  }
}

const hex8 = (n) => (n >>> 0).toString(16).toUpperCase().padStart(8, '0');

class TaskManager {
  /** @param sim the simulator (for clock, node state, timers, options) */
  constructor(sim) {
    this.sim = sim;
    this.tasks = [];
    this.nextPid = 0x000a1000 + Math.floor(Math.random() * 0x1000);
    this.timers = new Set();
    this.closed = false;
  }

  /** Parse a UPID string into its parts, or null. */
  static parseUpid(upid) {
    const m =
      /^UPID:([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$/.exec(
        upid || '',
      );
    if (!m) return null;
    return {
      node: m[1],
      pid: parseInt(m[3], 16),
      pstart: parseInt(m[4], 16),
      starttime: parseInt(m[5], 16),
      type: m[6],
      id: m[7],
      user: m[8],
    };
  }

  find(upid) {
    return this.tasks.find((t) => t.upid === upid) || null;
  }

  /**
   * Start a worker. run(ctx, task) is an async function; resolve = OK (or WARNINGS: n),
   * throw TaskError/Error = TASK ERROR, throw UnexpectedExit = no TASK line.
   */
  start({ node, type, id = '', user, run, faultIds }) {
    const sim = this.sim;
    this.nextPid += 1 + Math.floor(Math.random() * 37);
    const starttime = sim.nowSec();
    const pstart = Math.max(1, (starttime - sim.nodeBootSec(node)) * 100 + Math.floor(Math.random() * 100));
    const upid = `UPID:${node}:${hex8(this.nextPid)}:${hex8(pstart)}:${hex8(starttime)}:${type}:${id}:${user}:`;
    const task = {
      upid,
      node,
      pid: this.nextPid,
      pstart,
      starttime,
      type,
      id: String(id),
      user,
      status: 'running',
      exitstatus: undefined,
      log: [],
      warnings: 0,
      started: sim.nowMs(),
      ended: undefined,
      endtime: undefined,
      interrupted: false,
      _wakers: new Set(),
      fault: sim._takeTaskFault(type, faultIds || (id ? [id] : [])),
    };
    this.tasks.push(task);
    const ctx = this.makeCtx(task);
    Promise.resolve()
      .then(() => run(ctx, task))
      .then(
        () => this.finish(task, task.warnings ? `TASK WARNINGS: ${task.warnings}` : 'TASK OK'),
        (err) => {
          if (err instanceof UnexpectedExit) return this.finish(task, null);
          if (err instanceof Interrupted) return this.finish(task, 'TASK ERROR: received interrupt');
          const msg = String((err && err.message) || err)
            .replace(/\n+$/, '')
            .replace(/\n/g, ' ');
          return this.finish(task, `TASK ERROR: ${msg}`);
        },
      )
      .catch(() => {});
    return task;
  }

  finish(task, line) {
    if (task.status === 'stopped') return;
    if (line) task.log.push(line);
    const last = task.log[task.log.length - 1] || '';
    let m;
    if (last === 'TASK OK') task.exitstatus = 'OK';
    else if ((m = /^TASK WARNINGS: (\d+)$/.exec(last))) task.exitstatus = `WARNINGS: ${m[1]}`;
    else if ((m = /^TASK ERROR: (.*)$/.exec(last))) task.exitstatus = m[1];
    else task.exitstatus = 'unexpected status';
    task.status = 'stopped';
    task.ended = this.sim.nowMs();
    task.endtime = this.sim.nowSec();
  }

  makeCtx(task) {
    const self = this;
    return {
      task,
      log(line) {
        if (task.status === 'running') task.log.push(line);
      },
      warn(msg) {
        task.warnings++;
        this.log(`WARN: ${msg}`);
      },
      /** Wait ms (simulated work). Rejects with Interrupted if the task is stopped. Pauses while the node is offline. */
      sleep(ms) {
        return self.sleep(task, ms);
      },
      checkInterrupt() {
        if (task.interrupted) throw new Interrupted();
      },
      /** Apply a failTask fault (generic tasks): throws or adds warnings. */
      applyFault() {
        const f = task.fault;
        if (!f) return;
        if (f === 'unexpected status') throw new UnexpectedExit('unexpected status');
        if (f === 'warnings') {
          this.warn('simulated warning 1');
          this.warn('simulated warning 2');
          return;
        }
        throw new TaskError(String(f));
      },
    };
  }

  sleep(task, ms) {
    return new Promise((resolve, reject) => {
      if (task.interrupted) return reject(new Interrupted());
      const waker = () => {
        cleanup();
        reject(new Interrupted());
      };
      let timer;
      const cleanup = () => {
        this.timers.delete(timer);
        clearTimeout(timer);
        task._wakers.delete(waker);
      };
      const fire = () => {
        this.timers.delete(timer);
        if (this.closed) return;
        // A task on an offline node keeps its last state until the node is back.
        if (this.sim.isNodeOffline(task.node)) {
          timer = setTimeout(fire, 50);
          this.timers.add(timer);
          return;
        }
        cleanup();
        resolve();
      };
      task._wakers.add(waker);
      timer = setTimeout(fire, Math.max(0, ms || 0));
      this.timers.add(timer);
    });
  }

  /** DELETE /nodes/{node}/tasks/{upid}: SIGTERM the worker. */
  interrupt(task) {
    if (task.status !== 'running') return;
    task.interrupted = true;
    for (const w of [...task._wakers]) w();
  }

  close() {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  /** The task duration configured by opts.taskDurationMs (number or function(task)). */
  duration(task) {
    const d = this.sim.opts.taskDurationMs;
    if (typeof d === 'function') return Number(d(task)) || 0;
    return d === undefined ? 300 : Number(d);
  }
}

module.exports = { TaskManager, TaskError, UnexpectedExit, Interrupted, hex8 };
