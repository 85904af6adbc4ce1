// js-promise: a promise shared by every request in flight (jco componentize
// --backend qjs). QuickJS has one job queue, drained by whichever task's
// callback is running: when the shared tick resolves (on the task of the
// request that created it), the continuations of every request awaiting it
// run right there, so their fetch and report calls are made on that task
// (misattributed). Each request then awaits its own wait, which resolves on
// its own task, and returns there.
//
// Truth: the fetch URL says whom it is for, `for=N;`; report's key is N.
import { waitFor } from 'wasi:clocks/monotonic-clock@0.3.0';
import { fetch, report } from 'callscope:jsguests/backend';

let tick = null;

function nextTick() {
  if (tick === null) {
    tick = waitFor(1000000).then(() => { tick = null; });
  }
  return tick;
}

export async function handle(id, n) {
  const own = waitFor(3000000);
  await nextTick();
  const page = fetch(`https://j.test/?for=${n};&id=${id}`);
  report(n, page.length);
  await own;
  return page;
}
