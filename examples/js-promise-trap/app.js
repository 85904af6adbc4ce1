// js-promise-trap: js-promise, but each request returns right after its
// calls instead of first awaiting its own wait. The continuation that
// returns runs on another request's task, so request B's task.return is
// made on request A's task; componentize-qjs's runtime then panics ("task
// already completed") and the instance traps. The calls made before the
// trap are misattributed as in js-promise.
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
  return page;
}
