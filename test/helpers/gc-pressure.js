'use strict';
// Preloaded into a CLI child process (NODE_OPTIONS="--expose-gc --require <this file>") by the
// tests of time budgets: a full garbage collection every 10 ms, so that a timer only an
// AbortSignal.any held (lost after a collection on Node 20) is lost for sure. Test code only.
if (typeof global.gc === 'function') setInterval(() => global.gc(), 10).unref();
else throw new Error('gc-pressure.js needs node --expose-gc');
